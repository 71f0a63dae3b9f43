# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install.
# bash for /dev/tcp: is the local PostgreSQL answering?
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export DO_NOT_TRACK := 1

.PHONY: demo test serve lint format install clean dist bento

demo: $(INSTALLED)
	$(BIN)/journeyguard demo

# The PostgreSQL tests use the local server when it answers (CI sets the URL itself).
LOCAL_POSTGRES := postgresql+psycopg://postgres@127.0.0.1:5432/test

test: $(INSTALLED)
	$(BIN)/ruff check .
	@if [ -z "$$JOURNEYGUARD_TEST_POSTGRES_URL" ] && (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then \
		echo "PostgreSQL answers on 127.0.0.1:5432: the postgres tests use $(LOCAL_POSTGRES)"; \
		JOURNEYGUARD_TEST_POSTGRES_URL=$(LOCAL_POSTGRES) $(BIN)/pytest; \
	else \
		$(BIN)/pytest; \
	fi

# The prediction service and console of the demo, on http://127.0.0.1:3000 (after `make demo`).
serve: $(INSTALLED)
	$(BIN)/journeyguard serve --config configs/simulator.toml

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff format .

# What the images install (docs/deploy.md): the wheel of `journeyguard.*` and the pinned
# versions of its run-time dependencies in this environment.
DIST := build/dist
dist: $(INSTALLED)
	rm -rf $(DIST)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation --quiet --wheel-dir $(DIST) .
	$(BIN)/python deploy/pins.py > $(DIST)/requirements.txt

# The service's Bento (bentofile.yaml); `bentoml containerize journeyguard:latest` makes its
# image where a container daemon runs.
bento: dist
	$(BIN)/bentoml build .

install: $(INSTALLED)

# Reinstalled when pyproject.toml changes (its entry points are the CLI's commands).
$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "JourneyGuard needs Python 3.11+; set PYTHON=python3.11"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	@# The Spark engine's tests run PySpark in local mode on Java 17, Debian's headless JRE.
	command -v java >/dev/null || (apt-get update && apt-get install -y openjdk-17-jre-headless) || \
		echo "java is missing: the spark tests will be skipped"
	@# The browser tests drive Debian's chromium (never `playwright install`, which downloads).
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium) || \
		echo "chromium is missing: the browser tests will be skipped"
	touch $@

clean:
	rm -rf build .pytest_cache .ruff_cache
