"""The canonical order of events, on arrays: by journey, time, then every other column.

The order is total, so a source's row order cannot show in the log: rows equal in every column
keep their source order (the earliest first), which is what makes the first of a run of exact
duplicates the one kept. Pure numpy; `eventlog.frames` and `sources.typed` both sort by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def canonical_order(
    journeys: np.ndarray, times: np.ndarray, others: Sequence[np.ndarray]
) -> np.ndarray:
    """Row order by journey code, time (int64 ns), then `others` in turn: integer codes (-1,
    missing, first) or float64 numbers (NaN first), then source order."""
    order = journey_time_order(journeys, times)
    return break_ties(order, shares_journey_time(journeys[order], times[order]), others)


def journey_time_order(journeys: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Rows sorted by journey then time, ties in any order: one sort of a packed key when
    both fit in 63 bits once times are counted in their common step (whole seconds, say), else
    a sort by two keys."""
    if _strictly_ordered(journeys, times):
        return np.arange(len(journeys))
    packed = packed_journey_time(journeys, times)
    return np.lexsort((times, journeys)) if packed is None else np.argsort(packed)


def packed_journey_time(journeys: np.ndarray, times: np.ndarray) -> np.ndarray | None:
    """One int64 per row that orders and tells apart the (journey, time) pairs, when journey
    and time fit 63 bits once times are counted in their common step; else None."""
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    first = int(times.min())
    offsets = times - first
    step = int(np.gcd.reduce(offsets)) or 1
    span = int(offsets.max()) // step + 1
    if (int(journeys.max()) + 1) * span >= 2**63:
        return None
    return journeys.astype(np.int64) * span + offsets // step


def shares_journey_time(sorted_journeys: np.ndarray, sorted_times: np.ndarray) -> np.ndarray:
    """For rows in journey-time order, whether each after the first shares its journey and
    time with the row before it (the ties `break_ties` settles)."""
    same_journey = sorted_journeys[1:] == sorted_journeys[:-1]
    return same_journey & (sorted_times[1:] == sorted_times[:-1])


def break_ties(
    order: np.ndarray,
    same: np.ndarray,
    others: Sequence[np.ndarray],
    source_rows: np.ndarray | None = None,
) -> np.ndarray:
    """`journey_time_order`'s order made canonical: the rows that share journey and time with
    another (`same`, from `shares_journey_time`; few) sorted apart by `others`, then by
    `source_rows` (default: their positions), and put back in place."""
    tied = np.r_[same, False] | np.r_[False, same]
    if not tied.any():
        return order
    run = np.cumsum(tied & ~np.r_[False, same])[tied]  # one id per (journey, time) shared
    rows = order[tied]
    # source order among ties, whatever order the sort left them in
    by_row = np.argsort(rows if source_rows is None else source_rows[rows], kind="stable")
    rows, run = rows[by_row], run[by_row]
    keys = [sort_key(values[rows]) for values in reversed(others)]
    order[tied] = rows[np.lexsort([*keys, run])]
    return order


def repeats(order: np.ndarray, same: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """For rows in canonical order, whether each equals the row before it in every column
    (missing equal to missing): an exact duplicate. Only rows sharing journey and time with
    the one before (`same`) can be, so only those are compared."""
    repeat = np.zeros(len(order), dtype=bool)
    tied = np.flatnonzero(same)
    equal_all = np.ones(len(tied), dtype=bool)
    for values in others:
        before, after = values[order[tied]], values[order[tied + 1]]
        equal = before == after
        if values.dtype.kind == "f":
            equal |= np.isnan(before) & np.isnan(after)
        equal_all &= equal
    repeat[tied[equal_all] + 1] = True
    return repeat


def sort_key(values: np.ndarray) -> np.ndarray:
    """Integers ordered as the canonical order orders a column: codes as they are (missing,
    -1, first), numbers by rank with missing first."""
    if values.dtype.kind != "f":
        return values
    missing = np.isnan(values)
    key = np.zeros(len(values), dtype=np.int64)
    key[~missing] = np.unique(values[~missing], return_inverse=True)[1] + 1
    return key


def _strictly_ordered(journeys: np.ndarray, times: np.ndarray) -> bool:
    """Sorted by journey then time with no two events of a journey at one time: no ties to
    break, so the order is already canonical."""
    if len(journeys) < 2:
        return True
    if not (np.diff(journeys[:1024]) >= 0).all():  # an unsorted export shows it at once
        return False
    step = np.diff(journeys)
    return bool((step >= 0).all() and ((step > 0) | (np.diff(times) > 0)).all())
