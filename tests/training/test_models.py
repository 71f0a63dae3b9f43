"""The one artifact's parts: scorers whose contributions add up to their raw scores, the
cross-fitted calibration, and models pickled before scorers existed."""

from __future__ import annotations

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.sources.simulate import simulate
from journeyguard.features.transformer import PathFeatures
from journeyguard.training import treeshap
from journeyguard.training.calibration import Calibrator
from journeyguard.training.models import (
    JourneyModel,
    as_matrix,
    cross_fit,
    fit_lightgbm,
    fit_logistic,
    journey_folds,
    journey_slices,
    lightgbm_recipe,
    logistic_scorer,
    train_lightgbm,
)
from journeyguard.training.scorers import BlendScorer, LightGBMScorer, TreeTableScorer


@pytest.fixture(scope="module")
def journeys():
    """Simulated journeys at one as_of, a noisy planted outcome, slices by journey."""
    simulation = simulate(1_500, seed=3)
    log = log_from_frame(simulation.events)
    snapshots = Snapshots.at(log, pd.Timestamp("2025-09-01", tz="UTC"))
    transformer = PathFeatures().fit(snapshots)
    features = transformer.transform(snapshots)
    noise = np.random.default_rng(0).random(len(features)) < 0.15
    y = ((features["count__refund_denied"] > 0).to_numpy() ^ noise).astype(int)
    slices = journey_slices(snapshots.customer_ids)
    return snapshots, transformer, features, y, slices


def test_logistic_contributions_are_exact_terms_that_add_up_to_the_raw_score(journeys):
    _, _, features, y, _ = journeys
    scorer = logistic_scorer(features, y, c=0.1, seed=0)
    matrix = as_matrix(features, list(features.columns)).copy()
    matrix[::7, 3] = np.nan  # missing values count as the median
    contributions = scorer.contributions(matrix)
    np.testing.assert_allclose(contributions.sum(axis=1), scorer.raw(matrix), atol=1e-9)
    # changing one feature changes its own contribution only, by coef / scale per unit
    matrix[:, 5] = np.nan_to_num(matrix[:, 5])
    changed = matrix.copy()
    changed[:, 5] += 1.0
    delta = scorer.contributions(changed) - scorer.contributions(matrix)
    np.testing.assert_allclose(np.delete(delta, 5, axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(delta[:, 5], scorer.coef[5] / scorer.scale[5])


def test_a_blend_adds_its_members_log_odds_and_contributions_with_its_weights(journeys):
    _, transformer, features, y, slices = journeys
    names = list(features.columns)
    tree = fit_lightgbm(features, y, slices, transformer.categorical_features_, seed=0)
    linear = fit_logistic(features[names[:40]], y, slices, seed=0)
    blend = BlendScorer([tree, linear], [0.3, 0.7], [np.arange(len(names)), np.arange(40)])
    matrix = as_matrix(features, names)
    expected = 0.3 * tree.raw(matrix) + 0.7 * linear.raw(matrix[:, :40])
    np.testing.assert_allclose(blend.raw(matrix), expected, atol=1e-9)
    contributions = blend.contributions(matrix)
    assert contributions.shape == (len(matrix), len(names) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), expected, atol=1e-9)
    np.testing.assert_allclose(contributions[:, 40:-1], 0.3 * tree.contributions(matrix)[:, 40:-1])


def _bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values).view(np.uint64)


def test_scores_are_raw_and_contributions_bit_for_bit_from_one_pass(journeys):
    _, transformer, features, y, slices = journeys
    names = list(features.columns)
    matrix = as_matrix(features, names).copy()
    matrix[::5, 2] = np.nan  # missing values too
    tree = fit_lightgbm(features, y, slices, transformer.categorical_features_, seed=0)
    linear = fit_logistic(features[names[:40]], y, slices, seed=0)
    blend = BlendScorer([tree, linear], [0.3, 0.7], [np.arange(len(names)), np.arange(40)])
    large = lgb.LGBMClassifier(num_leaves=31, min_child_samples=2, n_estimators=3, verbose=-1)
    untabled = LightGBMScorer(large.fit(matrix, y))  # trees too large for tables
    assert treeshap.tables_of(untabled.classifier.booster_) is None
    for scorer, rows in [
        (tree, matrix), (linear, matrix[:, :40]), (blend, matrix), (untabled, matrix),
        (tree, matrix[:3]), (blend, matrix[:3]),
    ]:  # fmt: skip
        raw, contributions = scorer.scores(rows)
        np.testing.assert_array_equal(_bits(raw), _bits(scorer.raw(rows)))
        np.testing.assert_array_equal(_bits(contributions), _bits(scorer.contributions(rows)))
        exported = scorer.exported()  # without LightGBM where the tables exist
        assert (type(exported) is TreeTableScorer) == (scorer is tree)
        for ours, theirs in zip(exported.scores(rows), (raw, contributions), strict=True):
            np.testing.assert_array_equal(_bits(ours), _bits(theirs))


def test_cross_fitting_scores_each_fold_with_a_model_that_never_saw_it(journeys):
    snapshots, transformer, features, y, slices = journeys
    scorer = fit_lightgbm(features, y, slices, transformer.categorical_features_, seed=0)
    recipe = lightgbm_recipe(scorer, transformer.categorical_features_, seed=0)
    folds = journey_folds(snapshots.customer_ids)
    assert set(np.unique(folds)) == set(range(5))
    final, held_out = cross_fit(recipe, features, y, folds)
    matrix = as_matrix(features, list(features.columns))
    in_sample = final.raw(matrix)
    first = folds == 0
    np.testing.assert_allclose(
        held_out[first], recipe(features[~first], y[~first]).raw(matrix[first])
    )
    # the fitted model is surer of the rows it saw than held-out models are
    assert np.mean(np.abs(in_sample - held_out)) > 0.01


def test_a_model_pickled_before_scorers_existed_loads_and_scores(journeys):
    snapshots, transformer, features, y, slices = journeys
    model = train_lightgbm("churn", transformer, features, y, slices, seed=0)
    old = model.__dict__.copy()  # the layout of before: the booster as `classifier`
    old["classifier"] = old.pop("scorer").classifier
    old.pop("bgnbd")
    old["calibrator"] = Calibrator.__new__(Calibrator)
    old["calibrator"].__dict__.update(model.calibrator.__dict__)
    legacy = JourneyModel.__new__(JourneyModel)
    legacy.__setstate__(old)
    loaded = pickle.loads(pickle.dumps(legacy))
    np.testing.assert_allclose(loaded.predict(snapshots), model.predict(snapshots))
    np.testing.assert_allclose(
        loaded.contribution_matrix(as_matrix(features, model.feature_names)),
        model.contribution_matrix(as_matrix(features, model.feature_names)),
    )
    assert loaded.bgnbd is None


def test_risks_and_their_intervals_from_the_artifact(journeys):
    snapshots, transformer, features, y, slices = journeys
    model = train_lightgbm("churn", transformer, features, y, slices, seed=0)
    matrix = model.feature_matrix(snapshots)
    risk, low, high = model.predict_interval_matrix(matrix)
    np.testing.assert_array_equal(risk, model.predict(snapshots))
    assert ((risk > 0) & (risk < 1)).all() and ((low <= risk) & (risk <= high)).all()
    *interval, contributions = model.predict_interval_and_contributions(matrix)
    for ours, theirs in zip(interval, (risk, low, high), strict=True):
        np.testing.assert_array_equal(_bits(ours), _bits(theirs))
    np.testing.assert_array_equal(_bits(contributions), _bits(model.contribution_matrix(matrix)))
