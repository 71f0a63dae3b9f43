"""Merging newly validated events into a stored canonical log, by the rules of a full load.

A full load (`sources.load`) sorts every usable row by journey, time, then every other column,
ties by source row, and keeps the first of each run of exact duplicates. New rows come after
every stored row in the source, so merging them by the same keys and dropping a new row equal to
the row before it gives the log one load of all the rows would give. Only the journeys the new
rows touch are sorted again; the others' events move in one pass, so a day's events cost the
day plus a copy of the log, never a sort of the history.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from journeyguard.features.arrays import found_sorted, ranges, rows_of_groups
from journeyguard.features.eventlog.log import Coded, Column, EventLog
from journeyguard.features.eventlog.order import (
    break_ties,
    journey_time_order,
    repeats,
    shares_journey_time,
)


class IncompatibleColumns(ValueError):
    """The new events' columns differ from the stored ones in name or kind (text or number):
    a load of all the rows could type them differently, so only a full load can tell."""


class Merged(NamedTuple):
    log: EventLog
    source_rows: np.ndarray | None  # each event's row in the source, in log order (if asked)
    duplicates: np.ndarray  # source rows of new events equal to an earlier event, dropped
    first_rows: np.ndarray  # the earlier event's source row, for each of `duplicates`


def merge_events(
    stored: EventLog,
    stored_rows: np.ndarray,
    new: EventLog,
    new_rows: np.ndarray,
    with_rows: bool = True,
) -> Merged:
    """The log of `stored` and `new` events as one load would give it; every `new_rows` is
    after every `stored_rows` in the source. Without `with_rows`, no `source_rows` (a reader
    of the store needs none, and they cost a pass over the stored rows)."""
    _check_columns(stored, new)
    journey_ids, old_journey_map, new_journey_map = _union(stored.journey_ids, new.journey_ids)
    touched = np.zeros(len(journey_ids), dtype=bool)
    new_journeys = new_journey_map[new.journey_codes]
    touched[new_journeys] = True
    old_of = np.arange(stored.n_journeys) if old_journey_map is None else old_journey_map
    old_touched = rows_of_groups(stored.offsets, np.flatnonzero(touched[old_of]))

    # The touched journeys' stored and new events, sorted by the keys of a full load.
    journeys = np.concatenate([old_of[stored.journey_codes[old_touched]], new_journeys])
    rows = np.concatenate([stored_rows[old_touched], new_rows]).astype(np.int64)
    steps, old_steps, new_steps = _unify(stored.steps, stored.step_codes, new.steps, new.step_codes)
    full = {"times": (stored.times, new.times), "steps": (old_steps, new_steps)}
    categories: dict[str, np.ndarray] = {}
    for name, old in stored.columns.items():
        categories[name], *full[name] = _unified_column(old, new.columns[name])
    subset = {key: np.concatenate([old[old_touched], added]) for key, (old, added) in full.items()}
    times, *others = subset.values()
    order = journey_time_order(journeys, times)
    same = shares_journey_time(journeys[order], times[order])
    order = break_ties(order, same, others, rows)
    repeat = repeats(order, same, others)
    run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(order))))
    kept = order[~repeat]

    counts = np.zeros(len(journey_ids), dtype=np.int64)
    counts[old_of] = np.diff(stored.offsets)
    counts[touched] = 0
    counts += np.bincount(journeys[kept], minlength=len(journey_ids))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    # Where each merged journey's events come from: its stored events when untouched, else its
    # block of the sorted touched events (after the stored events in `pick`'s sources).
    source_start = np.zeros(len(journey_ids), dtype=np.int64)
    source_start[old_of] = stored.offsets[:-1]
    block_start = np.searchsorted(journeys[kept], np.flatnonzero(touched))
    source_start[touched] = stored.n_events + block_start
    gather = ranges(source_start, counts)

    # One gather from the stored values, then the touched events written over their places:
    # no copy of the stored values into a concatenation first.
    from_stored = np.minimum(gather, max(stored.n_events - 1, 0))
    from_touched = np.flatnonzero(gather >= stored.n_events)
    touched_kept = kept[gather[from_touched] - stored.n_events]

    def pick(old: np.ndarray, touched_values: np.ndarray) -> np.ndarray:
        picked = old.take(from_stored) if len(old) else np.empty(len(gather), old.dtype)
        picked[from_touched] = touched_values[touched_kept]
        return picked

    merged = EventLog(
        journey_ids=journey_ids,
        offsets=offsets,
        steps=steps,
        step_codes=pick(old_steps, subset["steps"]).astype(np.int32, copy=False),
        times=pick(stored.times, subset["times"]),
        columns={
            name: _picked(pick, categories[name], full[name][0], subset[name])
            for name in stored.columns
        },
    )
    return Merged(
        log=merged,
        source_rows=pick(np.asarray(stored_rows, dtype=np.int64), rows) if with_rows else None,
        duplicates=rows[order[repeat]],
        first_rows=rows[order[run_start[repeat]]],
    )


def journeys_named(
    log: EventLog, rows: np.ndarray, journey_ids: np.ndarray
) -> tuple[EventLog, np.ndarray]:
    """The events of the journeys of `log` among `journey_ids` (sorted), and their `rows`;
    costs those events, not the log (a memory-mapped log is read only there)."""
    named, taken = log.journeys_at(found_sorted(log.journey_ids, journey_ids))
    return named, np.asarray(rows[taken], dtype=np.int64)


def _check_columns(stored: EventLog, new: EventLog) -> None:
    kinds = {name: isinstance(column, Coded) for name, column in stored.columns.items()}
    new_kinds = {name: isinstance(column, Coded) for name, column in new.columns.items()}
    if kinds != new_kinds:
        raise IncompatibleColumns(f"stored columns {kinds} (text: True), new {new_kinds}")


def _union(old: np.ndarray, new: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Sorted categories of both sides, the old ones' codes in it (None: unchanged, as when
    every new category sorts after the old ones) and the new ones' codes in it."""
    at = np.searchsorted(old, new)
    known = at < len(old)
    known[known] = old[at[known]] == new[known]
    extra = new[~known]
    if not len(extra):
        return old, None, at
    inserted = np.searchsorted(old, extra)
    union = np.insert(old, inserted, extra)
    old_map = None
    if inserted[0] < len(old):
        old_map = np.arange(len(old)) + np.searchsorted(inserted, np.arange(len(old)), "right")
    return union, old_map, np.searchsorted(union, new)


def _unify(
    old_categories: np.ndarray, old_codes: np.ndarray, categories: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The union of categories, and both sides' codes into it (-1 stays missing)."""
    union, old_map, new_map = _union(old_categories, categories)
    old_codes = old_codes if old_map is None else _recoded(old_codes, old_map)
    return union, old_codes, _recoded(codes, new_map)


def _recoded(codes: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    recoded = mapping[np.maximum(codes, 0)] if len(mapping) else np.zeros_like(codes)
    return np.where(codes >= 0, recoded, -1).astype(codes.dtype)


def _unified_column(old: Column, new: Column) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(the merged categories, or None for numbers; the old values; the new values)."""
    if isinstance(old, Coded):
        assert isinstance(new, Coded)
        return _unify(old.categories, old.codes, new.categories, new.codes)
    return None, np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)


def _picked(pick, categories: np.ndarray | None, old: np.ndarray, subset: np.ndarray) -> Column:
    if categories is not None:
        return Coded(pick(old, subset).astype(np.int32, copy=False), categories)
    return pick(old, subset)
