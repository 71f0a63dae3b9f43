"""Merging newly validated events into a stored canonical log, by the rules of a full load.

A full load (`sources.load`) sorts every usable row by journey, time, then every other column,
ties by source row, and keeps the first of each run of exact duplicates. New rows come after
every stored row in the source, so merging them by the same keys and dropping a new row equal to
the row before it gives the log one load of all the rows would give. Only the journeys the new
rows touch are sorted again; the others' events move in one pass, so a day's events cost the
day plus a copy of the log, never a sort of the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.log import Coded, Column, EventLog


class IncompatibleColumns(ValueError):
    """The new events' columns differ from the stored ones in name or kind (text or number):
    a load of all the rows could type them differently, so only a full load can tell."""


@dataclass(frozen=True)
class Merged:
    log: EventLog
    source_rows: np.ndarray  # each event's row in the source, in log order
    duplicates: np.ndarray  # source rows of new events equal to an earlier event, dropped
    first_rows: np.ndarray  # the earlier event's source row, for each of `duplicates`


def merge_events(
    stored: EventLog, stored_rows: np.ndarray, new: EventLog, new_rows: np.ndarray
) -> Merged:
    """The log of `stored` and `new` events as one load would give it; every `new_rows` is
    after every `stored_rows` in the source."""
    _check_columns(stored, new)
    journey_ids, old_journeys, new_journeys = _unify(
        stored.journey_ids, stored.journey_codes, new.journey_ids, new.journey_codes
    )
    steps, old_steps, new_steps = _unify(stored.steps, stored.step_codes, new.steps, new.step_codes)
    columns: dict[str, tuple[Column, np.ndarray, np.ndarray]] = {}
    for name, old in stored.columns.items():
        columns[name] = _unified_column(old, new.columns[name])

    touched = np.zeros(len(journey_ids), dtype=bool)
    touched[new_journeys] = True
    old_touched = np.flatnonzero(touched[old_journeys])
    # The touched journeys' stored and new events, sorted by the keys of a full load.
    journeys = np.concatenate([old_journeys[old_touched], new_journeys])
    rows = np.concatenate([stored_rows[old_touched], new_rows]).astype(np.int64)
    keys = [
        journeys,
        np.concatenate([stored.times[old_touched], new.times]),
        np.concatenate([old_steps[old_touched], new_steps]),
    ]
    values = {}
    for name, (_, old_values, new_values) in columns.items():
        values[name] = np.concatenate([old_values[old_touched], new_values])
        keys.append(_sort_key(values[name]))
    order = np.lexsort([rows, *reversed(keys)])
    repeat = _repeats([key[order] for key in keys])
    run_start = np.maximum.accumulate(np.where(repeat, 0, np.arange(len(order))))
    kept = order[~repeat]

    counts = np.bincount(old_journeys, minlength=len(journey_ids))
    counts[touched] = 0
    counts += np.bincount(journeys[kept], minlength=len(journey_ids))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    old_kept = np.flatnonzero(~touched[old_journeys])
    # A kept journey's events keep their places within it; only its start moves.
    within = old_kept - stored.offsets[stored.journey_codes[old_kept]]
    old_at = offsets[old_journeys[old_kept]] + within
    new_at = offsets[journeys[kept]] + _ranks_within(journeys[kept])

    def place(old: np.ndarray, touched_values: np.ndarray) -> np.ndarray:
        out = np.empty(offsets[-1], dtype=np.result_type(old, touched_values))
        out[old_at] = old[old_kept]
        out[new_at] = touched_values[kept]
        return out

    merged = EventLog(
        journey_ids=journey_ids,
        offsets=offsets,
        steps=steps,
        step_codes=place(old_steps, keys[2]).astype(np.int32),
        times=place(stored.times, keys[1]),
        columns={
            name: _placed(place, column, old_values, values[name])
            for name, (column, old_values, _) in columns.items()
        },
    )
    return Merged(
        log=merged,
        source_rows=place(stored_rows.astype(np.int64), rows),
        duplicates=rows[order[repeat]],
        first_rows=rows[order[run_start[repeat]]],
    )


def _check_columns(stored: EventLog, new: EventLog) -> None:
    kinds = {name: isinstance(column, Coded) for name, column in stored.columns.items()}
    new_kinds = {name: isinstance(column, Coded) for name, column in new.columns.items()}
    if kinds != new_kinds:
        raise IncompatibleColumns(f"stored columns {kinds} (text: True), new {new_kinds}")


def _unify(
    old_categories: np.ndarray, old_codes: np.ndarray, categories: np.ndarray, codes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted categories of both sides, and both sides' codes into them (-1 stays missing)."""
    at = np.searchsorted(old_categories, categories)
    known = at < len(old_categories)
    known[known] = old_categories[at[known]] == categories[known]
    extra = categories[~known]
    if len(extra):
        inserted = np.searchsorted(old_categories, extra)
        union = np.insert(old_categories, inserted, extra)
        shift = np.searchsorted(inserted, np.arange(len(old_categories)), side="right")
        old_codes = _recoded(old_codes, np.arange(len(old_categories)) + shift)
    else:
        union = old_categories
    return union, old_codes, _recoded(codes, np.searchsorted(union, categories))


def _recoded(codes: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    recoded = mapping[np.maximum(codes, 0)] if len(mapping) else np.zeros_like(codes)
    return np.where(codes >= 0, recoded, -1).astype(np.int64)


def _unified_column(old: Column, new: Column) -> tuple[Column, np.ndarray, np.ndarray]:
    """(the merged column's shape: Coded with the union's categories or a float array, the old
    values, the new values): codes for text, floats for numbers."""
    if isinstance(old, Coded):
        assert isinstance(new, Coded)
        categories, old_codes, new_codes = _unify(
            old.categories, old.codes, new.categories, new.codes
        )
        return Coded(np.empty(0, np.int32), categories), old_codes, new_codes
    return old, np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)


def _placed(place, column: Column, old_values: np.ndarray, values: np.ndarray) -> Column:
    if isinstance(column, Coded):
        return Coded(place(old_values, values).astype(np.int32), column.categories)
    return place(old_values, values)


def _sort_key(values: np.ndarray) -> np.ndarray:
    """Integers ordered as a full load orders the column: codes as they are (missing first),
    numbers by rank with missing first (`canonical_order` factorizes them sorted)."""
    if values.dtype.kind == "f":
        return pd.factorize(values, sort=True)[0]
    return values


def _repeats(sorted_keys: list[np.ndarray]) -> np.ndarray:
    """Rows equal in every key to the row before them."""
    n = len(sorted_keys[0])
    same = np.ones(max(n - 1, 0), dtype=bool)
    for key in sorted_keys:
        same &= key[1:] == key[:-1]
    return np.concatenate(([False], same)) if n else np.zeros(0, dtype=bool)


def _ranks_within(groups: np.ndarray) -> np.ndarray:
    """Each element's position among the equal elements of a sorted array."""
    if not len(groups):
        return groups
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    return np.arange(len(groups)) - np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
