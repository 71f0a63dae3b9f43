"""Exact TreeSHAP of a LightGBM booster with small trees, from tables made once per model.

LightGBM's `pred_contrib` walks every tree for every row: a batch of 1,000 journeys spent
more time there than in everything else the service does. With path-dependent TreeSHAP (what
LightGBM computes), a row's contributions within one tree depend only on which way the row
goes at each of the tree's splits: a tree of 7 leaves has 6 splits, so 64 patterns. The
contributions of each pattern are computed once, by the Shapley formula over the few features
the tree uses, from the expected values of the tree given each coalition of them (the other
features' splits weighted by the training rows that went each way, as LightGBM does). A row
then costs its split decisions and one table lookup per tree.

Trees with more splits than `MAX_SPLITS` make tables too large: `tables_of` returns None
and callers use LightGBM's own `pred_contrib`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SPLITS = 8  # 256 patterns of decisions per tree at most
_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold: |x| up to it counts as zero
_ROWS_PER_PASS = 4_096  # rows x splits of all trees in memory at once


@dataclass(frozen=True)
class ShapTables:
    """Per split s of any tree: its feature, how it decides; per tree t and pattern p of its
    decisions, `table[t, p, k]` is the contribution of the tree's k-th feature `slots[t, k]`."""

    n_features: int
    feature: np.ndarray  # (splits,) the feature each split reads
    threshold: np.ndarray  # (splits,) numerical splits: left when value <= threshold
    default_left: np.ndarray  # (splits,) where a missing value goes
    missing: np.ndarray  # (splits,) 0 none (NaN is 0), 1 zero, 2 NaN: LightGBM's missing types
    categories: np.ndarray  # (splits, n_categories) bool: category codes going left
    categorical: np.ndarray  # (splits,) bool
    bit: np.ndarray  # (splits,) the split's bit in its tree's pattern
    split_trees: np.ndarray  # the trees that split, in order (splits are grouped by tree)
    first_splits: np.ndarray  # the index of each of those trees' first split
    slots: np.ndarray  # (trees, max features) feature of each slot; n_features when unused
    table: np.ndarray  # (trees, 2 ** max splits, max features)
    expected_value: float  # the model's mean raw score: the contributions' baseline


def tables_of(booster: Any) -> ShapTables | None:
    """Tables for a LightGBM booster, or None when a tree has more than MAX_SPLITS splits."""
    dump = booster.dump_model()
    trees = [_Tree(info["tree_structure"]) for info in dump["tree_info"]]
    if any(len(tree.splits) > MAX_SPLITS for tree in trees):
        return None
    n_features = len(dump["feature_names"])
    max_splits = max((len(tree.splits) for tree in trees), default=0)
    max_slots = max((len(tree.features) for tree in trees), default=0)
    slots = np.full((len(trees), max(max_slots, 1)), n_features, dtype=np.int64)
    table = np.zeros((len(trees), 2**max_splits, max(max_slots, 1)))
    for t, tree in enumerate(trees):
        slots[t, : len(tree.features)] = tree.features
        # A smaller tree's patterns use the low bits only: the other rows stay unused.
        table[t, : 2 ** len(tree.splits), : len(tree.features)] = tree.shapley()
    splits = [
        (t, bit, node) for t, tree in enumerate(trees) for bit, node in enumerate(tree.splits)
    ]
    n_categories = 1 + max(
        (max(node["categories"], default=0) for _, _, node in splits if "categories" in node),
        default=0,
    )
    categories = np.zeros((len(splits), n_categories), dtype=bool)
    for s, (_, _, node) in enumerate(splits):
        categories[s, node.get("categories", [])] = True
    return ShapTables(
        n_features=n_features,
        feature=np.array([node["split_feature"] for *_, node in splits], dtype=np.int64),
        threshold=np.array([node.get("value", np.nan) for *_, node in splits]),
        default_left=np.array([node["default_left"] for *_, node in splits], dtype=bool),
        missing=np.array([_MISSING[node["missing_type"]] for *_, node in splits], dtype=np.int8),
        categories=categories,
        categorical=np.array(["categories" in node for *_, node in splits], dtype=bool),
        bit=np.array([bit for _, bit, _ in splits], dtype=np.int64),
        split_trees=np.array([t for t, tree in enumerate(trees) if tree.splits], dtype=np.int64),
        first_splits=np.flatnonzero([bit == 0 for _, bit, _ in splits]),
        slots=slots,
        table=table,
        expected_value=float(sum(tree.expected for tree in trees)),
    )


def contributions(tables: ShapTables, matrix: np.ndarray) -> np.ndarray:
    """What `booster.predict(matrix, pred_contrib=True)` gives: per row, each feature's
    contribution to the raw score, then the expected value (rows sum to the raw score)."""
    patterns = np.empty((len(matrix), len(tables.slots)), dtype=np.uint8)  # < 2 ** MAX_SPLITS
    for start in range(0, len(matrix), _ROWS_PER_PASS):
        rows = matrix[start : start + _ROWS_PER_PASS]
        patterns[start : start + len(rows)] = _patterns(tables, rows)
    # Feature by feature in rows (the transpose), each tree adding its slots' values in turn:
    # every cell sums its trees in tree order, as LightGBM does.
    result = np.zeros((tables.n_features + 1, len(matrix)))
    for tree, slots in enumerate(tables.slots):
        used = slots < tables.n_features
        if used.any():
            result[slots[used]] += tables.table[tree, patterns[:, tree]][:, used].T
    result[-1] = tables.expected_value
    return result.T


