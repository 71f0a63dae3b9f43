"""One training run of a task: dataset, models, evaluation on the test period.

Pure of MLflow: `training.registry` logs what this returns, and the command line composes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.config.model import TaskConfig
from journeyguard.features.dataset import Dataset, build_dataset
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.labels import matching_events
from journeyguard.features.population import eligible_snapshots
from journeyguard.training import bgnbd
from journeyguard.training.metrics import days_bin_labels, days_bins, evaluate, metrics_by_group
from journeyguard.training.models import (
    JourneyModel,
    journey_slices,
    train_baseline,
    train_lightgbm,
)
from journeyguard.training.monitor import reference_profile

PREFIX_GROUP = "events"  # the prefix length: events seen so far
DAYS_GROUP = "tenure_days"  # days since the first event


@dataclass
class TrainingRun:
    task: TaskConfig
    seed: int
    dataset: Dataset
    model: JourneyModel
    baseline: Any
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    bgnbd_metrics: dict[str, float] | None
    by_prefix: pd.DataFrame
    by_days: pd.DataFrame
    predictions: pd.DataFrame  # test rows: customer_id, as_of, y, score, split
    fingerprint: str

    @property
    def test_features(self) -> pd.DataFrame:
        frame = self.dataset.frame
        return frame.loc[frame["split"] == "test", self.model.feature_names]


def train_task(
    log: EventLog,
    task: TaskConfig,
    *,
    test_from: pd.Timestamp | None = None,
    seed: int = 0,
    reference_bins: int = 10,
) -> TrainingRun:
    """Trains and evaluates the task's models on the snapshot dataset of `log`, and records in
    `model.info["reference"]` the profile a monitor compares later populations with."""
    data = build_dataset(log, task, test_from=test_from)
    frame = data.frame
    train, test = (frame["split"] == "train").to_numpy(), (frame["split"] == "test").to_numpy()
    if not test.any():
        raise ValueError(
            f"task {task.name!r}: no test snapshot with a known outcome after "
            f"{data.test_from.isoformat()}; choose an earlier --test-from"
        )
    features, y = frame[data.feature_names], frame["y"].to_numpy().astype(int)
    slices = journey_slices(frame.loc[train, "customer_id"].to_numpy())
    model = train_lightgbm(task.name, data.transformer, features[train], y[train], slices, seed)
    baseline = train_baseline(features[train], y[train], seed)
    score = model.predict_features(features[test])
    baseline_score = baseline.predict_proba(features[test])[:, 1]
    predictions = frame.loc[test, ["customer_id", "as_of", "y", "split"]].assign(score=score)
    groups = _groups(features[test])
    metrics = evaluate(y[test], score)
    model.info["reference"] = reference_profile(
        model,
        eligible_snapshots(Snapshots.at(log, log.last_time), task),
        reference_bins,
        metrics["roc_auc"],
    )
    return TrainingRun(
        task=task,
        seed=seed,
        dataset=data,
        model=model,
        baseline=baseline,
        metrics=metrics,
        baseline_metrics=evaluate(y[test], baseline_score),
        bgnbd_metrics=_bgnbd_metrics(log, task, data, train, test, slices)
        if task.label == "absent"
        else None,
        by_prefix=_compare_by(groups[PREFIX_GROUP], y[test], score, baseline_score),
        by_days=_compare_by(groups[DAYS_GROUP], y[test], score, baseline_score),
        predictions=predictions[["customer_id", "as_of", "y", "score", "split"]],
        fingerprint=fingerprint(frame),
    )


def fingerprint(frame: pd.DataFrame) -> str:
    """A short hash of the dataset's keys and labels: same data, same fingerprint."""
    keys = frame[["customer_id", "as_of", "y", "split"]]
    digest = hashlib.sha256(pd.util.hash_pandas_object(keys, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _groups(features: pd.DataFrame) -> dict[str, pd.Series]:
    """Prefix length (1..9, 10+) and days since the first event, as ordered categories."""
    labels = [str(n) for n in range(1, 10)] + ["10+"]
    prefix = features[PREFIX_GROUP].clip(upper=10).astype(int).astype(str).replace("10", "10+")
    days = days_bins(features[DAYS_GROUP].to_numpy())
    return {
        PREFIX_GROUP: pd.Series(
            pd.Categorical(prefix, categories=labels), index=features.index, name=PREFIX_GROUP
        ),
        DAYS_GROUP: pd.Series(
            pd.Categorical(days, categories=days_bin_labels()),
            index=features.index,
            name=DAYS_GROUP,
        ),
    }


def _compare_by(
    groups: pd.Series, y: np.ndarray, score: np.ndarray, baseline: np.ndarray
) -> pd.DataFrame:
    """Model and baseline metrics side by side per group (prefix length, days since first)."""
    model = metrics_by_group(y, score, groups.reset_index(drop=True))
    base = metrics_by_group(y, baseline, groups.reset_index(drop=True))
    key = model.columns[0]
    return model.merge(
        base[[key, "roc_auc", "pr_auc", "brier"]], on=key, suffixes=("", "_baseline")
    )


def _bgnbd_metrics(
    log: EventLog,
    task: TaskConfig,
    data: Dataset,
    train: np.ndarray,
    test: np.ndarray,
    slices: np.ndarray,
) -> dict[str, float]:
    """BG/NBD fitted on the purchases up to the training period's end, scored on the test rows.
    Its churn risk falls as the expected purchases in the horizon rise: a decreasing isotonic
    map, fitted on the calibration slice, turns them into probabilities so that its Brier score
    compares with the model's; the ranking is that of -E[purchases]."""
    purchases = matching_events(log, task.match)
    ids, times = log.journey_ids[log.journey_codes[purchases]], log.times[purchases]
    frame = data.frame
    train_end = frame.loc[train, "as_of"].max()
    summary = bgnbd.rfm_summary(ids, times, train_end)
    params = bgnbd.fit(summary["frequency"], summary["recency"], summary["T"])
    horizon_periods = task.horizon / pd.Timedelta(days=7)

    def expected(rows: np.ndarray) -> np.ndarray:
        """Expected purchases in the horizon; a journey without a purchase yet has x = 0 and
        T = the weeks since its first event."""
        values = np.empty(rows.sum())
        selected = frame.loc[rows]
        for as_of in selected["as_of"].unique():
            at = (selected["as_of"] == as_of).to_numpy()
            rfm = bgnbd.rfm_summary(ids, times, as_of).reindex(selected["customer_id"][at])
            weeks = selected["tenure_days"][at].to_numpy() / 7
            values[at] = bgnbd.expected_purchases(
                params,
                horizon_periods,
                rfm["frequency"].fillna(0).to_numpy(),
                rfm["recency"].fillna(0).to_numpy(),
                rfm["T"].fillna(pd.Series(weeks, index=rfm.index)).to_numpy(),
            )
        return values

    from sklearn.isotonic import IsotonicRegression

    calibration = np.zeros(len(frame), dtype=bool)
    calibration[np.flatnonzero(train)[slices == "calibration"]] = True
    to_risk = IsotonicRegression(increasing=False, out_of_bounds="clip")
    to_risk.fit(expected(calibration), frame.loc[calibration, "y"])
    expected_test = expected(test)
    y = frame.loc[test, "y"].to_numpy().astype(int)
    # Ranking metrics from BG/NBD's own ranking (isotonic steps would tie rows); the
    # probability metrics from the calibrated risk.
    calibrated = evaluate(y, to_risk.predict(expected_test))
    metrics = evaluate(y, -expected_test) | {k: calibrated[k] for k in ("brier", "log_loss")}
    return metrics | {f"param_{k}": float(v) for k, v in vars(params).items()}
