"""The candidate models of a task and the choice among them, on the training rows only.

Rules, in the order `fit_candidates` and `choose` apply them:
1. Fit `logistic` (the regularised logistic model) and `lightgbm` on the path features; for an
   `absent` task also `lightgbm_bgnbd`, LightGBM with the BG/NBD quantities as extra features
   (parameters fitted on the fit slice's purchases up to the end of training). A candidate that
   cannot be fitted is left out.
2. Every candidate is calibrated on the calibration slice and scored by its log loss on the
   validation slice.
3. `blend`: the weighted log-odds of the two best candidates; the weight (0.1 .. 0.9) is the
   one whose blend, calibrated on the calibration slice, has the lowest validation log loss.
   Since the weight is chosen there, the blend competes with an honest loss: each half of the
   validation journeys scored with the weight the other half chose.
4. The winner is the candidate with the lowest validation log loss, unless a simpler one
   (`COMPLEXITY` order) is within half a standard error of it (`NEAR_TIE`): the standard error
   of the mean difference of their per-row losses, with a journey's rows as one cluster (its
   snapshots are alike). The test period plays no part: it only reports.
5. The registered model is the winner refitted, its settings fixed (C, the number of trees,
   the blend's weight), on every training row, and calibrated on their out-of-fold raw scores
   (5 folds by journey): small logs cannot spare a third of their rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.config.model import TaskConfig
from journeyguard.features.dataset import Dataset
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.training.bgnbd_features import BGNBDFeatures
from journeyguard.training.calibration import fit_calibrator
from journeyguard.training.metrics import LOG_LOSS_EPS
from journeyguard.training.models import (
    JourneyModel,
    Recipe,
    as_matrix,
    calibrate,
    cross_fit,
    cross_fitted_model,
    fit_lightgbm,
    fit_logistic,
    journey_folds,
    lightgbm_recipe,
    logistic_recipe,
)
from journeyguard.training.scorers import BlendScorer

COMPLEXITY = ("logistic", "lightgbm", "lightgbm_bgnbd", "blend")  # simplest first
NEAR_TIE = 0.5  # standard errors of the loss difference within which the simpler model wins
BLEND_WEIGHTS = tuple(np.round(np.arange(0.1, 1.0, 0.1), 1))


@dataclass
class Candidate:
    name: str
    model: JourneyModel  # fitted on the fit slice, calibrated on the calibration slice
    validation_log_loss: float
    validation_losses: np.ndarray  # per validation row, for the near-tie rule
    recipe: Recipe | None  # fits the same scorer, settings fixed, on other rows
    detail: str = ""
    members: tuple[str, ...] = ()  # a blend's candidates ...
    weights: tuple[float, ...] = ()  # ... and their weights


@dataclass(frozen=True)
class Choice:
    winner: Candidate
    reason: str  # in words: why it won


def fit_candidates(
    data: Dataset,
    features: pd.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    slices: np.ndarray,
    task: TaskConfig,
    seed: int,
    bgnbd: BGNBDFeatures | None,
) -> list[Candidate]:
    """The candidates of rules 1-3, fitted on the `train` rows of `features` (the path
    features, then the BG/NBD columns when `bgnbd` is given)."""
    path_names = data.feature_names
    rows, labels = features[train], y[train]
    transformer = data.transformer
    categorical = transformer.categorical_features_
    logistic = fit_logistic(rows[path_names], labels, slices, seed)
    lightgbm = fit_lightgbm(rows[path_names], labels, slices, categorical, seed)
    scorers = {
        "logistic": (logistic, logistic_recipe(logistic, seed), None),
        "lightgbm": (lightgbm, lightgbm_recipe(lightgbm, categorical, seed), None),
    }
    if bgnbd is not None:
        with_bgnbd = fit_lightgbm(rows, labels, slices, categorical, seed)
        with_bgnbd.name = "lightgbm_bgnbd"
        recipe = lightgbm_recipe(with_bgnbd, categorical, seed)
        scorers["lightgbm_bgnbd"] = (with_bgnbd, recipe, bgnbd)
    validation = slices == "validation"
    candidates = []
    for name, (scorer, recipe, extra) in scorers.items():
        names = list(rows.columns) if extra is not None else path_names
        model = calibrate(task.name, transformer, scorer, rows[names], labels, slices, extra)
        losses = row_losses(labels[validation], model.predict_features(rows[validation]))
        detail = getattr(scorer, "detail", "")
        candidates.append(Candidate(name, model, float(losses.mean()), losses, recipe, detail))
    clusters = data.frame["customer_id"].to_numpy()[train][validation]
    candidates.append(blend(candidates, rows, labels, slices, clusters))
    return candidates


def blend(
    candidates: list[Candidate],
    rows: pd.DataFrame,
    y: np.ndarray,
    slices: np.ndarray,
    clusters: np.ndarray,
) -> Candidate:
    """Rule 3: the best weighted log-odds of the two best candidates. Its weight is chosen on
    the validation slice, so its validation log loss there would flatter it: the loss it is
    chosen by is that of each half of the validation journeys under the weight the other half
    prefers."""
    first, second = sorted(candidates, key=lambda c: c.validation_log_loss)[:2]
    used = set(first.model.feature_names) | set(second.model.feature_names)
    names = [name for name in rows.columns if name in used]
    raws = [c.model.scorer.raw(as_matrix(rows, c.model.feature_names)) for c in (first, second)]
    calibration, validation = slices == "calibration", slices == "validation"
    if len(np.unique(y[calibration])) < 2:  # as `calibrate` does for a rare outcome
        calibration = calibration | validation
    tried = []
    for weight in BLEND_WEIGHTS:
        raw = weight * raws[0] + (1 - weight) * raws[1]
        calibrator = fit_calibrator(raw[calibration], y[calibration])
        tried.append(row_losses(y[validation], calibrator.predict(raw[validation])))
    losses = np.array(tried)  # (weights, validation rows)
    weight = float(BLEND_WEIGHTS[int(np.argmin(losses.mean(axis=1)))])
    loss, per_row = _held_out_choice(losses, clusters)
    weights = (weight, 1 - weight)
    columns = [np.array([names.index(n) for n in c.model.feature_names]) for c in (first, second)]
    scorer = BlendScorer([first.model.scorer, second.model.scorer], list(weights), columns)
    bgnbd = first.model.bgnbd or second.model.bgnbd
    base = first.model
    model = calibrate(base.task, base.transformer, scorer, rows[names], y, slices, bgnbd)
    detail = f"{weight:.1f} x {first.name} + {1 - weight:.1f} x {second.name}"
    members = (first.name, second.name)
    return Candidate("blend", model, loss, per_row, None, detail, members, weights)


def refit(
    candidates: list[Candidate], features: pd.DataFrame, y: np.ndarray, customers: np.ndarray
) -> dict[str, JourneyModel]:
    """Rule 5 for every candidate: its scorer, settings fixed, fitted on every training row
    and calibrated on their out-of-fold raw scores (`models.cross_fit`, 5 folds by journey).
    A blend adds up its members' refitted scorers and out-of-fold scores with its weights."""
    folds = journey_folds(customers)
    fitted = {
        c.name: cross_fit(c.recipe, features[c.model.feature_names], y, folds)
        for c in candidates
        if c.recipe is not None
    }
    models = {}
    for c in candidates:
        m = c.model
        if c.recipe is None:  # a blend
            members = [fitted[name][0] for name in c.members]
            scorer = BlendScorer(members, list(c.weights), m.scorer.columns)
            held_out = sum(
                w * fitted[name][1] for name, w in zip(c.members, c.weights, strict=True)
            )
        else:
            scorer, held_out = fitted[c.name]
        models[c.name] = cross_fitted_model(
            m.task, m.transformer, scorer, held_out, y, m.feature_names, m.bgnbd
        )
    return models


