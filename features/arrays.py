"""Vectorised group operations on the integer-coded arrays of an `EventLog`.

Groups are dense integer codes (0..n_groups-1); nothing here loops over groups in Python, and
nothing needs pandas. Distinct values come from one sort: `np.unique` costs several times more
on millions of events with this numpy.
"""

from __future__ import annotations

import numpy as np

from features.schema import EventLog, sorted_unique


def positions(log: EventLog) -> np.ndarray:
    """Each event's 0-based position within its journey."""
    return np.arange(log.n_events) - log.offsets[log.journey_codes]


def next_in_journey(log: EventLog) -> tuple[np.ndarray, np.ndarray]:
    """(index, next_index) of every event that has a next event in its journey."""
    codes = log.journey_codes
    index = np.flatnonzero(codes[1:] == codes[:-1])
    return index, index + 1


def dense_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, distinct values): codes index the sorted distinct values."""
    distinct = sorted_unique(values)
    return np.searchsorted(distinct, values), distinct


def first_occurrences(values: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct value, in array order."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    return np.sort(order[np.r_[True, ordered[1:] != ordered[:-1]]]) if len(values) else order


def last_occurrences(values: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each distinct value, in array order."""
    reversed_first = first_occurrences(values[::-1])
    return np.sort(len(values) - 1 - reversed_first)


def group_quantiles(
    groups: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    quantiles: tuple[float, ...] = (0.5, 0.95),
    by_value: np.ndarray | None = None,
) -> np.ndarray:
    """Per group, the quantiles of `values` (numpy's linear interpolation); NaN for empty groups.

    Returns an array of shape (n_groups, len(quantiles)). `by_value`, the argsort of `values`,
    may be passed when several groupings share the values.
    """
    result = np.full((n_groups, len(quantiles)), np.nan)
    if len(values) == 0:
        return result
    values = np.asarray(values, dtype=np.float64)
    by_value = np.argsort(values) if by_value is None else by_value
    # A stable sort of small integers is a radix sort: linear, unlike lexsort.
    group_type = np.uint16 if n_groups <= np.iinfo(np.uint16).max else np.int64
    order = by_value[np.argsort(groups[by_value].astype(group_type), kind="stable")]
    sorted_values = values[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    present = counts > 0
    for column, q in enumerate(quantiles):
        exact = starts[present] + q * (counts[present] - 1)
        low = np.floor(exact).astype(np.int64)
        high = np.ceil(exact).astype(np.int64)
        weight = exact - low
        result[present, column] = sorted_values[low] * (1 - weight) + sorted_values[high] * weight
    return result


def pair_codes(left: np.ndarray, right: np.ndarray, n_right: int) -> np.ndarray:
    """One int64 code per (left, right) pair, `left * n_right + right`."""
    return left.astype(np.int64) * n_right + right.astype(np.int64)


_DENSE_LIMIT = 64_000_000  # journeys x items up to which a table of flags beats a sort


def count_distinct_journeys(
    journeys: np.ndarray, items: np.ndarray, n_items: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per item, how many distinct journeys have it (or the sum of a per-journey weight)."""
    codes = pair_codes(journeys, items, n_items)
    n_journeys = int(journeys.max()) + 1 if len(journeys) else 0
    if n_journeys * n_items <= _DENSE_LIMIT:
        seen = np.zeros(n_journeys * n_items, dtype=bool)
        seen[codes] = True
        distinct = np.flatnonzero(seen)
    else:
        distinct = sorted_unique(codes)
    journey, item = np.divmod(distinct, n_items)
    per_journey = None if weights is None else weights[journey]
    return np.bincount(item, weights=per_journey, minlength=n_items)
