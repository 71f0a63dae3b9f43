"""One training run of a task: dataset, candidate models, the winner, evaluation on the test
period.

Pure of MLflow: `training.registry` logs what this returns, and the command line composes them.
The candidates are fitted and chosen on the training rows (`training.candidates`); the test
period only reports every candidate's metrics and the winner's reliability.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.config.model import TaskConfig
from journeyguard.features.dataset import Dataset, build_dataset
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.population import eligible_snapshots
from journeyguard.training.bgnbd_features import BGNBDFeatures
from journeyguard.training.calibration import fit_calibrator
from journeyguard.training.candidates import choose, fit_bgnbd, fit_candidates, refit
from journeyguard.training.metrics import (
    calibration_curve,
    days_bin_labels,
    days_bins,
    evaluate,
    metrics_by_group,
)
from journeyguard.training.models import JourneyModel, journey_slices
from journeyguard.training.monitor import reference_profile

PREFIX_GROUP = "events"  # the prefix length: events seen so far
DAYS_GROUP = "tenure_days"  # days since the first event
BASELINE = "logistic"  # the candidate the winner is compared with by prefix and by days
RELIABILITY_BINS = 10


@dataclass
class CandidateResult:
    """One candidate as the run reports it: its validation log loss (fitted on the fit slice,
    the number it was chosen by) and, refitted on every training row as the registered model
    is, its test metrics and scores."""

    name: str
    detail: str
    validation_log_loss: float
    test: dict[str, float]
    score: np.ndarray  # on the test rows


@dataclass
class TrainingRun:
    task: TaskConfig
    seed: int
    dataset: Dataset
    features: pd.DataFrame  # every row's path features, then BG/NBD columns for absent tasks
    model: JourneyModel  # the winner, refitted on every training row: the registered model
    winner: str
    winner_reason: str
    candidates: list[CandidateResult]  # each refitted as the registered model is
    metrics: dict[str, float]  # the registered model's, on the test period
    baseline_metrics: dict[str, float]  # the logistic model's
    bgnbd_metrics: dict[str, float] | None
    by_prefix: pd.DataFrame
    by_days: pd.DataFrame
    predictions: pd.DataFrame  # test rows: customer_id, as_of, y, score, split
    fingerprint: str
    left_out: dict[str, str] = field(default_factory=dict)  # candidates not fitted, and why

    @property
    def test_features(self) -> pd.DataFrame:
        test = self.dataset.frame["split"] == "test"
        return self.features.loc[test, self.model.feature_names]


def train_task(
    log: EventLog,
    task: TaskConfig,
    *,
    test_from: pd.Timestamp | None = None,
    seed: int = 0,
    reference_bins: int = 10,
    span: tuple[int, int] | None = None,
) -> TrainingRun:
    """Fits the task's candidates on the snapshot dataset of `log`, keeps the one chosen on
    the validation slice, and evaluates them all on the test period. The winner's
    `model.info` records the candidates, why it won, its reliability on the test period and
    the profile a monitor compares later populations with (`reference`). `span`: the whole
    log's first and last event (ns) when `log` is a sample of its journeys."""
    data = build_dataset(log, task, test_from=test_from, span=span)
    frame = data.frame
    train, test = (frame["split"] == "train").to_numpy(), (frame["split"] == "test").to_numpy()
    if not test.any():
        raise ValueError(
            f"task {task.name!r}: no test snapshot with a known outcome after "
            f"{data.test_from.isoformat()}; choose an earlier --test-from"
        )
    y = frame["y"].to_numpy().astype(int)
    customers = frame["customer_id"].to_numpy()
    slices = journey_slices(customers[train])
    bgnbd, bgnbd_error = (
        fit_bgnbd(data, train, slices, task) if task.label == "absent" else (None, "")
    )
    features = frame[data.feature_names]
    if bgnbd is not None:
        features = features.assign(**bgnbd.columns(data.snapshots))
    fitted = fit_candidates(data, features, y, train, slices, task, seed, bgnbd)
    left_out = {"lightgbm_bgnbd": f"no BG/NBD fit: {bgnbd_error}"} if bgnbd_error else {}
    choice = choose(fitted, customers[train][slices == "validation"])
    refitted = refit(fitted, features[train], y[train], customers[train])
    model = refitted[choice.winner.name]
    results = [
        _result(c.name, c.detail, c.validation_log_loss, refitted[c.name], features[test], y[test])
        for c in fitted
    ]
    by_name = {r.name: r for r in results}
    score, baseline = by_name[choice.winner.name].score, by_name[BASELINE].score
    metrics = by_name[choice.winner.name].test
    model.info |= {
        "winner_reason": choice.reason,
        "candidates": {r.name: _summary(r) for r in results},
        "reliability": reliability(y[test], score),
        "reference": reference_profile(
            model,
            eligible_snapshots(Snapshots.at(log, log.last_time), task),
            reference_bins,
            metrics["roc_auc"],
        ),
    }
    groups = _groups(features[test])
    return TrainingRun(
        task=task,
        seed=seed,
        dataset=data,
        features=features,
        model=model,
        winner=choice.winner.name,
        winner_reason=choice.reason,
        candidates=results,
        metrics=metrics,
        baseline_metrics=by_name[BASELINE].test,
        bgnbd_metrics=None
        if bgnbd is None
        else _bgnbd_metrics(bgnbd, features, y, train, test, slices),
        by_prefix=_compare_by(groups[PREFIX_GROUP], y[test], score, baseline),
        by_days=_compare_by(groups[DAYS_GROUP], y[test], score, baseline),
        predictions=frame.loc[test, ["customer_id", "as_of", "y"]]
        .assign(score=score, split="test")
        .reset_index(drop=True),
        fingerprint=fingerprint(frame),
        left_out=left_out,
    )


