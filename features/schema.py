"""The canonical event schema and the one shared data structure, `EventLog`.

An `EventLog` is a frame of canonical columns sorted by journey, then time, then the remaining
columns (so the order never depends on the order rows arrived in), with the journey and step
columns dictionary-encoded in sorted order. Path analysis and features read its integer arrays:
`offsets` (where each journey starts), `journey_codes`, `step_codes` and `times`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
EVENT = "event"
CASE_ID = "case_id"
CHANNEL = "channel"
VALUE = "value"
SCORE = "score"

REQUIRED_COLUMNS = (CUSTOMER_ID, TIMESTAMP, EVENT)
OPTIONAL_TEXT_COLUMNS = (CASE_ID, CHANNEL)
OPTIONAL_NUMBER_COLUMNS = (VALUE, SCORE)
CANONICAL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_TEXT_COLUMNS + OPTIONAL_NUMBER_COLUMNS

TIME_DTYPE = "datetime64[ns, UTC]"


@dataclass(frozen=True, eq=False)
class EventLog:
    """A validated event log: canonical columns first, then attribute columns.

    Build one with `EventLog.from_frame`, which trusts its input's values (validation lives in
    `features.load`) and only puts it in canonical form.
    """

    events: pd.DataFrame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> EventLog:
        """Canonical form of a frame with at least `customer_id`, `timestamp` and `event`."""
        events = encode(frame)
        return cls(events.iloc[canonical_order(events)].reset_index(drop=True))

    @classmethod
    def read_parquet(cls, path: str | Path) -> EventLog:
        """Reads a log written by `to_parquet` (or any Parquet file with canonical columns)."""
        return cls.from_frame(pd.read_parquet(path))

    def to_parquet(self, path: str | Path) -> None:
        """Writes the canonical, dictionary-encoded form."""
        self.events.to_parquet(path, index=False)

    def select(self, keep: np.ndarray) -> EventLog:
        """The log of the events where `keep` is true; journeys left without events vanish."""
        events = self.events[keep].reset_index(drop=True)
        events[CUSTOMER_ID] = events[CUSTOMER_ID].cat.remove_unused_categories()
        return EventLog(events)

    def until(self, as_of: pd.Timestamp) -> EventLog:
        """The log as it stood at `as_of`: events at or before it."""
        return self.select(self.times <= pd.Timestamp(as_of).value)

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
        distinct_times = np.sort(pd.unique(self.times))
        rank = np.searchsorted(distinct_times, self.times, side="left")
        return distinct_times, self.journey_codes * (len(distinct_times) + 1) + rank

    @property
    def attribute_columns(self) -> list[str]:
        return [c for c in self.events.columns if c not in CANONICAL_COLUMNS]

    @property
    def n_events(self) -> int:
        return len(self.events)

    @property
    def n_journeys(self) -> int:
        return len(self.offsets) - 1

    @cached_property
    def journey_ids(self) -> np.ndarray:
        """The journey ids, in journey-code order (sorted); only ids that have events."""
        return self.events[CUSTOMER_ID].cat.categories.to_numpy(dtype=object)

    @cached_property
    def journey_codes(self) -> np.ndarray:
        return self.events[CUSTOMER_ID].cat.codes.to_numpy(dtype=np.int64)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Journey i is rows `offsets[i]:offsets[i + 1]`."""
        counts = np.bincount(self.journey_codes, minlength=len(self.journey_ids))
        return np.concatenate(([0], np.cumsum(counts))).astype(np.int64)

    @cached_property
    def steps(self) -> np.ndarray:
        """The step vocabulary, sorted; `step_codes` index into it."""
        return self.events[EVENT].cat.categories.to_numpy(dtype=object)

    @cached_property
    def step_codes(self) -> np.ndarray:
        return self.events[EVENT].cat.codes.to_numpy(dtype=np.int32)

    @cached_property
    def times(self) -> np.ndarray:
        """Event times as int64 nanoseconds since the epoch, UTC."""
        return self.events[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)


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
    def at(cls, log: EventLog, as_of: pd.Timestamp) -> Snapshots:
        """Every journey with an event at or before `as_of`, seen at `as_of`."""
        as_of_ns = pd.Timestamp(as_of).value
        journeys = np.flatnonzero(log.times[log.offsets[:-1]] <= as_of_ns)
        return cls(log, journeys, np.full(len(journeys), as_of_ns, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.journeys)

    @cached_property
    def starts(self) -> np.ndarray:
        return self.log.offsets[self.journeys]

    @cached_property
    def stops(self) -> np.ndarray:
        return self.log.stops(self.journeys, self.as_of)

    @property
    def customer_ids(self) -> np.ndarray:
        return self.log.journey_ids[self.journeys]

    @property
    def as_of_times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.as_of.astype("datetime64[ns]")).tz_localize("UTC")

    def subset(self, keep: np.ndarray) -> Snapshots:
        return Snapshots(self.log, self.journeys[keep], self.as_of[keep])


