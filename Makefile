# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1

.PHONY: demo test lint format install clean

demo: $(INSTALLED)
	$(BIN)/journeyguard demo

test: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff format .

install: $(INSTALLED)

# Reinstalled when pyproject.toml changes (its entry points are the CLI's commands).
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "JourneyGuard needs Python 3.11+; set PYTHON=python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# The browser tests drive Debian's chromium (never `playwright install`, which downloads).
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
		echo "chromium is missing: the browser tests will be skipped"
	touch $@

clean:
	rm -rf build .pytest_cache .ruff_cache
