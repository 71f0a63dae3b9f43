"""The champion of a task, end to end: train and register a challenger (promoted by the rule),
score a log with the champion, and monitor the champion on the log.

The command line and the outreach cycle call these; they load the log through `load_log` unless
given one, and report progress through a callback rather than drawing on a terminal.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from journeyguard.features.config.model import Config
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.columns import NS_PER_DAY
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.log import load_log
from journeyguard.features.tables import write_table
from journeyguard.training import plots, registry
from journeyguard.training.metrics import evaluate
from journeyguard.training.models import JourneyModel
from journeyguard.training.monitor import monitor, write_result
from journeyguard.training.risk_lists import no_champion
from journeyguard.training.train import train_task

if TYPE_CHECKING:
    from journeyguard.training.spark_train import TrainingSample

PROMOTION_METRIC = "roc_auc"
CANDIDATE_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top10")
IMPORTANCE_ROWS = 5_000  # test rows whose contributions rank the features


def quiet(step: str) -> None:
    """The default progress callback: says nothing."""


def train_and_register(
    settings: Config,
    task: str,
    test_from: pd.Timestamp | None,
    seed: int,
    predictions_out: Path | None = None,
    progress: Callable[[str], None] = quiet,
    log: EventLog | None = None,
    sample: TrainingSample | None = None,
) -> dict[str, Any]:
    """Trains, evaluates, logs to MLflow and applies the promotion rule; returns the result.
    `progress` is told each step as it starts; `log` is the settings' log unless given. With a
    `sample` (`training.spark_train`), trains on its journeys over the whole log's span and logs
    its rate and counts as parameters."""
    task_config = settings.task(task)
    # MLflow warns on every custom model that it is pickled; we know, and chose it.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    if sample is not None:
        log = sample.log
    elif log is None:
        progress(f"loading the log of {settings.name}")
        log = load_log(settings)
    test_from = test_from if sample is None else sample.test_from
    span = None if sample is None else sample.span
    progress(f"training {task}: dataset, candidate models, evaluation")
    try:
        bins = settings.monitoring.bins
        run = train_task(
            log, task_config, test_from=test_from, seed=seed, reference_bins=bins, span=span
        )
    except ValueError as error:
        raise ConfigError(f"{settings.path}: {error}") from None
    uri = registry.tracking_uri()
    progress("logging to MLflow")
    with tempfile.TemporaryDirectory() as folder:
        logged = registry.log_model(
            run.model,
            uri=uri,
            params=_params(run, settings) | (sample.params if sample is not None else {}),
            metrics=_metrics(run),
            tags=_tags(run, settings),
            artifacts=_artifacts(run, Path(folder)),
            input_example=run.test_features.head(5),
        )
    test = run.dataset.frame["split"].to_numpy() == "test"
    champion_score, unusable = _champion_score(task, uri, run, test)
    promoted, rule = registry.promote(
        task,
        logged,
        challenger_score=run.metrics[PROMOTION_METRIC],
        champion_score=champion_score,
        metric=PROMOTION_METRIC,
        uri=uri,
        champion_unusable=unusable,
    )
    if predictions_out is not None:
        write_table(run.predictions, predictions_out)
    return {
        "task": task,
        "model_name": logged.model_name,
        "version": logged.version,
        "promoted": promoted,
        "rule": rule,
        "winner": run.winner,
        "winner_reason": run.winner_reason,
        "candidates": [
            {"name": c.name, "detail": c.detail, "validation_log_loss": c.validation_log_loss}
            | {f"test_{k}": c.test[k] for k in CANDIDATE_METRICS}
            for c in run.candidates
        ],
        "left_out": run.left_out,
        "metrics": run.metrics,
        "baseline": run.baseline_metrics,
        "bgnbd": run.bgnbd_metrics,
        "by_prefix": run.by_prefix.to_dict(orient="records"),
        "run_id": logged.run_id,
        "test_from": run.dataset.test_from.isoformat(),
        "sample": sample.params if sample is not None else None,
    }


def _champion_score(task: str, uri: str, run: Any, test: np.ndarray) -> tuple[float | None, str]:
    """The champion's metric on this run's test rows, or None and why it has none: a champion
    saved by an incompatible version of the code cannot be loaded or scored, and then the new
    model replaces it rather than training failing."""
    try:
        champion = registry.load_model(task, "champion", uri=uri)
        if champion is None:
            return None, ""
        snapshots = run.dataset.snapshots.subset(test)
        scores = champion[0].predict(snapshots)
    except Exception as error:  # any failure of an old pickle: report it, do not crash
        return None, f"{type(error).__name__}: {error}"
    return evaluate(run.dataset.frame.loc[test, "y"].to_numpy(), scores)[PROMOTION_METRIC], ""


def load_champion(settings: Config, task: str) -> tuple[JourneyModel, registry.LoggedModel]:
    """The task's champion, or a `ConfigError` saying how to train one."""
    settings.task(task)
    loaded = registry.load_model(task, registry.CHAMPION, uri=registry.tracking_uri())
    if loaded is None:
        raise no_champion(settings, task)
    return loaded


