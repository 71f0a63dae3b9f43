"""The snapshots' event prefixes, and the vectorised passes that features make over them.

Snapshot i sees the events `starts[i]:stops[i]` of its journey. Sums over a prefix come from
cumulative sums along the sorted log (integers) or, for floats, from sums that restart at each
journey; latest values from running maxima of event indices. When no two prefixes share an
event (one snapshot per journey, as at one `as_of`), counts, sums and maxima take one pass over
the prefixes' events instead: a few passes over the event arrays, whatever the number of
snapshots.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from journeyguard.features.arrays import Segments, codes_in, ranges
from journeyguard.features.eventlog.columns import NS_PER_DAY
from journeyguard.features.eventlog.log import EventLog, Snapshots

if TYPE_CHECKING:
    from journeyguard.features.vocabulary import Vocabulary

_TABLE_CELLS = 8_000_000  # events x codes of one running-count table (32 MB)


def _compact(snapshots: Snapshots) -> tuple[EventLog, np.ndarray, np.ndarray]:
    """(log, starts, stops) of the snapshots over a log of their prefixes' events only: every
    feature makes passes over the whole log and reads a prefix's events alone, so neither
    other journeys nor events after the latest prefix of a journey should cost anything (at
    one `as_of`, a third of a year-long log). A journey whose snapshots all see nothing yet
    keeps its events, so that it stays in the log."""
    log, journeys = snapshots.log, snapshots.journeys
    used = np.zeros(log.n_journeys, dtype=bool)
    used[journeys] = True
    if not used.all():  # other journeys first: prefixes are then found in the smaller log
        renumber = np.cumsum(used) - 1
        snapshots = Snapshots(log.select_journeys(used), renumber[journeys], snapshots.as_of)
        log, journeys = snapshots.log, snapshots.journeys
    starts, stops = snapshots.starts, snapshots.stops
    limit = np.zeros(log.n_journeys, dtype=np.int64)  # per journey, the end of the kept events
    np.maximum.at(limit, journeys, np.where(stops > starts, stops, log.offsets[journeys + 1]))
    keep = np.arange(log.n_events) < limit[log.journey_codes]
    if keep.all():
        return log, starts, stops
    kept = log.select(keep)  # every journey keeps an event: codes stay
    return kept, kept.offsets[journeys], kept.offsets[journeys] + (stops - starts)


class Prefixes:
    """The snapshots' event prefixes, with the log's steps mapped into the vocabulary."""

    def __init__(self, snapshots: Snapshots, vocabulary: Vocabulary) -> None:
        log, self.start, self.stop = _compact(snapshots)
        self.log = log
        self.last = np.maximum(self.stop - 1, 0)
        self.events = self.stop - self.start
        self.as_of = snapshots.as_of
        known = codes_in(vocabulary.steps, log.steps)
        self.other = len(vocabulary.steps)
        # Steps never seen in training are "other", never an error.
        self.steps = np.where(known >= 0, known, self.other).astype(np.int64)[log.step_codes]
        self.same_journey_as_previous = np.r_[
            False, log.journey_codes[1:] == log.journey_codes[:-1]
        ]
        self._previous_steps: dict[int, np.ndarray] = {}  # n-grams and ping-pong share them

    def total(self, per_event: np.ndarray) -> np.ndarray:
        """Per snapshot, the sum of `per_event` over its prefix (which starts its journey)."""
        if per_event.dtype.kind in "biu":  # integers add exactly in any order
            running = np.concatenate(([0], np.cumsum(per_event)))
            return running[self.stop] - running[self.start]
        # Floats: sums restart at each journey, so no rounding depends on the journeys before
        # (a difference of two long running sums would lose their low bits).
        per_event = per_event.astype(np.float64, copy=False)
        if self._runs is not None:
            return self._runs.reduce(per_event, np.add, 0.0)
        sums = self._along_journeys(per_event, np.add)
        return np.where(self.events > 0, sums[self.last] if len(sums) else 0.0, 0.0)

    @functools.cached_property
    def _runs(self) -> Segments | None:
        """The prefixes laid out for sums and maxima along each at once, when no two share an
        event (at one `as_of`): those need only the prefixes' events, not running values
        along every journey."""
        return None if self._owners is None else Segments(self.start, self.events)

    def _along_journeys(self, per_event: np.ndarray, combine: np.ufunc) -> np.ndarray:
        """`combine` accumulated along each journey from its first event, as `accumulate`
        over that journey alone would: one vectorised step per position, every journey at once."""
        running = per_event.copy()
        order, bounds = self._by_position
        for position in range(1, len(bounds) - 1):
            index = order[bounds[position] : bounds[position + 1]]
            running[index] = combine(running[index - 1], running[index])
        return running

    @functools.cached_property
    def _by_position(self) -> tuple[np.ndarray, np.ndarray]:
        """Events ordered by their position in their journey, and where each position starts."""
        log = self.log
        position = np.arange(log.n_events) - log.offsets[log.journey_codes]
        order = np.argsort(position, kind="stable")
        counts = np.bincount(position, minlength=1) if log.n_events else np.zeros(1, np.int64)
        return order, np.concatenate(([0], np.cumsum(counts)))

    def totals(self, codes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Per wanted code (rows) and snapshot (columns), how many events of its prefix have
        that code, as floats (the features' type): running counts along the events of a
        codes x events table (a few codes at a time on large logs), not one pass per code;
        one count of the prefixes' events when no two prefixes share one. Rows are
        contiguous: each is a feature column."""
        owned = self._owned(codes, wanted)
        if owned is not None:
            snapshot, column, _ = owned
            cells = column * len(self.start) + snapshot
            # Weights of 1 count in float64 at once (exact), not in int64 then converted
            # (bincount still answers int64 when there is nothing to count).
            flat = np.bincount(cells, weights=np.ones(len(cells)), minlength=self._cells(wanted))
            return flat.astype(np.float64, copy=False).reshape(len(wanted), len(self.start))
        result = np.empty((len(wanted), len(self.start)), dtype=np.float64)
        for chunk, rows in self._chunks(codes, wanted):
            running = np.zeros((len(chunk), len(codes) + 1), dtype=np.int32)
            np.cumsum(chunk[:, None] == codes, axis=1, out=running[:, 1:])
            result[rows] = running[:, self.stop] - running[:, self.start]
        return result

    def latest_of_each(self, codes: np.ndarray, wanted: np.ndarray) -> np.ndarray:
        """Per wanted code (rows) and snapshot (columns), the index of the latest event of its
        prefix with that code, -1 if none."""
        owned = self._owned(codes, wanted, with_index=True)
        if owned is not None:
            snapshot, column, index = owned
            flat = np.full(self._cells(wanted), -1, dtype=np.int64)
            np.maximum.at(flat, column * len(self.start) + snapshot, index)
            return flat.reshape(len(wanted), len(self.start))
        result = np.empty((len(wanted), len(self.start)), dtype=np.int64)
        index = np.arange(len(codes))
        for chunk, rows in self._chunks(codes, wanted):
            flagged = np.where(chunk[:, None] == codes, index, -1)
            result[rows] = np.maximum.accumulate(flagged, axis=1)[:, self.last]
        inside = (result >= self.start) & (self.events > 0)
        return np.where(inside, result, -1)

    def _cells(self, wanted: np.ndarray) -> int:
        return len(self.start) * len(wanted)

    def _owned(
        self, codes: np.ndarray, wanted: np.ndarray, with_index: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """When no two prefixes share an event (one snapshot per journey, as at one `as_of`):
        the snapshot, the wanted column and (`with_index`) the index of every prefix event
        with a wanted code. None otherwise (snapshots of one journey at several times
        overlap)."""
        owner = self._owners
        if owner is None or len(np.unique(wanted)) != len(wanted) or not len(wanted):
            return None
        snapshot, index = owner
        inside = codes if index is None else codes[index]
        lookup = np.full(int(max(wanted.max(), codes.max(initial=0))) + 2, -1, dtype=np.int64)
        lookup[wanted] = np.arange(len(wanted))
        column = lookup[np.where(inside >= 0, inside, -1)]
        keep = column >= 0
        if with_index and index is None:
            index = np.arange(len(codes))
        if keep.all():  # every event counts (steps): no copies
            return snapshot, column, index if with_index else None
        return snapshot[keep], column[keep], index[keep] if with_index else None

    @functools.cached_property
    def _owners(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """(snapshot, event index) of every event inside a prefix, when prefixes are disjoint
        and in log order; None otherwise. The index is None when the prefixes hold every
        event of the log (cut at `as_of`): it would be 0, 1, 2, ..."""
        if len(self.start) > 1 and (self.start[1:] < self.stop[:-1]).any():
            return None
        lengths = self.events
        snapshot = np.repeat(np.arange(len(self.start)), lengths)
        if len(snapshot) == len(self.steps):
            return snapshot, None
        return snapshot, ranges(self.start, lengths)

    @staticmethod
    def _chunks(codes: np.ndarray, wanted: np.ndarray) -> Iterator[tuple[np.ndarray, slice]]:
        """Slices of `wanted` whose codes x events tables stay within _TABLE_CELLS."""
        width = max(1, _TABLE_CELLS // max(len(codes), 1))
        for first in range(0, len(wanted), width):
            yield wanted[first : first + width], slice(first, first + width)

    def latest(self, flagged: np.ndarray) -> np.ndarray:
        """Per snapshot, the index of the latest flagged event in its prefix, -1 if none."""
        index = np.where(flagged, np.arange(len(flagged)), -1)
        latest = np.maximum.accumulate(index)[self.last]
        return np.where((latest >= self.start) & (self.events > 0), latest, -1)

    def running_max(self, per_event: np.ndarray) -> np.ndarray:
        """Per snapshot, the maximum of a non-negative `per_event` over its prefix."""
        if self._runs is not None:
            return self._runs.reduce(per_event, np.maximum, np.nan)
        peak = self._along_journeys(per_event, np.maximum)
        return np.where(self.events > 0, peak[self.last] if len(peak) else np.nan, np.nan)

    def previous_step(self, lag: int) -> np.ndarray:
        """The step code of the event `lag` places earlier in the same journey, -1 where none."""
        if lag not in self._previous_steps:
            self._previous_steps[lag] = self.previous(self.steps, lag)
        return self._previous_steps[lag]

    def previous(self, values: np.ndarray, lag: int = 1) -> np.ndarray:
        """`values` of the event `lag` places earlier in the same journey, -1 where none."""
        earlier = np.full(len(values), -1, dtype=np.int64)
        if lag < len(values):
            codes = self.log.journey_codes
            same = codes[lag:] == codes[:-lag]
            earlier[lag:] = np.where(same, values[:-lag], -1)
        return earlier

    def days_before_as_of(self, index: np.ndarray) -> np.ndarray:
        """Per snapshot (columns of a 2-D `index`), days from the indexed event to `as_of`."""
        times = self.log.times[np.maximum(index, 0)]
        as_of = self.as_of
        return np.where(index >= 0, (as_of - times) / NS_PER_DAY, np.nan)
