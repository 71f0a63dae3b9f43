"""The models of a task: LightGBM on the path features, calibrated on a held-out slice, and a
logistic-regression baseline on the same features.

`JourneyModel` is the one artifact that crosses from training to scoring and serving: the
fitted feature transformer (so a journey's features come from the same code and vocabulary),
the booster and its calibrator.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from journeyguard.features.build import feature_columns
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.transformer import PathFeatures
from journeyguard.training import treeshap

SLICES = (0.70, 0.85)  # training rows by as_of: fit below 70 %, validation to 85 %, calibration


def lightgbm_params(seed: int) -> dict[str, Any]:
    """Deterministic, unweighted (weights distort probabilities), one thread per call, and
    regularised: snapshots of one journey are alike, and the test period lies later in time
    than anything trained on, so small leaves and many trees overfit the training period."""
    return {
        "objective": "binary", "learning_rate": 0.05, "num_leaves": 7, "subsample": 0.8,
        "subsample_freq": 1, "colsample_bytree": 0.5, "reg_lambda": 1.0, "n_estimators": 1000,
        "random_state": seed, "deterministic": True, "force_row_wise": True, "n_jobs": 1,
        "verbose": -1,
    }  # fmt: skip


def min_leaf_rows(n_rows: int) -> int:
    """Rows a leaf needs: about 1 % of the training rows, between 20 and 1,000."""
    return int(np.clip(n_rows // 100, 20, 1_000))


@dataclass
class JourneyModel:
    """Scores snapshots: features by `transformer`, raw score by `classifier`, calibrated."""

    task: str
    transformer: PathFeatures
    classifier: lgb.LGBMClassifier
    calibrator: Calibrator
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def features(self, snapshots: Snapshots) -> pd.DataFrame:
        return self.transformer.transform(snapshots)[self.feature_names]

    def feature_matrix(self, snapshots: Snapshots) -> np.ndarray:
        """The features of `features` as one float64 array in `feature_names` order: the same
        numbers without a frame, for scoring a few journeys fast."""
        columns = feature_columns(snapshots, self.transformer.vocabulary_)
        matrix = np.empty((len(snapshots), len(self.feature_names)), dtype=np.float64)
        for j, name in enumerate(self.feature_names):
            matrix[:, j] = columns[name]
        return matrix

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of the outcome for a `feature_matrix`."""
        raw = self.classifier.booster_.predict(matrix, raw_score=True, num_threads=1)
        return self.calibrator.predict(raw)

    def contribution_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Per feature of a `feature_matrix`, its contribution to the raw (log-odds) score of
        the uncalibrated booster, then the expected value: each row sums to the raw score.
        LightGBM's TreeSHAP values, from tables where the trees are small enough."""
        if self._shap_tables is None:
            return self.classifier.booster_.predict(matrix, pred_contrib=True, num_threads=1)
        return treeshap.contributions(self._shap_tables, matrix)

    def prepare_for_scoring(self) -> None:
        """Builds now what scoring would build on first use (the TreeSHAP tables, ~0.1 s)."""
        _ = self._shap_tables

    @functools.cached_property
    def _shap_tables(self) -> treeshap.ShapTables | None:
        return treeshap.tables_of(self.classifier.booster_)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_shap_tables", None)  # made again from the booster, never stored
        return state

    def predict_features(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of the outcome for a feature frame."""
        return self.predict_matrix(_as_matrix(features, self.feature_names))

    def predict(self, snapshots: Snapshots) -> np.ndarray:
        return self.predict_matrix(self.feature_matrix(snapshots))

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """`contribution_matrix` of a feature frame, the expected value in the column `bias`."""
        values = self.contribution_matrix(_as_matrix(features, self.feature_names))
        return pd.DataFrame(values, columns=[*self.feature_names, "bias"], index=features.index)


def _as_matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    return features[names].to_numpy(dtype=np.float64)


@dataclass
class Calibrator:
    """Maps the booster's raw score (log-odds) to a probability: isotonic with enough held-out
    rows, else a logistic curve (Platt)."""

    method: str
    mapping: IsotonicRegression | LogisticRegression

    def predict(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            # IsotonicRegression.predict with out_of_bounds="clip", without scikit-learn's
            # input checks: they cost a one-journey request more than the interpolation.
            iso = self.mapping
            clipped = np.clip(np.asarray(raw, dtype=np.float64), iso.X_min_, iso.X_max_)
            return np.interp(clipped, iso.X_thresholds_, iso.y_thresholds_)
        return self.mapping.predict_proba(np.asarray(raw).reshape(-1, 1))[:, 1]


def fit_calibrator(raw: np.ndarray, y: np.ndarray, min_isotonic_rows: int = 2_000) -> Calibrator:
    if len(np.unique(y)) < 2:
        raise ValueError(
            "the held-out rows for calibration hold one outcome only; the task's "
            "outcome is too rare in the training period to calibrate a model"
        )
    if len(y) >= min_isotonic_rows:
        return Calibrator("isotonic", IsotonicRegression(out_of_bounds="clip").fit(raw, y))
    return Calibrator("sigmoid", LogisticRegression().fit(np.asarray(raw).reshape(-1, 1), y))


def training_slices(as_of: np.ndarray) -> np.ndarray:
    """'fit', 'validation' or 'calibration' for each training row, by time (as_of order)."""
    cut_validation, cut_calibration = np.quantile(as_of, SLICES)
    return np.where(
        as_of < cut_validation,
        "fit",
        np.where(as_of < cut_calibration, "validation", "calibration"),
    )


def journey_slices(customer_ids: np.ndarray) -> np.ndarray:
    """'fit', 'validation' or 'calibration' for each training row, by a stable hash of its
    journey: every slice spans the whole training period (an outcome that only appears late
    still reaches the fit slice) and no journey's snapshots straddle two slices."""
    buckets = np.array([zlib.crc32(str(c).encode()) % 100 for c in pd.unique(customer_ids)])
    bucket_of = dict(zip(pd.unique(customer_ids), buckets, strict=True))
    bucket = np.array([bucket_of[c] for c in customer_ids])
    low, high = (round(100 * cut) for cut in SLICES)
    return np.where(bucket < low, "fit", np.where(bucket < high, "validation", "calibration"))


def train_lightgbm(
    task: str,
    transformer: PathFeatures,
    features: pd.DataFrame,
    y: np.ndarray,
    slices: np.ndarray,
    seed: int,
) -> JourneyModel:
    """LightGBM with early stopping on the validation slice, then calibrated on the calibration
    slice (with the validation slice too when the outcome is missing from it)."""
    names = list(features.columns)
    categorical = [c for c in transformer.categorical_features_ if c in names]
    fit, validation, calibration = (slices == s for s in ("fit", "validation", "calibration"))
    classifier = lgb.LGBMClassifier(
        **lightgbm_params(seed), min_child_samples=min_leaf_rows(int(fit.sum()))
    )
    classifier.fit(
        features[fit],
        y[fit],
        eval_X=(features[validation],),
        eval_y=(y[validation],),
        eval_metric="binary_logloss",
        categorical_feature=categorical,
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    if len(np.unique(y[calibration])) < 2:  # a rare outcome: widen to the validation rows
        calibration = calibration | validation
    raw = classifier.predict(features[calibration], raw_score=True, num_threads=1)
    calibrator = fit_calibrator(raw, y[calibration])
    method = calibrator.method
    info = {
        "best_iteration": int(classifier.best_iteration_ or classifier.n_estimators),
        "base_rate": float(np.mean(y)),
        "calibration": method,
        "categorical_features": categorical,
        "rows": {s: int((slices == s).sum()) for s in ("fit", "validation", "calibration")},
    }
    return JourneyModel(task, transformer, classifier, calibrator, names, info)


def train_baseline(features: pd.DataFrame, y: np.ndarray, seed: int):
    """Logistic regression on the same features: imputed, standardised, L2-regularised."""
    model = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2_000, random_state=seed),
    )
    return model.fit(features, y)
