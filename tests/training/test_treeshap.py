"""TreeSHAP from tables equals LightGBM's own pred_contrib, on the kinds of splits it makes."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from journeyguard.training import treeshap


def _data(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with NaNs and exact zeros, and a category code column (with NaN and -1)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    x[rng.random((n, 5)) < 0.15] = np.nan
    x[rng.random((n, 5)) < 0.15] = 0.0
    category = rng.integers(-1, 6, n).astype(float)
    category[rng.random(n) < 0.1] = np.nan
    x = np.column_stack([x, category])
    logit = np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 1]) * (category > 2) + np.isnan(x[:, 2])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def _booster(seed: int, **params) -> lgb.Booster:
    x, y = _data(seed)
    settings = {"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 10, "verbose": -1}
    dataset = lgb.Dataset(x, y, categorical_feature=[5], free_raw_data=False)
    return lgb.train(settings | params, dataset, num_boost_round=40)


@pytest.mark.parametrize(
    "params",
    [
        {},  # missing values as NaN (default), categorical splits
        {"zero_as_missing": True},  # zeros are missing
        {"use_missing": False},  # NaN is 0
        {"num_leaves": 3},
        {"num_leaves": 7, "max_depth": 2},  # fewer splits than leaves allow
    ],
)
def test_contributions_equal_lightgbm_pred_contrib(params):
    booster = _booster(seed=3, **params)
    tables = treeshap.tables_of(booster)
    assert tables is not None
    rows, _ = _data(seed=9, n=400)  # other rows than trained on, same kinds of values
    rows[:5, 0] = [np.inf, -np.inf, 1e-40, -0.5, 5.5]  # infinite, tiny
    rows[:4, 5] = [-0.5, 5.5, 100.0, -3.0]  # codes cut to integers (-0.5 is 0), unseen, negative

    ours = treeshap.contributions(tables, rows)
    theirs = booster.predict(rows, pred_contrib=True)

    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), booster.predict(rows, raw_score=True))


def test_a_tree_that_never_split_adds_to_the_expected_value_only():
    x, y = _data(seed=1, n=50)
    booster = lgb.train(
        {"objective": "binary", "min_data_in_leaf": 40, "verbose": -1}, lgb.Dataset(x, y), 5
    )
    tables = treeshap.tables_of(booster)
    np.testing.assert_allclose(
        treeshap.contributions(tables, x), booster.predict(x, pred_contrib=True), atol=1e-12
    )


def test_large_trees_are_left_to_lightgbm():
    assert treeshap.tables_of(_booster(seed=3, num_leaves=31, min_data_in_leaf=2)) is None