def encode(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical columns first, then attributes; text dictionary-encoded in sorted order, times
    as UTC nanoseconds, numbers as float64. Rows keep their order and index."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"an event log needs the columns {missing}; got {list(frame.columns)}")
    present = [c for c in CANONICAL_COLUMNS if c in frame.columns]
    attributes = [c for c in frame.columns if c not in CANONICAL_COLUMNS]
    events = frame[present + attributes].copy()
    events[TIMESTAMP] = pd.to_datetime(events[TIMESTAMP], utc=True).astype(TIME_DTYPE)
    for column in (CUSTOMER_ID, EVENT, *OPTIONAL_TEXT_COLUMNS):
        if column in events.columns:
            events[column] = _sorted_categorical(events[column])
    for column in OPTIONAL_NUMBER_COLUMNS:
        if column in events.columns:
            events[column] = pd.to_numeric(events[column]).astype("float64")
    return events


def canonical_order(events: pd.DataFrame) -> np.ndarray:
    """Row order by journey, time, then every other column: total, so input order cannot show.

    Stable: rows equal in every column keep their relative order.
    """
    journeys = events[CUSTOMER_ID].cat.codes.to_numpy()
    times = events[TIMESTAMP].to_numpy(dtype="datetime64[ns]").view(np.int64)
    if _strictly_ordered(journeys, times):
        return np.arange(len(events))
    keys = []
    for column in reversed(events.columns):
        series = events[column]
        if isinstance(series.dtype, pd.CategoricalDtype):
            keys.append(series.cat.codes.to_numpy())
        elif column == TIMESTAMP:
            keys.append(times)
        else:
            keys.append(pd.factorize(series, sort=True)[0])
    # lexsort's last key is the primary one: customer_id, then timestamp, then the rest.
    return np.lexsort(keys)


def _strictly_ordered(journeys: np.ndarray, times: np.ndarray) -> bool:
    """Sorted by journey then time with no two events of a journey at one time: no ties to
    break, so the order is already canonical."""
    if len(journeys) < 2:
        return True
    step = np.diff(journeys)
    return bool((step >= 0).all() and ((step > 0) | (np.diff(times) > 0)).all())


def _sorted_categorical(column: pd.Series) -> pd.Categorical:
    """Dictionary-encodes text with sorted categories, none unused: codes are deterministic."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        encoded = column.cat.remove_unused_categories()
        if not pd.api.types.is_string_dtype(encoded.cat.categories):
            encoded = encoded.cat.rename_categories(encoded.cat.categories.astype(str))
        if not encoded.cat.categories.is_monotonic_increasing:
            encoded = encoded.cat.reorder_categories(encoded.cat.categories.sort_values())
        return encoded.array
    codes, uniques = pd.factorize(column, sort=True)
    categorical = pd.Categorical.from_codes(codes, categories=pd.Index(uniques).astype(str))
    if not categorical.categories.is_monotonic_increasing:  # numbers sort apart from their text
        categorical = categorical.reorder_categories(sorted(categorical.categories))
    return categorical