def _held_out_choice(losses: np.ndarray, clusters: np.ndarray) -> tuple[float, np.ndarray]:
    """Per validation row, its loss under the weight chosen on the other half of the journeys
    (halves by the parity of the journey's rank), and their mean."""
    _, rank = np.unique(clusters, return_inverse=True)
    half = rank % 2 == 0
    per_row = np.empty(losses.shape[1])
    for here in (half, ~half):
        other = ~here
        choice = int(np.argmin(losses[:, other].mean(axis=1))) if other.any() else 0
        per_row[here] = losses[choice, here]
    return float(per_row.mean()), per_row


def row_losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Each row's log loss (probabilities clipped as `metrics.evaluate` clips them)."""
    p = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def choose(candidates: list[Candidate], clusters: np.ndarray) -> Choice:
    """Rule 4. `clusters` holds the journey of each validation row."""
    best = min(candidates, key=lambda c: c.validation_log_loss)
    for candidate in sorted(candidates, key=lambda c: COMPLEXITY.index(c.name)):
        if candidate is best:
            break
        gap = candidate.validation_log_loss - best.validation_log_loss
        error = clustered_standard_error(
            candidate.validation_losses - best.validation_losses, clusters
        )
        if gap <= NEAR_TIE * error:
            return Choice(
                candidate,
                f"{candidate.name} is within half a standard error of the lowest validation log "
                f"loss ({best.name} {best.validation_log_loss:.4f}, {candidate.name} "
                f"{candidate.validation_log_loss:.4f}, standard error {error:.4f}): the "
                "simpler model wins a near-tie",
            )
    runner_up = min((c for c in candidates if c is not best), key=lambda c: c.validation_log_loss)
    return Choice(
        best,
        f"{best.name} has the lowest validation log loss ({best.validation_log_loss:.4f}, "
        f"next {runner_up.name} {runner_up.validation_log_loss:.4f}), and no simpler "
        "candidate is within half a standard error of it",
    )


def clustered_standard_error(values: np.ndarray, clusters: np.ndarray) -> float:
    """The standard error of the mean of `values`, rows of one cluster summed together."""
    n = len(values)
    _, which = np.unique(clusters, return_inverse=True)
    sums = np.bincount(which, weights=values - values.mean())
    return float(np.sqrt((sums**2).sum()) / n) if n else float("nan")


def fit_bgnbd(
    data: Dataset, train: np.ndarray, slices: np.ndarray, task: TaskConfig
) -> tuple[BGNBDFeatures | None, str]:
    """BG/NBD parameters from the fit slice's journeys as they stood at the end of training,
    or None and why not."""
    snapshots = data.snapshots.subset(train)
    journeys = np.unique(snapshots.journeys[slices == "fit"])
    end = int(snapshots.as_of.max())
    at_end = Snapshots(snapshots.log, journeys, np.full(len(journeys), end, dtype=np.int64))
    try:
        return BGNBDFeatures.fit(at_end, task.match, task.horizon), ""
    except (ValueError, RuntimeError) as error:
        return None, str(error)