def _result(
    name: str,
    detail: str,
    validation_log_loss: float,
    model: JourneyModel,
    features: pd.DataFrame,
    y: np.ndarray,
) -> CandidateResult:
    score = model.predict_features(features)
    return CandidateResult(name, detail, validation_log_loss, evaluate(y, score), score)


def _summary(result: CandidateResult) -> dict[str, Any]:
    keys = ("roc_auc", "pr_auc", "brier", "log_loss")
    return {
        "detail": result.detail,
        "validation_log_loss": result.validation_log_loss,
        **{f"test_{k}": result.test[k] for k in keys},
    }


def reliability(y: np.ndarray, risk: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """The reliability diagram's numbers: per bin of predicted risk (equal counts), the rows,
    the mean predicted risk and the realised rate with its Wilson 95 % interval."""
    table = calibration_curve(y, risk, bins=bins)
    return [
        {
            "n": int(row.n),
            "predicted": float(row.mean_score),
            "realised": float(row.observed_rate),
            "realised_low": float(row.observed_low),
            "realised_high": float(row.observed_high),
        }
        for row in table.itertuples()
    ]


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
    bgnbd: BGNBDFeatures,
    features: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    slices: np.ndarray,
) -> dict[str, float]:
    """BG/NBD alone on the test rows: ranked by its expected purchases in the horizon (fewer,
    riskier); its probabilities from a calibrator fitted on the calibration slice, so that
    its Brier score and log loss compare with the candidates'."""
    expected = features["bgnbd__expected_purchases"].to_numpy()
    calibration = np.flatnonzero(train)[slices == "calibration"]
    to_risk = fit_calibrator(-expected[calibration], y[calibration])
    calibrated = evaluate(y[test], to_risk.predict(-expected[test]))
    # Ranking metrics from BG/NBD's own ranking (calibration steps would tie rows).
    metrics = evaluate(y[test], -expected[test]) | {k: calibrated[k] for k in ("brier", "log_loss")}
    return metrics | {f"param_{k}": float(v) for k, v in vars(bgnbd.params).items()}
