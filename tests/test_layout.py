"""The package's shape: one import name, every folder installed, and the import contracts
(layers features < training < outreach < serving, cli modules as leaves, no cycles)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[1]
TOP_FOLDERS = ("features", "training", "outreach", "serving")


def test_every_package_folder_is_installed_under_journeyguard() -> None:
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(("journeyguard", *init.parent.relative_to(REPO).parts))
        for top in TOP_FOLDERS
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(settings["packages"]) == folders
    assert settings["package-dir"] == {f"journeyguard.{top}": top for top in TOP_FOLDERS}


def test_the_bare_names_do_not_import_even_from_the_checkout() -> None:
    # From the repository's root the folders are on sys.path; they refuse to be a second copy.
    for top in TOP_FOLDERS:
        found = subprocess.run(
            [sys.executable, "-c", f"import {top}"], cwd=REPO, capture_output=True, text=True
        )
        assert found.returncode == 1
        assert f"import journeyguard.{top}" in found.stderr


def test_the_installed_package_imports_by_its_one_name(tmp_path: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-c", "import journeyguard.features.eventlog as e; print(e.EventLog)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr
    assert "journeyguard.features.eventlog.log.EventLog" in found.stdout


def test_import_contracts_are_kept(monkeypatch) -> None:
    monkeypatch.chdir(REPO)  # lint-imports reads pyproject.toml from the working folder
    assert lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True) == 0
