"""Exact TreeSHAP and raw scores of a LightGBM booster with small trees, from tables made once
per model.

LightGBM's `pred_contrib` walks every tree for every row: a batch of 1,000 journeys spent
more time there than in everything else the service does. With path-dependent TreeSHAP (what
LightGBM computes), a row's contributions within one tree depend only on which way the row
goes at each of the tree's splits: a tree of 7 leaves has 6 splits, so 64 patterns. The
contributions of each pattern are computed once, by the Shapley formula over the few features
the tree uses, from the expected values of the tree given each coalition of them (the other
features' splits weighted by the training rows that went each way, as LightGBM does). The leaf
a row reaches is a function of its pattern too, so the same patterns give the raw score. A row
then costs its split decisions and one table lookup per tree.

Both sums keep LightGBM's order. The raw score adds the trees' leaf values in tree order from
0.0, as `GBDT::PredictRaw` does: it is LightGBM's bit for bit. Each feature's contribution adds
its trees in tree order (the tables' values agree with LightGBM's to ~1e-12, not bit for bit).

Trees with more splits than `MAX_SPLITS` make tables too large, and linear trees or averaged
outputs (random forests) are not a sum of leaf values: `tables_of` returns None and callers
use LightGBM's own `predict`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SPLITS = 8  # 256 patterns of decisions per tree at most
_ZERO = float(np.float32(1e-35))  # LightGBM's kZeroThreshold: |x| up to it counts as zero
_ROWS_PER_PASS = 4_096  # rows decided at once: few numpy calls per row, a few MB in memory
_FEW_ROWS = 512  # below it, numpy's calls cost more than its passes: contributions in rounds

# How a group of splits decides, from LightGBM's tree.h (NumericalDecision, CategoricalDecision).
_BELOW = 0  # left when x <= threshold; NaN goes right
_BELOW_OR_NAN = 1  # left when x <= threshold or x is NaN
_ZERO_MISSING = 2  # NaN and |x| up to _ZERO go the default way, others left when x <= threshold
_CATEGORY = 3  # left when x's integer part is a listed category; NaN and negatives go right


@dataclass(frozen=True)
class Splits:
    """Every split of every tree, grouped by the feature it reads and how it decides, so that a
    group is one comparison of a feature's values with a column of thresholds."""

    columns: np.ndarray  # (features read,) the matrix columns the splits read
    groups: list[tuple[int, int, int, int]]  # (how, index into columns, first split, end)
    threshold: np.ndarray  # (splits,) in group order; NaN for categorical splits
    default_left: np.ndarray  # (splits,) where a missing value goes
    categories: np.ndarray  # (splits, codes + 1) bool: codes going left; the last never does
    bit_rows: np.ndarray  # (max splits, trees) the split deciding each bit; `splits` when none


@dataclass(frozen=True)
class ShapTables:
    """The splits, and per tree t and pattern p of its decisions: the leaf's output `leaf[t, p]`
    and its features' contributions. Those are stored slot by slot (a slot: one feature of one
    tree), `slot_table[i, p]` the contribution of feature `slot_feature[i]` in tree
    `slot_tree[i]`, in rounds: round r, slots `rounds[r]:rounds[r + 1]`, holds the r-th tree of
    each feature used by more than r trees, most used features first (`features_by_use`)."""

    n_features: int
    splits: Splits
    leaf: np.ndarray  # (trees, 2 ** max splits)
    slot_tree: np.ndarray  # (slots,)
    slot_feature: np.ndarray  # (slots,)
    slot_table: np.ndarray  # (slots, 2 ** max splits)
    rounds: np.ndarray  # (rounds + 1,) the first slot of each round, then the number of slots
    features_by_use: np.ndarray  # (features used,)
    expected_value: float  # the model's mean raw score: the contributions' baseline


