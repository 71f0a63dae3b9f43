"""The models of a task and the one artifact that crosses from training to scoring and serving.

`JourneyModel` holds the fitted feature transformer (so a journey's features come from the same
code and vocabulary), BG/NBD features where its scorer uses them, the scorer (`scorers`:
LightGBM, logistic, or a blend) and its calibrator (`calibration`). Training rows fall in three
slices by journey: candidates are fitted on `fit`, stopped early or regularised by
`validation`, and calibrated on `calibration`; the chosen one is then refitted on every training
row and calibrated on their out-of-fold scores (`cross_fit`).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.transformer import PathFeatures
from journeyguard.features.vocabulary import Vocabulary
from journeyguard.training.bgnbd_features import BGNBDFeatures
from journeyguard.training.calibration import Calibrator, fit_calibrator
from journeyguard.training.metrics import evaluate
from journeyguard.training.scorers import LightGBMScorer, LogisticScorer, Scorer
from journeyguard.training.scoring_model import ScoringModel

SLICES = (0.70, 0.85)  # training rows by as_of: fit below 70 %, validation to 85 %, calibration
LOGISTIC_C = (0.01, 0.1, 1.0)  # regularisation strengths the logistic model chooses from
FOLDS = 5  # the registered model's cross-fitting


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
    """Scores snapshots: features by `transformer` (and `bgnbd`, for a model that uses BG/NBD
    quantities), a raw score in log-odds by `scorer`, a risk and its interval by `calibrator`."""

    task: str
    transformer: PathFeatures
    scorer: Scorer
    calibrator: Calibrator
    feature_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    bgnbd: BGNBDFeatures | None = None

    def features(self, snapshots: Snapshots) -> pd.DataFrame:
        frame = self.transformer.transform(snapshots)
        if self.bgnbd is not None:
            frame = frame.assign(**self.bgnbd.columns(snapshots))
        return frame[self.feature_names]

    @property
    def vocabulary(self) -> Vocabulary | None:
        """The fitted transformer's; None without one (the model scores feature rows only)."""
        return getattr(self.transformer, "vocabulary_", None)

    @functools.cached_property
    def scoring(self) -> ScoringModel:
        """The model as `ScoringModel`, which every scoring method below goes through."""
        return ScoringModel(
            self.task,
            self.vocabulary,
            self.scorer,
            self.calibrator,
            self.feature_names,
            self.info,
            self.bgnbd,
        )

    def exported(self) -> ScoringModel:
        """The `ScoringModel` with the scorer's exported form (`Scorer.exported`): the same
        answers, and a pickle that needs neither LightGBM nor scikit-learn to load."""
        return replace(self.scoring, scorer=self.scorer.exported())

    # Scoring, as `ScoringModel` does it (the one implementation):
    def feature_matrix(self, snapshots: Snapshots) -> np.ndarray:
        return self.scoring.feature_matrix(snapshots)

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return self.scoring.predict_matrix(matrix)

    def predict_interval_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.scoring.predict_interval_matrix(matrix)

    def contribution_matrix(self, matrix: np.ndarray) -> np.ndarray:
        return self.scoring.contribution_matrix(matrix)

    def predict_interval_and_contributions(self, matrix: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.scoring.predict_interval_and_contributions(matrix)

    def prepare_for_scoring(self) -> None:
        """Builds now what scoring would build on first use (LightGBM's TreeSHAP tables)."""
        self.scorer.prepare()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("scoring", None)  # a view of the fields, made again on use
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Loads models pickled before scorers existed: their booster becomes the scorer."""
        if "classifier" in state:
            state["scorer"] = LightGBMScorer(state.pop("classifier"))
        state.setdefault("bgnbd", None)
        self.__dict__.update(state)

    def predict_features(self, features: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities of the outcome for a feature frame."""
        return self.predict_matrix(as_matrix(features, self.feature_names))

    def predict(self, snapshots: Snapshots) -> np.ndarray:
        return self.predict_matrix(self.feature_matrix(snapshots))

    def contributions(self, features: pd.DataFrame) -> pd.DataFrame:
        """`contribution_matrix` of a feature frame, the expected value in the column `bias`."""
        values = self.contribution_matrix(as_matrix(features, self.feature_names))
        return pd.DataFrame(values, columns=[*self.feature_names, "bias"], index=features.index)


def as_matrix(features: pd.DataFrame, names: list[str]) -> np.ndarray:
    return features[names].to_numpy(dtype=np.float64)


def training_slices(as_of: np.ndarray) -> np.ndarray:
    """'fit', 'validation' or 'calibration' for each training row, by time (as_of order)."""
    cut_validation, cut_calibration = np.quantile(as_of, SLICES)
    return np.where(
        as_of < cut_validation,
        "fit",
        np.where(as_of < cut_calibration, "validation", "calibration"),
    )


def _buckets(customer_ids: np.ndarray) -> np.ndarray:
    """0..99 for each row, by a stable hash of its journey."""
    unique = pd.unique(customer_ids)
    bucket_of = {c: zlib.crc32(str(c).encode()) % 100 for c in unique}
    return np.array([bucket_of[c] for c in customer_ids])


def journey_slices(customer_ids: np.ndarray) -> np.ndarray:
    """'fit', 'validation' or 'calibration' for each training row, by a stable hash of its
    journey: every slice spans the whole training period (an outcome that only appears late
    still reaches the fit slice) and no journey's snapshots straddle two slices."""
    bucket = _buckets(customer_ids)
    low, high = (round(100 * cut) for cut in SLICES)
    return np.where(bucket < low, "fit", np.where(bucket < high, "validation", "calibration"))


def journey_folds(customer_ids: np.ndarray) -> np.ndarray:
    """0..FOLDS-1 for each training row by the same hash: a journey's rows share a fold."""
    return _buckets(customer_ids) * FOLDS // 100


Recipe = Callable[[pd.DataFrame, np.ndarray], Scorer]  # fits a scorer on rows, settings fixed


def fit_lightgbm(
    features: pd.DataFrame, y: np.ndarray, slices: np.ndarray, categorical: list[str], seed: int
) -> LightGBMScorer:
    """LightGBM on the fit slice, early stopping on the validation slice's log loss."""
    fit, validation = slices == "fit", slices == "validation"
    classifier = lgb.LGBMClassifier(
        **lightgbm_params(seed), min_child_samples=min_leaf_rows(int(fit.sum()))
    )
    classifier.fit(
        features[fit],
        y[fit],
        eval_X=(features[validation],),
        eval_y=(y[validation],),
        eval_metric="binary_logloss",
        categorical_feature=[c for c in categorical if c in features.columns],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    return LightGBMScorer(classifier)


def lightgbm_recipe(scorer: LightGBMScorer, categorical: list[str], seed: int) -> Recipe:
    """Refits `scorer`'s LightGBM on other rows with the number of trees early stopping chose."""
    trees = best_iteration(scorer)

    def fit(features: pd.DataFrame, y: np.ndarray) -> LightGBMScorer:
        classifier = lgb.LGBMClassifier(
            **(lightgbm_params(seed) | {"n_estimators": trees}),
            min_child_samples=min_leaf_rows(len(y)),
        )
        used = [c for c in categorical if c in features.columns]
        return LightGBMScorer(classifier.fit(features, y, categorical_feature=used), scorer.name)

    return fit


def best_iteration(scorer: LightGBMScorer) -> int:
    classifier = scorer.classifier
    return int(classifier.best_iteration_ or classifier.n_estimators)


def logistic_scorer(
    features: pd.DataFrame,
    y: np.ndarray,
    c: float,
    seed: int,
    weights: np.ndarray | None = None,
) -> LogisticScorer:
    """A logistic regression with L2 strength `c` on the standardised features, a missing
    value counting as the median of these rows; `weights` weigh the rows' losses."""
    matrix = as_matrix(features, list(features.columns))
    missing = np.isnan(matrix)
    with np.errstate(all="ignore"):  # a column never seen has no median: 0
        medians = np.nan_to_num(np.nanmedian(np.where(missing.all(axis=0), 0.0, matrix), axis=0))
    filled = np.where(missing, medians, matrix)
    mean, scale = filled.mean(axis=0), filled.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2_000, random_state=seed)
    model.fit((filled - mean) / scale, y, sample_weight=weights)
    coef, intercept = model.coef_[0].copy(), float(model.intercept_[0])
    return LogisticScorer(medians, mean, scale, coef, intercept, detail=f"C={c:g}")


def fit_logistic(
    features: pd.DataFrame, y: np.ndarray, slices: np.ndarray, seed: int
) -> LogisticScorer:
    """`logistic_scorer` on the fit slice with the strength of `LOGISTIC_C` whose own
    probabilities have the lowest log loss on the validation slice."""
    fit, validation = slices == "fit", slices == "validation"
    tried = []
    for c in LOGISTIC_C:
        scorer = logistic_scorer(features[fit], y[fit], c, seed)
        p = expit(scorer.raw(as_matrix(features[validation], list(features.columns))))
        tried.append((evaluate(y[validation], p)["log_loss"], c, scorer))
    return min(tried, key=lambda entry: entry[:2])[2]


def logistic_recipe(scorer: LogisticScorer, seed: int) -> Recipe:
    """Refits the logistic model on other rows with the strength it chose."""
    c = float(scorer.detail.removeprefix("C="))
    return lambda features, y: logistic_scorer(features, y, c, seed)


def calibrate(
    task: str,
    transformer: PathFeatures,
    scorer: Scorer,
    features: pd.DataFrame,
    y: np.ndarray,
    slices: np.ndarray,
    bgnbd: BGNBDFeatures | None = None,
) -> JourneyModel:
    """The `JourneyModel` of a scorer of `features`' columns, calibrated on the calibration
    slice (with the validation slice too when the outcome is missing from it)."""
    names = list(features.columns)
    calibration = slices == "calibration"
    if len(np.unique(y[calibration])) < 2:  # a rare outcome: widen to the validation rows
        calibration = calibration | (slices == "validation")
    calibrator = fit_calibrator(scorer.raw(as_matrix(features[calibration], names)), y[calibration])
    rows = {s: int((slices == s).sum()) for s in ("fit", "validation", "calibration")}
    return _model(task, transformer, scorer, calibrator, names, y, rows, bgnbd)


def cross_fit(
    recipe: Recipe, features: pd.DataFrame, y: np.ndarray, folds: np.ndarray
) -> tuple[Scorer, np.ndarray]:
    """The scorer `recipe` fits on every row, and every row's out-of-fold raw score (its fold
    scored by the recipe fitted on the other folds) to calibrate it on, as scikit-learn's
    `CalibratedClassifierCV(ensemble=False)` does: each row serves the fit and, held out, the
    calibration."""
    matrix = as_matrix(features, list(features.columns))
    held_out = np.empty(len(y))
    for fold in np.unique(folds):
        rows = folds == fold
        held_out[rows] = recipe(features[~rows], y[~rows]).raw(matrix[rows])
    return recipe(features, y), held_out


def cross_fitted_model(
    task: str,
    transformer: PathFeatures,
    scorer: Scorer,
    held_out: np.ndarray,
    y: np.ndarray,
    names: list[str],
    bgnbd: BGNBDFeatures | None = None,
) -> JourneyModel:
    """The `JourneyModel` of a scorer of `cross_fit`, calibrated on the out-of-fold scores."""
    rows = {"fit": len(y), "calibration": len(y)}
    return _model(task, transformer, scorer, fit_calibrator(held_out, y), names, y, rows, bgnbd)


def _model(
    task: str,
    transformer: PathFeatures,
    scorer: Scorer,
    calibrator: Calibrator,
    names: list[str],
    y: np.ndarray,
    rows: dict[str, int],
    bgnbd: BGNBDFeatures | None,
) -> JourneyModel:
    info = {
        "scorer": scorer.name,
        "base_rate": float(np.mean(y)),
        "calibration": calibrator.method,
        "categorical_features": [c for c in transformer.categorical_features_ if c in names],
        "rows": rows,
    }
    if isinstance(scorer, LightGBMScorer):
        info["best_iteration"] = best_iteration(scorer)
    return JourneyModel(task, transformer, scorer, calibrator, names, info, bgnbd)


def train_lightgbm(
    task: str,
    transformer: PathFeatures,
    features: pd.DataFrame,
    y: np.ndarray,
    slices: np.ndarray,
    seed: int,
) -> JourneyModel:
    """LightGBM with early stopping on the validation slice, calibrated on the calibration
    slice."""
    scorer = fit_lightgbm(features, y, slices, transformer.categorical_features_, seed)
    return calibrate(task, transformer, scorer, features, y, slices)