def monitor_champion(
    settings: Config, task: str, as_of: pd.Timestamp | None = None, log: EventLog | None = None
) -> dict[str, Any]:
    """Runs `training.monitor.monitor` on the champion at `as_of` (default: the log's last
    event), writes the workspace's result file and logs its numbers to the champion's run;
    `log` is the settings' log unless given."""
    model, logged = load_champion(settings, task)
    task_config = settings.task(task)
    log = load_log(settings) if log is None else log
    as_of = as_of if as_of is not None else pd.Timestamp(log.last_time, tz="UTC")
    try:
        result = monitor(model, log, as_of, task_config, settings.monitoring)
    except ValueError as error:  # e.g. a champion without a reference profile
        raise ConfigError(f"{settings.path}: {error}") from None
    result = {"model_version": logged.version, "run_id": logged.run_id, **result}
    result["path"] = str(write_result(result, settings.workspace.monitor_result(task)))
    registry.log_monitoring(
        logged.run_id,
        {
            "monitor_score_psi": result["score_psi"],
            "monitor_max_feature_psi": result["max_feature_psi"],
            "monitor_breach": float(result["breach"]),
            "monitor_realised_roc_auc": result["outcomes"]["roc_auc"],
        },
        uri=registry.tracking_uri(),
        step=int(as_of.value // NS_PER_DAY),  # the day of as_of: history in data time
        timestamp_ms=int(time.time() * 1000),
    )
    return result


def _params(run: Any, settings: Config) -> dict[str, Any]:
    task = run.task
    return {
        "task": task.name,
        "label": task.label,
        "horizon": str(task.horizon),
        "snapshots": str(task.snapshots),
        "match": str(task.match),
        "seed": run.seed,
        "test_from": run.dataset.test_from.isoformat(),
        "features": len(run.model.feature_names),
        "winner": run.winner,
        "winner_detail": next(c.detail for c in run.candidates if c.name == run.winner),
        "best_iteration": run.model.info.get("best_iteration"),
        "calibration": run.model.info["calibration"],
        "source": settings.source.display_name,
        **{f"rows_{k}": v for k, v in run.model.info["rows"].items()},
    }


def _tags(run: Any, settings: Config) -> dict[str, str]:
    """The winner and why it won, in words; the reliability diagram's numbers as JSON (the
    console's models page draws them)."""
    return {
        "dataset_fingerprint": run.fingerprint,
        "config": str(settings.path),
        "winner": run.winner,
        "winner_reason": run.winner_reason,
        "reliability": json.dumps(run.model.info["reliability"]),
    }


def _metrics(run: Any) -> dict[str, float]:
    metrics = {f"test_{k}": v for k, v in run.metrics.items()}
    metrics |= {f"baseline_test_{k}": v for k, v in run.baseline_metrics.items()}
    metrics |= {f"bgnbd_test_{k}": v for k, v in (run.bgnbd_metrics or {}).items()}
    for c in run.candidates:
        metrics[f"candidate_{c.name}_validation_log_loss"] = c.validation_log_loss
        metrics |= {f"candidate_{c.name}_test_{k}": c.test[k] for k in CANDIDATE_METRICS}
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def _artifacts(run: Any, folder: Path) -> dict[str, Path]:
    y = run.predictions["y"].to_numpy()
    score = run.predictions["score"].to_numpy()
    sample = run.test_features.head(IMPORTANCE_ROWS)
    importance = np.abs(run.model.contributions(sample).to_numpy()[:, :-1]).mean(axis=0)
    run.by_prefix.to_csv(folder / "metrics_by_prefix.csv", index=False)
    run.by_days.to_csv(folder / "metrics_by_days_since_first.csv", index=False)
    critical = {
        "critical_items": run.model.transformer.vocabulary_.critical,
        "routes": run.model.transformer.vocabulary_.routes,
    }
    (folder / "path_summary.json").write_text(json.dumps(critical, indent=2))
    return {
        "feature_importance.png": plots.feature_importance(
            run.model.feature_names,
            importance,
            folder / "feature_importance.png",
            f"mean |contribution| to the {run.winner} log-odds",
        ),
        "calibration.png": plots.calibration(
            y,
            score,
            folder / "calibration.png",
            f"{run.task.name} ({run.winner}): reliability on the test period",
        ),
        "lift.png": plots.lift(
            y,
            {c.name: c.score for c in run.candidates},
            folder / "lift.png",
            f"{run.task.name}: lift on the test period",
        ),
        "metrics_by_prefix.csv": folder / "metrics_by_prefix.csv",
        "metrics_by_days_since_first.csv": folder / "metrics_by_days_since_first.csv",
        "path_summary.json": folder / "path_summary.json",
    }