def tables_of(booster: Any) -> ShapTables | None:
    """Tables for a LightGBM booster, or None when a tree has more than MAX_SPLITS splits, a
    linear model in its leaves, or the trees' outputs are averaged."""
    dump = booster.dump_model()
    trees = [_Tree(info["tree_structure"]) for info in dump["tree_info"]]
    if dump.get("average_output") or any(
        len(tree.splits) > MAX_SPLITS or tree.linear for tree in trees
    ):
        return None
    n_features = len(dump["feature_names"])
    patterns = 2 ** max((len(tree.splits) for tree in trees), default=0)
    leaf = np.zeros((len(trees), patterns))
    slots: list[tuple[int, int, np.ndarray]] = []  # (tree, feature, contributions), tree order
    expected = []
    for t, tree in enumerate(trees):
        values = tree.values()
        # Every feature known: each split follows the pattern, so the leaf's value, selected.
        leaf[t, : values.shape[1]] = values[-1]
        expected.append(float(values[0, 0]))  # no feature known: the mean over training rows
        for k, contributions in enumerate(tree.shapley(values).T):
            slots.append((t, tree.features[k], contributions))
    in_rounds, rounds, features_by_use = _rounds([feature for _, feature, _ in slots])
    slot_table = np.zeros((len(slots), patterns))
    for row, i in enumerate(in_rounds):
        # A smaller tree's patterns use the low bits only: the other columns stay unused.
        slot_table[row, : len(slots[i][2])] = slots[i][2]
    return ShapTables(
        n_features=n_features,
        splits=_splits(trees),
        leaf=leaf,
        slot_tree=np.array([slots[i][0] for i in in_rounds], dtype=np.intp),
        slot_feature=np.array([slots[i][1] for i in in_rounds], dtype=np.intp),
        slot_table=slot_table,
        rounds=rounds,
        features_by_use=features_by_use,
        expected_value=float(sum(expected)),
    )


def scores(tables: ShapTables, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`raw` and `contributions` of a matrix from one pass over its decisions."""
    decided = patterns(tables, matrix)
    return _raw(tables, decided), _contributions(tables, decided)


def raw(tables: ShapTables, matrix: np.ndarray) -> np.ndarray:
    """What `booster.predict(matrix, raw_score=True)` gives, bit for bit."""
    return _raw(tables, patterns(tables, matrix))


def contributions(tables: ShapTables, matrix: np.ndarray) -> np.ndarray:
    """What `booster.predict(matrix, pred_contrib=True)` gives: per row, each feature's
    contribution to the raw score, then the expected value (rows sum to the raw score)."""
    return _contributions(tables, patterns(tables, matrix))


def patterns(tables: ShapTables, matrix: np.ndarray) -> np.ndarray:
    """(trees, rows) uint8: bit b of a row's pattern in a tree is set where the tree's split b
    sends the row left. Each bit of all trees at once: a gather of decided rows, times the
    bit's value (faster than numpy's shift), added."""
    bit_rows = tables.splits.bit_rows
    result = np.zeros((bit_rows.shape[1], len(matrix)), dtype=np.uint8)  # < 2 ** MAX_SPLITS
    for start in range(0, len(matrix), _ROWS_PER_PASS):
        left = _goes_left(tables.splits, matrix[start : start + _ROWS_PER_PASS]).view(np.uint8)
        pattern = result[:, start : start + left.shape[1]]
        for bit, rows in enumerate(bit_rows):
            pattern += left[rows] * np.uint8(1 << bit)
    return result


def _raw(tables: ShapTables, patterns: np.ndarray) -> np.ndarray:
    result = np.zeros(patterns.shape[1])
    for leaf, pattern in zip(tables.leaf, patterns, strict=True):
        result += leaf.take(pattern)  # tree by tree: LightGBM's order of addition
    return result


def _contributions(tables: ShapTables, patterns: np.ndarray) -> np.ndarray:
    """Each cell adds its trees' values in tree order, as LightGBM does: slot by slot over all
    rows (two passes per value), or for a few rows in rounds (one numpy call per round)."""
    result = np.zeros((tables.n_features + 1, patterns.shape[1]))
    if patterns.shape[1] < _FEW_ROWS:
        _add_in_rounds(tables, patterns, result)
    else:
        _add_slot_by_slot(tables, patterns, result)
    result[-1] = tables.expected_value
    return result.T


def _add_slot_by_slot(tables: ShapTables, patterns: np.ndarray, result: np.ndarray) -> None:
    """Tree by tree: its pattern made an index once, then per slot a gather and an addition."""
    by_tree = np.argsort(tables.slot_tree, kind="stable")
    ends = np.searchsorted(tables.slot_tree[by_tree], np.arange(len(patterns)), side="right")
    for pattern, first, end in zip(patterns, np.append(0, ends[:-1]), ends, strict=True):
        index = pattern.astype(np.intp)  # once per tree, not once per slot
        for slot in by_tree[first:end]:
            row = result[tables.slot_feature[slot]]
            row += tables.slot_table[slot].take(index)


def _add_in_rounds(tables: ShapTables, patterns: np.ndarray, result: np.ndarray) -> None:
    """One gather of every slot's value and one addition per round."""
    n_patterns = tables.slot_table.shape[1]
    offsets = (np.arange(len(tables.slot_table)) * n_patterns)[:, None]
    values = tables.slot_table.take(patterns[tables.slot_tree] + offsets)
    sums = np.zeros((len(tables.features_by_use), patterns.shape[1]))
    for first, end in zip(tables.rounds[:-1], tables.rounds[1:], strict=True):
        sums[: end - first] += values[first:end]
    result[tables.features_by_use] = sums


