"""Uplift learners and the uplift model: how much an action raises the probability of the
good outcome, per customer, learnt from a randomised experiment.

Two learners, each on two base models (the regularised logistic model and LightGBM of
`training.models`, the same settings and the same choice of strength or trees on validation):
- `two_model` (the T-learner): one classifier of the good outcome on the treated rows, one on
  the control rows; the uplift is the difference of their probabilities.
- `transformed_outcome` (the class transformation of Jaskowski and Jaroszewicz 2012): one
  classifier of z = 1 when (treated and good) or (control and not good), the arms weighted to
  equal totals; then P(z = 1 | x) = (1 + uplift) / 2 for any share treated, so the uplift is
  2 P(z = 1 | x) - 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit

from journeyguard.features.build import feature_columns
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.transformer import PathFeatures
from journeyguard.training.metrics import LOG_LOSS_EPS
from journeyguard.training.models import (
    LOGISTIC_C,
    as_matrix,
    lightgbm_params,
    logistic_scorer,
    min_leaf_rows,
)
from journeyguard.training.scorers import LightGBMScorer

LEARNERS = ("two_model", "transformed_outcome")
BASES = ("logistic", "lightgbm")
EARLY_STOPPING = 50  # rounds without a better validation loss


@dataclass(frozen=True)
class BaseSettings:
    """What a base model chose on validation, fixed when it is refitted on more rows."""

    kind: str  # "logistic" | "lightgbm"
    c: float = 1.0  # the logistic model's strength
    trees: int = 100  # LightGBM's number of trees

    @property
    def detail(self) -> str:
        return f"C={self.c:g}" if self.kind == "logistic" else f"{self.trees} trees"


def _weighted_log_loss(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> float:
    p = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    losses = -(y * np.log(p) + (1 - y) * np.log1p(-p))
    return float(np.average(losses, weights=weights))


def fit_base(
    kind: str,
    features: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    validation: np.ndarray,
    categorical: list[str],
    seed: int,
) -> tuple[Any, BaseSettings]:
    """A classifier of `y` on the rows outside `validation`, its strength (logistic) or trees
    (LightGBM, early stopping) chosen by the weighted log loss of the `validation` rows."""
    fit = ~validation
    if kind == "logistic":
        tried = []
        for c in LOGISTIC_C:
            scorer = logistic_scorer(features[fit], y[fit], c, seed, weights[fit])
            p = expit(scorer.raw(as_matrix(features[validation], list(features.columns))))
            tried.append((_weighted_log_loss(y[validation], p, weights[validation]), c, scorer))
        _, c, scorer = min(tried, key=lambda entry: entry[:2])
        return scorer, BaseSettings("logistic", c=c)
    classifier = lgb.LGBMClassifier(
        **lightgbm_params(seed), min_child_samples=min_leaf_rows(int(fit.sum()))
    )
    classifier.fit(
        features[fit],
        y[fit],
        sample_weight=weights[fit],
        eval_X=(features[validation],),
        eval_y=(y[validation],),
        eval_sample_weight=[weights[validation]],
        eval_metric="binary_logloss",
        categorical_feature=[c for c in categorical if c in features.columns],
        callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
    )
    trees = int(classifier.best_iteration_ or classifier.n_estimators)
    return LightGBMScorer(classifier), BaseSettings("lightgbm", trees=trees)


def refit_base(
    settings: BaseSettings,
    features: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray,
    categorical: list[str],
    seed: int,
) -> Any:
    """The base model of `settings` fitted on every given row."""
    if settings.kind == "logistic":
        return logistic_scorer(features, y, settings.c, seed, weights)
    classifier = lgb.LGBMClassifier(
        **(lightgbm_params(seed) | {"n_estimators": settings.trees}),
        min_child_samples=min_leaf_rows(len(y)),
    )
    used = [c for c in categorical if c in features.columns]
    classifier.fit(features, y, sample_weight=weights, categorical_feature=used)
    return LightGBMScorer(classifier)


def arm_weights(treated: np.ndarray) -> np.ndarray:
    """Weights that give both arms the same total (the rows' count): a 10 % control group
    weighs as much as the 90 % treated."""
    treated = np.asarray(treated, dtype=bool)
    n, n_t = len(treated), int(treated.sum())
    n_c = n - n_t
    if n_t == 0 or n_c == 0:
        raise ValueError(
            f"an uplift model needs treated and control rows; got {n_t} treated, {n_c} control"
        )
    return np.where(treated, n / (2 * n_t), n / (2 * n_c))


def transformed_target(good: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """z: 1 for a treated row with the good outcome and a control row without it."""
    good, treated = np.asarray(good, dtype=bool), np.asarray(treated, dtype=bool)
    return (good == treated).astype(np.int8)


@dataclass
class UpliftLearner:
    """A fitted learner: its members' scorers (log-odds of the good outcome for `treated` and
    `control`, or of z for `transformed`) and the settings each chose."""

    name: str  # "<learner>_<base>"
    members: dict[str, Any]
    settings: dict[str, BaseSettings]

    @property
    def kind(self) -> str:
        return "two_model" if "treated" in self.members else "transformed_outcome"

    @property
    def detail(self) -> str:
        return ", ".join(f"{arm}: {s.detail}" for arm, s in self.settings.items())

    def uplift_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """The incremental probability of the good outcome of each row."""
        if self.kind == "two_model":
            return expit(self.members["treated"].raw(matrix)) - expit(
                self.members["control"].raw(matrix)
            )
        return 2.0 * expit(self.members["transformed"].raw(matrix)) - 1.0

    def control_matrix(self, matrix: np.ndarray) -> np.ndarray | None:
        """A two-model learner's probability of the good outcome without the action."""
        control = self.members.get("control")
        return None if control is None else expit(control.raw(matrix))


