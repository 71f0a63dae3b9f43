"""A task's champion for scoring without MLflow, scikit-learn or LightGBM in the process.

Importing MLflow and unpickling a `JourneyModel` (which brings scikit-learn and LightGBM) cost
a scoring command about two seconds, more than the scoring. So on a local SQLite store (the
embedded default) the version holding the alias is read with `sqlite3`, and the model is its
exported form (`JourneyModel.exported`), a file beside the store named by the model, version
and run: written the first time that version is scored through MLflow, and read for as long
as the alias stays on it. Any other store, a missing or unreadable file, or a registry
schema this code cannot read goes through MLflow (`risk_lists.champion_for_scoring`).
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

from journeyguard.training.scoring_model import ScoringModel

MODEL_PREFIX = "journeyguard-"  # registered model and experiment name: journeyguard-<task>
CHAMPION, CHALLENGER = "champion", "challenger"
EXPORTED = "exported"  # the folder of exported models, beside the store's database
_SQLITE = "sqlite:///"
_FORMAT = 1  # of the exported file: a new layout of `ScoringModel` gets new files
_ALIAS_QUERY = """
    SELECT v.version, v.run_id FROM registered_model_aliases AS a
    JOIN model_versions AS v ON v.name = a.name AND v.version = a.version
        AND v.workspace = a.workspace
    WHERE a.name = ? AND a.alias = ? AND a.workspace = 'default'
"""


@dataclass(frozen=True)
class LoggedModel:
    task: str
    run_id: str
    model_name: str
    version: int
    model_uri: str  # models:/journeyguard-<task>/<version>


def model_name(task: str) -> str:
    return f"{MODEL_PREFIX}{task}"


def logged_model(task: str, version: int, run_id: str) -> LoggedModel:
    name = model_name(task)
    return LoggedModel(task, run_id, name, version, f"models:/{name}/{version}")


def tracking_uri(root: Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else the SQLite store `<root>/mlflow.db` (root defaults to
    `./mlruns`), creating root and root/artifacts."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    root = (root or Path("mlruns")).resolve()
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return f"{_SQLITE}{root / 'mlflow.db'}"


def local_database(uri: str) -> Path | None:
    """The database file of a local SQLite store, None for other stores."""
    if uri.startswith(_SQLITE) and Path(uri[len(_SQLITE) :]).is_absolute():
        return Path(uri[len(_SQLITE) :])
    return None


def alias_holder(database: Path, task: str, alias: str) -> LoggedModel | None:
    """The version of `journeyguard-<task>` that holds `alias` in a local store, None when the
    model or the alias does not exist; `sqlite3.Error` when the database has no registry this
    query can read (MLflow changed its schema)."""
    uri = f"{database.as_uri()}?mode=ro"
    with sqlite3.connect(uri, uri=True, timeout=30) as connection:
        row = connection.execute(_ALIAS_QUERY, (model_name(task), alias)).fetchone()
    connection.close()
    return None if row is None else logged_model(task, int(row[0]), str(row[1]))


def exported_file(database: Path, logged: LoggedModel) -> Path:
    """Where the exported form of a model version lives, beside its store's database."""
    name = f"{logged.model_name}-v{logged.version}-{logged.run_id}.f{_FORMAT}.pkl"
    return database.parent / EXPORTED / name


def save_exported(database: Path, logged: LoggedModel, model: ScoringModel) -> Path:
    """Writes the exported form of a version, atomically (a reader never sees half a file)."""
    path = exported_file(database, logged)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as stream:
        pickle.dump(model, stream, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(stream.name, path)
    return path


def load_exported(path: Path) -> ScoringModel | None:
    """The exported model at `path`, None where there is none or this code cannot read it
    (written by another layout of the code: MLflow's copy is loaded and exported again)."""
    try:
        with path.open("rb") as stream:
            model = pickle.load(stream)
    except Exception:  # missing, or any failure of an old pickle: export it again
        return None
    return model if isinstance(model, ScoringModel) else None


def exported_champion(task: str, uri: str) -> tuple[ScoringModel, LoggedModel] | None:
    """The task's champion as its exported `ScoringModel` and its version, read without
    MLflow; None where MLflow must answer: not a local store, no champion, no exported file of
    it yet (or an unreadable one), or a registry schema this query cannot read."""
    database = local_database(uri)
    if database is None or not database.exists():
        return None
    try:
        logged = alias_holder(database, task, CHAMPION)
    except sqlite3.Error:
        return None
    if logged is None:
        return None
    model = load_exported(exported_file(database, logged))
    return None if model is None else (model, logged)
