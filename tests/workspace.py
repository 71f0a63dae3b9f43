"""The session's one simulated log and one trained workspace, shared by the serving, outreach,
monitoring and end-to-end tests (fixtures `simulated_log` and `trained_workspace` in
tests/conftest.py).

Built once per session in a tmp folder: 3,000 simulated customers, the churn and escalation
champions trained into a SQLite MLflow store, and their risk lists scored at `AS_OF`. The
built folder is read only: a test that changes registry state works on a copy of the store's
database (`copy_store`), and writes its outputs to a folder of its own.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from journeyguard.features.eventlog.canonical import write_canonical
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.simulate import simulate

CUSTOMERS, SEED = 3000, 4
AS_OF = pd.Timestamp("2025-09-01", tz="UTC")
TRAINED_TASKS = ("churn", "escalation")
SOURCE_ATTRIBUTES = '[source.attributes]\ncolumns = ["segment", "country"]\n'
# The tasks of every config over the shared log; doubled braces: configs are `str.format`ted.
TASKS = """
[tasks.churn]
label = "absent"
match = {{ event = ["repeat_purchase"] }}
horizon = "60d"
snapshots = {{ every = "28d" }}

[tasks.escalation]
label = "occurs"
match = {{ event = ["escalated"] }}
horizon = "14d"
snapshots = {{ prefix = 8 }}
"""
_TRAINING_CONFIG = f"""
[source]
path = '{{events}}'

{SOURCE_ATTRIBUTES}
[output]
dir = '{{output}}'
{TASKS}"""


@dataclass(frozen=True)
class SimulatedLog:
    """The shared simulated log: its canonical file and the log read from it."""

    events: Path
    log: EventLog


@dataclass(frozen=True)
class TrainedWorkspace:
    """The shared log, a store with the champions of `TRAINED_TASKS` (version 1 of each, also
    its challenger) and their risk lists at `AS_OF`. Read only: see `copy_store`."""

    folder: Path
    events: Path
    log: EventLog
    config: Path  # the training config: tasks churn and escalation, outputs in folder/out
    store: Path  # the MLflow root: mlflow.db and artifacts/

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.store / 'mlflow.db'}"

    def risk_list(self, task: str) -> Path:
        from journeyguard.features.config.reader import load_config

        return load_config(self.config).workspace.risk_list(task)

    def copy_store(self, root: Path) -> str:
        """A copy of the store's database in `root` (the artifacts stay in the shared store,
        read only); returns its tracking URI. Copying skips MLflow's migrations (seconds)."""
        root.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.store / "mlflow.db", root / "mlflow.db")
        return f"sqlite:///{root / 'mlflow.db'}"


def empty_store(template: Path, root: Path) -> str:
    """A fresh, empty store in `root`: a copy of the `template_store` fixture's migrated
    database. Returns its tracking URI."""
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, root / "mlflow.db")
    return f"sqlite:///{root / 'mlflow.db'}"


def build_simulated_log(folder: Path) -> SimulatedLog:
    folder.mkdir(parents=True, exist_ok=True)
    events = simulate(CUSTOMERS, seed=SEED).events
    # Whole seconds: requests carry microseconds at most, and the service's parity tests
    # compare it with batch scoring on exactly the same times.
    events["timestamp"] = events["timestamp"].dt.floor("s")
    log = log_from_frame(events)
    path = folder / "events.parquet"
    write_canonical(log, path)
    return SimulatedLog(path, log)


def build_trained_workspace(simulated: SimulatedLog, folder: Path) -> TrainedWorkspace:
    """Trains and registers the champion of each of `TRAINED_TASKS` (seed 0) into a new store
    under `folder` and scores their risk lists at `AS_OF` (about 15 s)."""
    from journeyguard.features.config.reader import load_config
    from journeyguard.training import registry
    from journeyguard.training.champion import train_and_register
    from journeyguard.training.risk_lists import score_with_champion

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "jg.toml"
    config.write_text(_TRAINING_CONFIG.format(events=simulated.events, output=folder / "out"))
    store = folder / "mlruns"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        # Not left set for the session: tests name the store (or a copy) they use.
        patch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri(store))
        settings = load_config(config)
        for task in TRAINED_TASKS:
            train_and_register(settings, task, None, seed=0)
            table = score_with_champion(settings, task, AS_OF)
            path = settings.workspace.risk_list(task)
            path.parent.mkdir(parents=True, exist_ok=True)
            table.to_parquet(path, index=False)
    trained = TrainedWorkspace(folder, simulated.events, simulated.log, config, store)
    assert all(trained.risk_list(task).is_file() for task in TRAINED_TASKS)
    return trained
