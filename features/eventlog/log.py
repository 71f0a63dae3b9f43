"""The one shared data structure, `EventLog`, and `Snapshots` of it.

An `EventLog` holds the canonical columns as arrays, sorted by journey, then time, then the
remaining columns (so the order never depends on the order rows arrived in). Journeys and steps
are dictionary-encoded in sorted order: journey i is rows `offsets[i]:offsets[i + 1]`, its
steps are `steps[step_codes[...]]` and its times `times[...]` (int64 ns, UTC).

This module needs numpy only: a log saved in canonical form is read back without pandas, which
keeps `journeyguard analyze` light. Frames come in and go out through `eventlog.frames`, files
through `eventlog.canonical`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from journeyguard.features.arrays import ranges, sorted_unique
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS


@dataclass(frozen=True)
class Coded:
    """A dictionary-encoded text column: `codes` (-1 for missing) into sorted `categories`."""

    codes: np.ndarray
    categories: np.ndarray

    def take(self, keep: np.ndarray) -> Coded:
        return Coded(self.codes[keep], self.categories)

    def values(self) -> np.ndarray:
        """The text of each row (None where missing), as an object array."""
        text = np.append(self.categories.astype(object), None)
        return text[self.codes]


Column = np.ndarray | Coded


@dataclass(frozen=True, eq=False)
class EventLog:
    """A validated, canonically sorted event log.

    Build one from a frame with `EventLog.from_frame` (which trusts its values; validation lives
    in `features.sources.load`) or read one saved by `to_parquet` with `EventLog.read_parquet`.
    `columns` holds the optional canonical columns and the attributes, row-aligned: text as
    `Coded`, numbers as float64 arrays.
    """

    journey_ids: np.ndarray
    offsets: np.ndarray
    steps: np.ndarray
    step_codes: np.ndarray
    times: np.ndarray
    columns: Mapping[str, Column] = field(default_factory=dict)

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)

    def select(self, keep: np.ndarray) -> EventLog:
        """The log of the events where `keep` is true; journeys left without events vanish."""
        kept_codes = self.journey_codes[keep]
        present = np.bincount(kept_codes, minlength=self.n_journeys) > 0
        renumber = np.cumsum(present) - 1
        counts = np.bincount(renumber[kept_codes], minlength=int(present.sum()))
        return self._part(present, counts, keep)

    def journeys_at(self, journeys: np.ndarray) -> tuple[EventLog, np.ndarray]:
        """The log of the journeys coded `journeys` (ascending), and their events' indices here:
        costs those events, not a pass over the log's."""
        lengths = self.offsets[journeys + 1] - self.offsets[journeys]
        taken = ranges(self.offsets[journeys], lengths)
        return self._part(journeys, lengths, taken), taken

    def _part(self, journeys: np.ndarray, lengths: np.ndarray, events: np.ndarray) -> EventLog:
        """The log of `journeys` (a mask or ascending codes), with `lengths` events each: the
        events at `events` (a mask or indices, in journey order)."""
        return EventLog(
            journey_ids=self.journey_ids[journeys],
            offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
            steps=self.steps,
            step_codes=self.step_codes[events],
            times=self.times[events],
            columns={
                name: column.take(events) if isinstance(column, Coded) else column[events]
                for name, column in self.columns.items()
            },
        )

    def until(self, as_of: Any) -> EventLog:
        """The log as it stood at `as_of` (a Timestamp or ns): events at or before it."""
        return self.select(self.times <= _nanoseconds(as_of))

    def select_journeys(self, keep: np.ndarray) -> EventLog:
        """The log of the journeys where `keep` (one bool per journey) is true."""
        return self.select(keep[self.journey_codes])

    def stops(self, journeys: np.ndarray, times: np.ndarray) -> np.ndarray:
        """For each (journey, time), the index just past the journey's last event at or before
        the time (the journey's start index when it has none yet): its prefix then is
        `offsets[journey]:stop`."""
        distinct_times, keys = self._time_keys
        journeys = np.asarray(journeys, dtype=np.int64)
        at_or_before = np.searchsorted(distinct_times, times, side="right")
        return np.searchsorted(keys, journeys * (len(distinct_times) + 1) + at_or_before)

    @cached_property
    def _time_keys(self) -> tuple[np.ndarray, np.ndarray]:
        # (journey, rank of time) as one int64 that increases along the sorted log, so one
        # searchsorted finds prefixes of many journeys at once; ranks keep the numbers small.
        distinct_times = sorted_unique(self.times)
        rank = np.searchsorted(distinct_times, self.times, side="left")
        return distinct_times, self.journey_codes * (len(distinct_times) + 1) + rank

    @property
    def attribute_columns(self) -> list[str]:
        return [c for c in self.columns if c not in CANONICAL_COLUMNS]

    @property
    def n_events(self) -> int:
        return len(self.step_codes)

    @property
    def n_journeys(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def journey_codes(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_journeys, dtype=np.int64), np.diff(self.offsets))

    @property
    def first_time(self) -> int:
        return int(self.times.min())

    @property
    def last_time(self) -> int:
        return int(self.times.max())


@dataclass(frozen=True, eq=False)
class Snapshots:
    """Journeys seen at points in time: (journey, as_of) pairs over one log.

    Snapshot i sees the events `log.offsets[journeys[i]]:stops[i]`, those at or before
    `as_of[i]`; features and labels are functions of these prefixes.
    """

    log: EventLog
    journeys: np.ndarray  # journey codes of `log`
    as_of: np.ndarray  # int64 ns, UTC

    @classmethod
    def at(cls, log: EventLog, as_of: Any) -> Snapshots:
        """Every journey with an event at or before `as_of`, seen at `as_of`."""
        as_of_ns = _nanoseconds(as_of)
        journeys = np.flatnonzero(log.times[log.offsets[:-1]] <= as_of_ns)
        return cls(log, journeys, np.full(len(journeys), as_of_ns, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.journeys)

    @cached_property
    def starts(self) -> np.ndarray:
        return self.log.offsets[self.journeys]

    @cached_property
    def stops(self) -> np.ndarray:
        if not len(self.as_of):  # no snapshot: no sort of the log's times to find none
            return np.zeros(0, dtype=np.int64)
        if (self.as_of == self.as_of[0]).all():
            # One as_of for all: count each journey's events up to it, no sort needed.
            log = self.log
            seen = (
                np.add.reduceat((log.times <= self.as_of[0]).astype(np.int64), log.offsets[:-1])
                if log.n_events
                else np.zeros(0, np.int64)
            )
            return log.offsets[self.journeys] + seen[self.journeys]
        return self.log.stops(self.journeys, self.as_of)

    @property
    def customer_ids(self) -> np.ndarray:
        return self.log.journey_ids[self.journeys]

    def subset(self, keep: np.ndarray) -> Snapshots:
        return Snapshots(self.log, self.journeys[keep], self.as_of[keep])


def _nanoseconds(moment: Any) -> int:
    return int(getattr(moment, "value", moment))