def _goes_left(splits: Splits, rows: np.ndarray) -> np.ndarray:
    """(splits + 1, rows) bool: each row's way at each split, True for left; a last row of
    False for the bits that no split sets."""
    values = rows.T[splits.columns]  # feature by feature, so a group reads one row
    nan_lowest = np.where(np.isnan(values), -np.inf, values)  # once for all groups that need it
    left = np.zeros((len(splits.threshold) + 1, len(rows)), dtype=bool)
    for how, column, first, end in splits.groups:
        x, out = values[column], left[first:end]
        threshold = splits.threshold[first:end, None]
        if how == _BELOW:
            np.less_equal(x, threshold, out=out)
        elif how == _BELOW_OR_NAN:
            np.less_equal(nan_lowest[column], threshold, out=out)
        elif how == _ZERO_MISSING:
            x = np.where(np.isnan(x), 0.0, x)
            default = splits.default_left[first:end, None]
            np.copyto(out, np.where(np.abs(x) <= _ZERO, default, x <= threshold))
        else:
            codes = np.trunc(x)  # C's int cast; NaN stays NaN and is unusable
            unlisted = splits.categories.shape[1] - 1
            usable = (codes >= 0) & (codes < unlisted)
            index = np.where(usable, codes, unlisted).astype(np.intp)
            # mode="clip": the indices are valid, and "raise" would buffer `out`
            np.take(splits.categories[first:end], index, axis=1, out=out, mode="clip")
    return left


def _how(node: dict[str, Any]) -> int:
    """The way a split decides (LightGBM's tree.h): a numerical split's missing value is NaN,
    or NaN and zero, or none (NaN counts as 0.0 and goes where 0.0 goes)."""
    if "categories" in node:
        return _CATEGORY
    missing = node["missing_type"]
    if missing == "Zero":
        return _ZERO_MISSING
    nan_left = node["default_left"] if missing == "NaN" else node["value"] >= 0.0
    return _BELOW_OR_NAN if nan_left else _BELOW


