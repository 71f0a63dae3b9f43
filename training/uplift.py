"""One uplift training run of an experiment: split, candidate learners, the winner, evaluation.

Pure of MLflow (`training.uplift_champion` logs and registers what this returns). The rules,
in order:
1. Test rows: journeys by a stable hash (a fifth of them), or with `split = "time"` the rows
   of the latest fifth of the experiment's moments; training then keeps only rows whose
   outcome window closed before the test part starts.
2. The path features (`PathFeatures`) are learnt from the training rows, as training does.
3. Candidates: `two_model` and `transformed_outcome` learners (`training.uplift_learners`), each
   on the logistic model and on LightGBM, fitted on the fit slice of the training journeys
   (the same hash slices as training's; its calibration slice joins validation, since nothing
   is calibrated) and scored by the Qini coefficient on the validation slice.
4. The winner has the highest validation Qini, unless a simpler candidate (`COMPLEXITY`) is
   within half a bootstrap standard error of it: the simpler one wins the near-tie.
5. Every candidate is refitted, its settings fixed, on all training rows; the test part
   reports each one's Qini, and the winner's curve, deciles and the average effect, beside
   what ranking by risk (the probability of no good outcome without the action, from the
   control rows) would have gained on the same customers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.config.model import ExperimentConfig, TaskConfig, nanoseconds
from journeyguard.features.experiments import ExperimentRows
from journeyguard.features.transformer import PathFeatures
from journeyguard.training.models import journey_slices
from journeyguard.training.uplift_learners import (
    BASES,
    LEARNERS,
    UpliftLearner,
    UpliftModel,
    fit_learner,
    refit_learner,
)
from journeyguard.training.uplift_metrics import (
    average_effect,
    qini_coefficient,
    qini_curve,
    qini_difference_error,
    uplift_by_decile,
)

COMPLEXITY = (
    "two_model_logistic", "transformed_outcome_logistic", "two_model_lightgbm",
    "transformed_outcome_lightgbm",
)  # fmt: skip  # simplest first
NEAR_TIE = 0.5  # bootstrap standard errors within which the simpler learner wins
TEST_SHARE = 0.2
RISK_RANKING = "two_model_lightgbm"  # whose control model ranks by risk, for comparison


@dataclass
class UpliftCandidate:
    name: str
    detail: str
    validation_qini: float
    test_qini: float
    test_uplift: np.ndarray


@dataclass
class UpliftRun:
    experiment: ExperimentConfig
    seed: int
    rows: ExperimentRows
    split: np.ndarray  # "train" | "gap" | "test" per row
    model: UpliftModel  # the winner refitted on every training row
    winner: str
    winner_reason: str
    candidates: list[UpliftCandidate]
    metrics: dict[str, float]  # the winner's on the test rows
    effect: dict[str, float]  # the average effect on the test rows
    deciles: pd.DataFrame
    curve: pd.DataFrame
    risk_qini: float  # ranking the test rows by risk instead
    risk: np.ndarray  # the test rows' risk: P(no good outcome) without the action
    risk_deciles: pd.DataFrame
    predictions: pd.DataFrame  # test rows: customer_id, uplift, treated, outcome

    @property
    def test(self) -> np.ndarray:
        return self.split == "test"


def split_rows(rows: ExperimentRows, experiment: ExperimentConfig, task: TaskConfig) -> np.ndarray:
    """Rule 1: 'train', 'gap' or 'test' per row."""
    if experiment.split == "hash":
        bucket = np.array([zlib.crc32(f"uplift:{c}".encode()) % 100 for c in rows.customer_ids])
        return np.where(bucket < round(100 * (1 - TEST_SHARE)), "train", "test").astype(object)
    test_from = np.quantile(rows.moments, 1 - TEST_SHARE)
    split = np.full(len(rows), "gap", dtype=object)
    split[rows.moments + nanoseconds(task.horizon) < test_from] = "train"
    split[rows.moments >= test_from] = "test"
    return split


def train_uplift(
    rows: ExperimentRows, experiment: ExperimentConfig, task: TaskConfig, *, seed: int = 0
) -> UpliftRun:
    """Rules 1-5 on the experiment's rows."""
    split = split_rows(rows, experiment, task)
    train, test = split == "train", split == "test"
    for part, mask in (("training", train), ("test", test)):
        arms = rows.treated[mask]
        if arms.all() or not arms.any():
            raise ValueError(
                f"experiment {experiment.name!r}: its {part} rows need both treated and control "
                f"customers; got {int(arms.sum())} treated, {int((~arms).sum())} control"
            )
    transformer = PathFeatures().fit(rows.snapshots.subset(train), rows.y[train])
    features = transformer.transform(rows.snapshots)
    names = list(features.columns)
    categorical = transformer.categorical_features_
    good, treated = rows.good.astype(np.int8), rows.treated
    validation = journey_slices(rows.customer_ids[train]) != "fit"
    fitted = [
        fit_learner(
            learner,
            base,
            features[train],
            good[train],
            treated[train],
            validation,
            categorical,
            seed,
        )
        for learner in LEARNERS
        for base in BASES
    ]
    on_validation = np.flatnonzero(train)[validation]
    validation_scores = {
        f.name: f.uplift_matrix(features.iloc[on_validation].to_numpy(np.float64)) for f in fitted
    }
    winner, reason = choose(validation_scores, good[on_validation], treated[on_validation], seed)
    refitted = {
        f.name: refit_learner(f, features[train], good[train], treated[train], categorical, seed)
        for f in fitted
    }
    test_matrix = features[test].to_numpy(np.float64)
    rows_at = (on_validation, test)
    candidates = [
        _candidate(f, refitted[f.name], validation_scores[f.name], test_matrix, rows, rows_at)
        for f in fitted
    ]
    best = refitted[winner]
    uplift = best.uplift_matrix(test_matrix)
    control = refitted[RISK_RANKING].control_matrix(test_matrix)
    risk = 1.0 - control  # no good outcome without the action
    good_t, treated_t = good[test], treated[test]
    model = UpliftModel(experiment.name, transformer, best, names)
    metrics = {
        "qini": qini_coefficient(good_t, treated_t, uplift),
        "risk_qini": qini_coefficient(good_t, treated_t, risk),
        "validation_qini": next(c.validation_qini for c in candidates if c.name == winner),
    }
    model.info = {
        "winner": winner,
        "winner_reason": reason,
        "goal": experiment.goal,
        "outcome": task.name,
        "test_qini": metrics["qini"],
        "rows": {part: int((split == part).sum()) for part in ("train", "gap", "test")},
    }
    return UpliftRun(
        experiment=experiment,
        seed=seed,
        rows=rows,
        split=split,
        model=model,
        winner=winner,
        winner_reason=reason,
        candidates=candidates,
        metrics=metrics,
        effect=average_effect(good_t, treated_t),
        deciles=uplift_by_decile(good_t, treated_t, uplift),
        curve=qini_curve(good_t, treated_t, uplift).assign(
            risk=qini_curve(good_t, treated_t, risk)["qini"]
        ),
        risk_qini=metrics["risk_qini"],
        risk=risk,
        risk_deciles=uplift_by_decile(good_t, treated_t, risk),
        predictions=pd.DataFrame(
            {
                "customer_id": rows.customer_ids[test],
                "uplift": uplift,
                "treated": treated_t.astype(np.int8),
                "outcome": good_t,
            }
        ),
    )