def _patterns(tables: ShapTables, rows: np.ndarray) -> np.ndarray:
    """Each row's pattern of decisions in each tree: bit b set where the tree's split b goes
    left. Built bit by bit over all trees at once (a tree's splits are consecutive, in bit
    order): a few column gathers instead of a sum per tree and row."""
    left = _goes_left(tables, rows[:, tables.feature])
    pattern = np.zeros((len(rows), len(tables.slots)), dtype=np.intp)
    trees, first = tables.split_trees, tables.first_splits
    splits = np.diff(np.append(first, len(tables.feature)))  # per tree that splits
    for bit in range(int(splits.max(initial=0))):
        has = splits > bit
        pattern[:, trees[has]] |= left[:, first[has] + bit].astype(np.intp) << bit
    return pattern


def _goes_left(tables: ShapTables, values: np.ndarray) -> np.ndarray:
    """Each row's way at each split, as LightGBM decides it (tree.h: NumericalDecision and
    CategoricalDecision): True for left."""
    nan = np.isnan(values)
    left = values <= tables.threshold  # NaN compares False: settled below
    # Numerical: NaN counts as 0 unless NaN is the split's missing type; a missing value (NaN,
    # or |x| up to zero where zero is the missing type) goes the split's default way.
    zero = tables.missing == 1
    nan_left = np.where(tables.missing == 0, tables.threshold >= 0.0, tables.default_left)
    left = np.where(nan, nan_left, left)
    if zero.any():
        columns = np.flatnonzero(zero)
        near = np.abs(values[:, columns]) <= _ZERO
        left[:, columns] = np.where(near, tables.default_left[columns], left[:, columns])
    if tables.categorical.any():
        # Categorical: NaN and negative codes go right; listed categories go left.
        columns = np.flatnonzero(tables.categorical)
        codes = np.trunc(np.where(nan[:, columns], -1.0, values[:, columns]))  # C's int cast
        usable = (codes >= 0) & (codes < tables.categories.shape[1])
        index = np.where(usable, codes, 0).astype(np.int64)
        left[:, columns] = usable & tables.categories[columns, index]
    return left


_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


class _Tree:
    """One tree of a LightGBM dump: its splits (depth-first), the features they read, and
    for each pattern of decisions the Shapley values of those features."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.splits: list[dict[str, Any]] = []
        self._collect(root)
        self.features = sorted({node["split_feature"] for node in self.splits})

    @property
    def expected(self) -> float:
        """The tree's mean output over the training rows: no feature known, any pattern."""
        return float(self._values()[0, 0])

    def _collect(self, node: dict[str, Any]) -> None:
        if "leaf_value" in node:
            return
        node["bit"] = len(self.splits)
        if node["decision_type"] == "==":
            node["categories"] = [int(c) for c in str(node["threshold"]).split("||")]
        else:
            node["value"] = float(node["threshold"])
        self.splits.append(node)
        self._collect(node["left_child"])
        self._collect(node["right_child"])

    def _values(self) -> np.ndarray:
        """v[S, p]: the tree's expected output when the features in coalition S (a bitmask
        over `features`) are known and the row's decisions are pattern p: known features'
        splits follow p, the others split the way the training rows did."""
        subsets = np.arange(2 ** len(self.features))[:, None]
        patterns = np.arange(2 ** len(self.splits))[None, :]
        slot = {feature: k for k, feature in enumerate(self.features)}

        def value(node: dict[str, Any]) -> np.ndarray:
            if "leaf_value" in node:
                return np.full((len(subsets), patterns.shape[1]), node["leaf_value"])
            low, high = node["left_child"], node["right_child"]
            left, right = value(low), value(high)
            known = (subsets >> slot[node["split_feature"]]) & 1 == 1
            followed = np.where((patterns >> node["bit"]) & 1 == 1, left, right)
            averaged = (_count(low) * left + _count(high) * right) / node["internal_count"]
            return np.where(known, followed, averaged)

        return value(self.root)

    def shapley(self) -> np.ndarray:
        """(patterns, features): each feature's Shapley value for each pattern."""
        values = self._values()
        n = len(self.features)
        subsets = np.arange(2**n)
        sizes = np.array([bin(s).count("1") for s in subsets])
        # |S|! (n - |S| - 1)! / n! for a coalition S without the feature (so |S| < n)
        weight = np.array(
            [math.factorial(k) * math.factorial(max(n - k - 1, 0)) for k in sizes], dtype=float
        ) / math.factorial(n)
        result = np.zeros((values.shape[1], n))
        for k in range(n):
            without = subsets[(subsets >> k) & 1 == 0]
            gain = values[without | (1 << k)] - values[without]
            result[:, k] = weight[without] @ gain
        return result


def _count(node: dict[str, Any]) -> float:
    return float(node["leaf_count"] if "leaf_value" in node else node["internal_count"])
