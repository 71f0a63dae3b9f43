"""TreeSHAP from tables equals LightGBM's own pred_contrib, and the raw score from the same
tables is LightGBM's bit for bit, on the kinds of splits it makes."""

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


def _rows(n: int) -> np.ndarray:
    """Other rows than trained on, same kinds of values, and some that training never saw."""
    rows, _ = _data(seed=9, n=n)
    rows[:5, 0] = [np.inf, -np.inf, 1e-40, -0.5, 5.5]  # infinite, tiny
    rows[:4, 5] = [-0.5, 5.5, 100.0, -3.0]  # codes cut to integers (-0.5 is 0), unseen, negative
    rows[5:9, 1] = [0.0, -0.0, 1e-36, -1e-36]  # zeros of both signs, and within kZeroThreshold
    return rows


def _bits(values: np.ndarray) -> np.ndarray:
    """The doubles' bit patterns: equal only if bit for bit equal (0.0 is not -0.0)."""
    return np.ascontiguousarray(values).view(np.uint64)


PARAMS = [
    {},  # missing values as NaN (default), categorical splits
    {"zero_as_missing": True},  # zeros are missing
    {"use_missing": False},  # NaN is 0
    {"num_leaves": 3},
    {"num_leaves": 7, "max_depth": 2},  # fewer splits than leaves allow
]


@pytest.mark.parametrize("params", PARAMS)
def test_contributions_equal_lightgbm_pred_contrib(params):
    booster = _booster(seed=3, **params)
    tables = treeshap.tables_of(booster)
    assert tables is not None
    rows = _rows(400)

    ours = treeshap.contributions(tables, rows)
    theirs = booster.predict(rows, pred_contrib=True)

    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.sum(axis=1), booster.predict(rows, raw_score=True))


@pytest.mark.parametrize("params", PARAMS)
def test_the_raw_score_from_the_tables_is_lightgbms_bit_for_bit(params):
    booster = _booster(seed=4, **params)
    tables = treeshap.tables_of(booster)
    for rows in (_rows(1_500), _rows(1_500)[:7]):
        raw, contributions = treeshap.scores(tables, rows)
        np.testing.assert_array_equal(_bits(raw), _bits(booster.predict(rows, raw_score=True)))
        np.testing.assert_array_equal(_bits(raw), _bits(treeshap.raw(tables, rows)))
        np.testing.assert_array_equal(
            _bits(contributions), _bits(treeshap.contributions(tables, rows))
        )


def _tree_by_tree(tables: treeshap.ShapTables, rows: np.ndarray) -> np.ndarray:
    """Contributions the plain way: each tree in turn adds its features' values from 0.0."""
    patterns = treeshap.patterns(tables, rows)
    result = np.zeros((len(rows), tables.n_features + 1))
    for tree, pattern in enumerate(patterns):
        for slot in np.flatnonzero(tables.slot_tree == tree):
            result[:, tables.slot_feature[slot]] += tables.slot_table[slot, pattern]
    result[:, -1] = tables.expected_value
    return result


@pytest.mark.parametrize("n", [1, 200, 1_500])  # in rounds, and slot by slot
def test_each_contribution_adds_its_trees_in_tree_order(n):
    tables = treeshap.tables_of(_booster(seed=5))
    rows = _rows(1_500)[:n]
    ours = treeshap.contributions(tables, rows)
    np.testing.assert_array_equal(_bits(ours), _bits(_tree_by_tree(tables, rows)))


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


def test_linear_trees_and_averaged_forests_are_left_to_lightgbm():
    x, y = _data(seed=2)
    x = np.nan_to_num(x[:, :5])
    linear = lgb.train(
        {"objective": "binary", "linear_tree": True, "num_leaves": 4, "verbose": -1},
        lgb.Dataset(x, y),
        num_boost_round=5,
    )
    forest = lgb.train(
        {"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7,
         "num_leaves": 4, "verbose": -1},
        lgb.Dataset(x, y),
        num_boost_round=5,
    )  # fmt: skip
    assert treeshap.tables_of(linear) is None
    assert treeshap.tables_of(forest) is None