def _candidate(
    fitted: UpliftLearner,
    refitted: UpliftLearner,
    validation_score: np.ndarray,
    test_matrix: np.ndarray,
    rows: ExperimentRows,
    rows_at: tuple[np.ndarray, np.ndarray],
) -> UpliftCandidate:
    """A candidate's validation Qini (fitted on the fit slice) and test Qini (refitted)."""
    (on_validation, test), good, treated = rows_at, rows.good, rows.treated
    test_uplift = refitted.uplift_matrix(test_matrix)
    return UpliftCandidate(
        fitted.name,
        fitted.detail,
        qini_coefficient(good[on_validation], treated[on_validation], validation_score),
        qini_coefficient(good[test], treated[test], test_uplift),
        test_uplift,
    )


def choose(
    scores: dict[str, np.ndarray], good: np.ndarray, treated: np.ndarray, seed: int
) -> tuple[str, str]:
    """Rule 4: the winner's name and why, in words."""
    qini = {name: qini_coefficient(good, treated, s) for name, s in scores.items()}
    best = max(qini, key=lambda name: (qini[name], -COMPLEXITY.index(name)))
    for name in sorted(scores, key=COMPLEXITY.index):
        if name == best:
            break
        error = qini_difference_error(good, treated, scores[best], scores[name], seed=seed)
        if qini[best] - qini[name] <= NEAR_TIE * error:
            return name, (
                f"{name} is within half a standard error of the highest validation Qini "
                f"({best} {qini[best]:.4f}, {name} {qini[name]:.4f}, bootstrap standard error "
                f"{error:.4f}): the simpler learner wins a near-tie"
            )
    runner_up = max((n for n in qini if n != best), key=lambda n: qini[n])
    return best, (
        f"{best} has the highest validation Qini ({qini[best]:.4f}, next {runner_up} "
        f"{qini[runner_up]:.4f}), and no simpler learner is within half a standard error of it"
    )


def summary(run: UpliftRun) -> dict[str, Any]:
    """The run in plain JSON types."""
    return {
        "experiment": run.experiment.name,
        "outcome": run.experiment.outcome,
        "goal": run.experiment.goal,
        "split": run.experiment.split,
        "rows": run.model.info["rows"],
        "excluded": run.rows.excluded,
        "winner": run.winner,
        "winner_reason": run.winner_reason,
        "candidates": [
            {
                "name": c.name,
                "detail": c.detail,
                "validation_qini": c.validation_qini,
                "test_qini": c.test_qini,
            }
            for c in run.candidates
        ],
        "metrics": run.metrics,
        "average_effect": run.effect,
        "deciles": run.deciles.to_dict(orient="records"),
        "risk_deciles": run.risk_deciles.to_dict(orient="records"),
        "qini_curve": run.curve.to_dict(orient="list"),
    }
