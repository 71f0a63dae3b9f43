"""The risk lists of a task: every journey it is for at `as_of`, scored by its champion.

Kept apart from `training.champion` (training, promotion, monitoring) so that a process that
only scores loads the champion's exported form (`exported_champions`) and never imports
MLflow, scikit-learn or LightGBM.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from journeyguard.features.config.model import Config
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.population import lapsed_list
from journeyguard.features.sources.log import load_log
from journeyguard.features.tables import write_table
from journeyguard.training.exported_champions import (
    CHAMPION,
    LoggedModel,
    exported_champion,
    local_database,
    save_exported,
    tracking_uri,
)
from journeyguard.training.score import score_log
from journeyguard.training.scoring_model import ScoringModel


def scoring_champion(settings: Config, task: str) -> tuple[ScoringModel, LoggedModel]:
    """The task's champion ready to score, or a `ConfigError` saying how to train one."""
    settings.task(task)
    loaded = champion_for_scoring(task, tracking_uri())
    if loaded is None:
        raise no_champion(settings, task)
    return loaded


def no_champion(settings: Config, task: str) -> ConfigError:
    """The error of a task without a champion, saying how to train one."""
    return ConfigError(
        f"no champion model for task {task!r} yet: run `journeyguard train "
        f"--config {settings.path} --task {task}` first"
    )


def champion_for_scoring(task: str, uri: str) -> tuple[ScoringModel, LoggedModel] | None:
    """The task's champion ready to score and its version, None when there is none: its
    exported form where a local store has it (`exported_champions`), else loaded through
    MLflow, and on a local store exported for the next time."""
    if (exported := exported_champion(task, uri)) is not None:
        return exported
    from journeyguard.training import registry  # MLflow: seconds to import

    loaded = registry.load_model(task, CHAMPION, uri=uri)
    if loaded is None:
        return None
    model, logged = loaded
    scoring = model.exported()
    if (database := local_database(uri)) is not None:
        save_exported(database, logged, scoring)
    return scoring, logged


def score_with_champion(
    settings: Config, task: str, as_of: pd.Timestamp, log: EventLog | None = None
) -> pd.DataFrame:
    """The journeys the task is for at `as_of` scored by its champion, with their top reasons;
    `log` is the settings' log (`load_log`) unless given."""
    model, logged = scoring_champion(settings, task)
    log = load_log(settings) if log is None else log
    return score_log(log, model, as_of, settings.task(task), version=logged.version)


def write_risk_lists(
    settings: Config,
    task: str,
    as_of: pd.Timestamp,
    log: EventLog | None = None,
    out: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scores the task at `as_of` and writes its risk list (to `out`, default the workspace's,
    which the service and console read) and its lapsed list beside; returns both."""
    log = load_log(settings) if log is None else log
    risks = score_with_champion(settings, task, as_of, log)
    lapsed = lapsed_list(log, settings.task(task), as_of)
    write_table(risks, out or settings.workspace.risk_list(task))
    write_table(lapsed, settings.workspace.lapsed_list(task))
    return risks, lapsed