def _splits(trees: list[_Tree]) -> Splits:
    """The splits of `trees` sorted by the column they read, then how they decide."""
    found = [(t, bit, node) for t, tree in enumerate(trees) for bit, node in enumerate(tree.splits)]
    columns = np.unique([node["split_feature"] for *_, node in found]).astype(np.intp)
    keys = [
        (int(np.searchsorted(columns, node["split_feature"])), _how(node)) for *_, node in found
    ]
    order = sorted(range(len(found)), key=lambda s: keys[s])
    unlisted = 1 + max((max(node.get("categories", [0])) for *_, node in found), default=0)
    categories = np.zeros((len(found), unlisted + 1), dtype=bool)
    most = max((len(tree.splits) for tree in trees), default=0)
    bit_rows = np.full((max(most, 1), len(trees)), len(found), dtype=np.intp)
    groups: list[tuple[int, int, int, int]] = []
    for row, s in enumerate(order):
        t, bit, node = found[s]
        categories[row, node.get("categories", [])] = True
        bit_rows[bit, t] = row
        if groups and (groups[-1][1], groups[-1][0]) == keys[s]:
            groups[-1] = (*groups[-1][:3], row + 1)
        else:
            groups.append((keys[s][1], keys[s][0], row, row + 1))
    return Splits(
        columns=columns,
        groups=groups,
        threshold=np.array([found[s][2].get("value", np.nan) for s in order]),
        default_left=np.array([found[s][2]["default_left"] for s in order], dtype=bool),
        categories=categories,
        bit_rows=bit_rows,
    )


def _rounds(features: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The slots (given in tree order by their feature) in rounds: the order to store them in,
    the rounds' bounds, and the features most used first."""
    uses: dict[int, int] = {}
    occurrence = []
    for feature in features:
        occurrence.append(uses.get(feature, 0))
        uses[feature] = occurrence[-1] + 1
    by_use = sorted(uses, key=lambda feature: (-uses[feature], feature))
    rank = {feature: r for r, feature in enumerate(by_use)}
    order = sorted(range(len(features)), key=lambda i: (occurrence[i], rank[features[i]]))
    sizes = np.bincount(np.array(occurrence, dtype=np.intp))
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    return order, bounds, np.array(by_use, dtype=np.intp)


class _Tree:
    """One tree of a LightGBM dump: its splits (depth-first), the features they read, and
    for each pattern of decisions the Shapley values of those features."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.splits: list[dict[str, Any]] = []
        self.linear = False
        self._collect(root)
        self.features = sorted({node["split_feature"] for node in self.splits})

    def _collect(self, node: dict[str, Any]) -> None:
        if "leaf_value" in node:
            self.linear |= "leaf_coeff" in node
            return
        node["bit"] = len(self.splits)
        if node["decision_type"] == "==":
            node["categories"] = [int(c) for c in str(node["threshold"]).split("||")]
        else:
            node["value"] = float(node["threshold"])
        self.splits.append(node)
        self._collect(node["left_child"])
        self._collect(node["right_child"])

    def values(self) -> np.ndarray:
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

    def shapley(self, values: np.ndarray) -> np.ndarray:
        """(patterns, features): each feature's Shapley value for each pattern, from `values`."""
        result = np.zeros((values.shape[1], len(self.features)))
        for k, (without, weight) in enumerate(_coalitions(len(self.features))):
            gain = values[without | (1 << k)] - values[without]
            result[:, k] = weight @ gain
        return result


@functools.cache
def _coalitions(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per feature k of n: the coalitions S without k (bitmasks), and their Shapley weights
    |S|! (n - |S| - 1)! / n!. The same for every tree with n features: made once."""
    subsets = np.arange(2**n)
    sizes = np.array([bin(s).count("1") for s in subsets])
    weight = np.array(
        [math.factorial(k) * math.factorial(max(n - k - 1, 0)) for k in sizes], dtype=float
    ) / math.factorial(n)
    result = []
    for k in range(n):
        without = subsets[(subsets >> k) & 1 == 0]
        result.append((without, weight[without]))
    return result


def _count(node: dict[str, Any]) -> float:
    return float(node["leaf_count"] if "leaf_value" in node else node["internal_count"])
