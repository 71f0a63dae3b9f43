"""An experiment's uplift champion, end to end: build the experiment's rows, train, log to
MLflow, register `journeyguard-uplift-<experiment>` and promote it by the champion rule (its
Qini coefficient on this run's test rows at least the champion's on the same rows).

The experiment's arms come from the log (`[experiments.<name>]` treatment and control events)
unless the caller passes them: the outbox's own decisions are read by `journeyguard.outreach`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from journeyguard.features.config.model import Config
from journeyguard.features.errors import ConfigError
from journeyguard.features.experiments import Arms, arms_from_log, experiment_rows
from journeyguard.features.sources.log import load_log
from journeyguard.features.tables import write_table
from journeyguard.training import plots, registry
from journeyguard.training.champion import quiet
from journeyguard.training.uplift import UpliftRun, summary, train_uplift
from journeyguard.training.uplift_learners import UpliftModel
from journeyguard.training.uplift_metrics import qini_coefficient

PROMOTION_METRIC = "qini"


def train_and_register_uplift(
    settings: Config,
    experiment: str,
    *,
    arms: Arms | None = None,
    seed: int = 0,
    predictions_out: Path | None = None,
    progress: Callable[[str], None] = quiet,
) -> dict[str, Any]:
    """Trains the experiment's uplift learners, logs them, registers the winner and applies
    the champion rule; returns the run's summary with the registered version and the rule."""
    config = settings.experiment(experiment)
    task = settings.task(config.outcome)
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    progress(f"loading the log of {settings.name}")
    log = load_log(settings)
    try:
        if arms is None:
            if config.outbox:
                raise ValueError(f"experiment {experiment!r} reads the outbox: pass its arms")
            arms = arms_from_log(log, config)
        progress(f"experiment {experiment}: rows, features, candidate learners")
        rows = experiment_rows(log, config, task, arms)
        run = train_uplift(rows, config, task, seed=seed)
    except ValueError as error:
        raise ConfigError(f"{settings.path}: {error}") from None
    uri = registry.tracking_uri()
    progress("logging to MLflow")
    test = run.test
    features = run.model.transformer.transform(run.rows.snapshots.subset(test))
    with tempfile.TemporaryDirectory() as folder:
        logged = registry.log_uplift_model(
            run.model,
            uri=uri,
            params=_params(run, settings),
            metrics=_metrics(run),
            tags=_tags(run, settings),
            artifacts=_artifacts(run, Path(folder)),
            input_example=features.head(5),
        )
    champion_score, unusable = _champion_score(experiment, uri, run)
    promoted, rule = registry.promote(
        config.model_task,
        logged,
        challenger_score=run.metrics[PROMOTION_METRIC],
        champion_score=champion_score,
        metric=PROMOTION_METRIC,
        uri=uri,
        champion_unusable=unusable,
    )
    if predictions_out is not None:
        write_table(run.predictions, predictions_out)
    return summary(run) | {
        "model_name": logged.model_name,
        "version": logged.version,
        "promoted": promoted,
        "rule": rule,
        "run_id": logged.run_id,
    }


def load_uplift_champion(experiment: str) -> tuple[UpliftModel, Any] | None:
    """The experiment's uplift champion and its registry entry, None before one exists."""
    return registry.load_uplift_model(experiment, registry.CHAMPION, uri=registry.tracking_uri())


def _champion_score(experiment: str, uri: str, run: UpliftRun) -> tuple[float | None, str]:
    """The champion's Qini on this run's test rows, or None and why it has none: no champion,
    or one this code cannot load or score (then the new model replaces it)."""
    try:
        champion = registry.load_uplift_model(experiment, registry.CHAMPION, uri=uri)
        if champion is None:
            return None, ""
        test = run.test
        uplift = champion[0].uplift(run.rows.snapshots.subset(test))
    except Exception as error:  # any failure of an old pickle: report it, do not crash
        return None, f"{type(error).__name__}: {error}"
    return qini_coefficient(run.rows.good[test], run.rows.treated[test], uplift), ""


def _params(run: UpliftRun, settings: Config) -> dict[str, Any]:
    experiment = run.experiment
    return {
        "experiment": experiment.name,
        "outcome": experiment.outcome,
        "goal": experiment.goal,
        "split": experiment.split,
        "action": experiment.action,
        "source": "outbox" if experiment.outbox else settings.source.display_name,
        "seed": run.seed,
        "winner": run.winner,
        "features": len(run.model.feature_names),
        **{f"rows_{k}": v for k, v in run.model.info["rows"].items()},
    }


def _metrics(run: UpliftRun) -> dict[str, float]:
    metrics = {f"test_{k}": v for k, v in run.metrics.items()}
    metrics |= {f"test_ate_{k}": v for k, v in run.effect.items()}
    for c in run.candidates:
        metrics[f"candidate_{c.name}_validation_qini"] = c.validation_qini
        metrics[f"candidate_{c.name}_test_qini"] = c.test_qini
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def _tags(run: UpliftRun, settings: Config) -> dict[str, str]:
    return {
        "config": str(settings.path),
        "winner": run.winner,
        "winner_reason": run.winner_reason,
        "deciles": json.dumps(run.deciles.to_dict(orient="records")),
    }


def _artifacts(run: UpliftRun, folder: Path) -> dict[str, Path]:
    run.curve.to_csv(folder / "qini_curve.csv", index=False)
    run.deciles.to_csv(folder / "uplift_by_decile.csv", index=False)
    run.risk_deciles.to_csv(folder / "risk_by_decile.csv", index=False)
    title = f"{run.experiment.name} ({run.winner}): Qini on the test rows"
    return {
        "qini_curve.png": plots.qini(run.curve, folder / "qini_curve.png", title),
        "qini_curve.csv": folder / "qini_curve.csv",
        "uplift_by_decile.csv": folder / "uplift_by_decile.csv",
        "risk_by_decile.csv": folder / "risk_by_decile.csv",
    }
