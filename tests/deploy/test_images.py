"""The images, without a container daemon: the CLI image's Dockerfile and the service's Bento
install the built wheel of `journeyguard.*` (never the source folders, which a user's own
`features.py` could shadow) with this environment's pinned run-time dependencies, and start
commands that exist. `bentoml build` itself runs offline here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from fnmatch import fnmatch
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
WHEEL = f"journeyguard-{VERSION}-py3-none-any.whl"
DIST = "build/dist"  # where `make dist` writes the wheel and the pins
PACKAGE_FOLDERS = tuple(PYPROJECT["tool"]["setuptools"]["package-dir"].values())


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_the_cli_image_installs_the_wheel_and_starts_the_cli():
    instructions = dockerfile()
    (entrypoint,) = [json.loads(args) for kind, args in instructions if kind == "ENTRYPOINT"]
    assert entrypoint == ["journeyguard"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]
    sources = [
        word for kind, args in instructions if kind in ("COPY", "ADD") for word in args.split()[:-1]
    ]
    assert sources == [f"{DIST}/requirements.txt", f"{DIST}/{WHEEL}"]
    assert not any("PYTHONPATH" in args for _, args in instructions)
    # The build context is those two files alone.
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    assert all(any(fnmatch(s, p[1:]) for p in patterns[1:]) for s in sources)
    # deploy/mlflow.yaml runs `mlflow server` from this image.
    assert "mlflow" in {e.name for e in entry_points(group="console_scripts")}


def test_the_bentofile_ships_the_wheel_and_no_source_folder():
    bentofile = yaml.safe_load((REPO / "bentofile.yaml").read_text())
    assert bentofile["service"] == "journeyguard.serving.service:JourneyService"
    assert bentofile["python"]["wheels"] == [f"{DIST}/{WHEEL}"]
    assert bentofile["python"]["requirements_txt"] == f"{DIST}/requirements.txt"
    assert bentofile["python"]["lock_packages"] is False
    assert not set(bentofile.get("include", [])) & {f"{f}/" for f in PACKAGE_FOLDERS}
    assert not any(p.startswith(PACKAGE_FOLDERS) for p in bentofile.get("include", []))
    assert "libgomp1" in bentofile["docker"]["system_packages"]


def runtime_pins() -> dict[str, str]:
    printed = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "pins.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("==") for line in printed.splitlines())


def test_the_pins_are_the_run_time_dependencies_at_their_installed_versions():
    pins = runtime_pins()
    for name in ("mlflow", "lightgbm", "bentoml", "psycopg-binary", "numpy", "pyarrow"):
        assert pins[name] == version(name)
    assert not {"journeyguard", "pytest", "ruff", "hypothesis", "uv"} & set(pins)


def test_the_service_describes_its_api():
    """`bentoml build` and /docs.json write the OpenAPI description of every endpoint; a union
    return type (`JourneyRisk | Any`) made BentoML's writer fail with a KeyError."""
    from journeyguard.serving.service import JourneyService

    paths = JourneyService.openapi_spec.paths
    assert {"/predict", "/predict_customer", "/risk_list", "/readyz", "/livez"} <= set(paths)


def build_context(folder: Path) -> Path:
    """A copy of what `make dist` and `bentoml build` read, built as `make dist` does, so
    neither writes into the checkout."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md", "bentofile.yaml"):
        shutil.copy(REPO / name, folder / name)
    for name in PACKAGE_FOLDERS:
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = folder / DIST
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet"]
    subprocess.run([*pip, "--wheel-dir", str(dist), "."], cwd=folder, check=True)
    (dist / "requirements.txt").write_text(
        "".join(f"{name}=={pinned}\n" for name, pinned in sorted(runtime_pins().items()))
    )
    return folder


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_context(tmp_path_factory.mktemp("image") / "context")


@pytest.mark.slow
def test_the_wheel_is_journeyguard_alone_and_no_features_py_shadows_it(context, tmp_path):
    with zipfile.ZipFile(context / DIST / WHEEL) as wheel:
        tops = {name.split("/")[0] for name in wheel.namelist()}
        wheel.extractall(tmp_path / "site")
    assert tops == {"journeyguard", f"journeyguard-{VERSION}.dist-info"}
    # A user's working folder, as in a container or on an executor: its own features.py.
    work = tmp_path / "work"
    work.mkdir()
    (work / "features.py").write_text("OWN = True\n")
    check = (
        "import features, journeyguard.features.eventlog as e, journeyguard.serving.service; "
        "print(features.OWN, e.__file__)"
    )
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    found = subprocess.run(
        [sys.executable, "-c", check], cwd=work, env=environment, capture_output=True, text=True
    )
    assert found.returncode == 0, found.stderr[-2000:]
    own, module = found.stdout.split()
    assert own == "True" and Path(module).is_relative_to(tmp_path / "site")


@pytest.mark.slow
def test_bentoml_build_makes_a_bento_of_the_installed_package_offline(context, tmp_path):
    home = tmp_path / "bentoml"
    environment = {
        **os.environ,
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "PIP_NO_INDEX": "1",  # offline: nothing may be fetched
        "UV_OFFLINE": "1",
    }
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    built = subprocess.run(
        [bentoml, "build", "."], cwd=context, env=environment, capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (bento,) = [p for p in (home / "bentos" / "journeyguard").iterdir() if p.name != "latest"]
    assert [p.name for p in (bento / "env/python/wheels").iterdir()] == [WHEEL]
    assert not any((bento / "src" / name).exists() for name in PACKAGE_FOLDERS)
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["service"] == "journeyguard.serving.service:JourneyService"
    assert {e["name"] for e in manifest["envs"]} >= {"JOURNEYGUARD_CONFIG", "BENTOML_DO_NOT_TRACK"}
    image = (bento / "env/docker/Dockerfile").read_text()
    assert "libgomp1" in image and "EXPOSE 3000" in image