def fit_learner(
    learner: str,
    base: str,
    features: pd.DataFrame,
    good: np.ndarray,
    treated: np.ndarray,
    validation: np.ndarray,
    categorical: list[str],
    seed: int,
) -> UpliftLearner:
    """One learner on one base model, fitted outside `validation`, settings chosen on it."""
    name = f"{learner}_{base}"
    if learner == "two_model":
        members, settings = {}, {}
        for arm, rows in (("treated", treated), ("control", ~treated)):
            ones = np.ones(int(rows.sum()))
            scorer, chosen = fit_base(
                base, features[rows], good[rows], ones, validation[rows], categorical, seed
            )
            members[arm], settings[arm] = scorer, chosen
        return UpliftLearner(name, members, settings)
    z, weights = transformed_target(good, treated), arm_weights(treated)
    scorer, chosen = fit_base(base, features, z, weights, validation, categorical, seed)
    return UpliftLearner(name, {"transformed": scorer}, {"transformed": chosen})


def refit_learner(
    fitted: UpliftLearner,
    features: pd.DataFrame,
    good: np.ndarray,
    treated: np.ndarray,
    categorical: list[str],
    seed: int,
) -> UpliftLearner:
    """The learner with its settings fixed, fitted on every given row."""
    if fitted.kind == "two_model":
        members = {
            arm: refit_base(
                fitted.settings[arm],
                features[rows],
                good[rows],
                np.ones(int(rows.sum())),
                categorical,
                seed,
            )
            for arm, rows in (("treated", treated), ("control", ~treated))
        }
        return UpliftLearner(fitted.name, members, fitted.settings)
    z, weights = transformed_target(good, treated), arm_weights(treated)
    member = refit_base(fitted.settings["transformed"], features, z, weights, categorical, seed)
    return UpliftLearner(fitted.name, {"transformed": member}, fitted.settings)


@dataclass
class UpliftModel:
    """The one uplift artifact: the path-feature transformer (the same `PathFeatures` as the
    risk models) and a fitted learner. `uplift` is the incremental probability of the
    experiment's good outcome if the customer gets the action, seen at the snapshot."""

    experiment: str
    transformer: PathFeatures
    learner: UpliftLearner
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def feature_matrix(self, snapshots: Snapshots) -> np.ndarray:
        columns = feature_columns(snapshots, self.transformer.vocabulary_)
        matrix = np.empty((len(snapshots), len(self.feature_names)), dtype=np.float64)
        for j, name in enumerate(self.feature_names):
            matrix[:, j] = columns[name]
        return matrix

    def uplift(self, snapshots: Snapshots) -> np.ndarray:
        return self.learner.uplift_matrix(self.feature_matrix(snapshots))

    def uplift_features(self, features: pd.DataFrame) -> np.ndarray:
        return self.learner.uplift_matrix(as_matrix(features, self.feature_names))
