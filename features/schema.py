"""The canonical event schema and the one shared data structure, `EventLog`.

An `EventLog` holds the canonical columns as arrays, sorted by journey, then time, then the
remaining columns (so the order never depends on the order rows arrived in). Journeys and steps
are dictionary-encoded in sorted order: journey i is rows `offsets[i]:offsets[i + 1]`, its
steps are `steps[step_codes[...]]` and its times `times[...]` (int64 ns, UTC).

This module needs numpy and pyarrow only: a log saved in canonical form is read back without
pandas, which keeps `journeyguard analyze` light. Frames come in and go out through
`features.frames`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

CUSTOMER_ID = "customer_id"
TIMESTAMP = "timestamp"
EVENT = "event"
CASE_ID = "case_id"
CHANNEL = "channel"
VALUE = "value"
SCORE = "score"

REQUIRED_COLUMNS = (CUSTOMER_ID, TIMESTAMP, EVENT)
NS_PER_HOUR = 3_600 * 10**9  # event times are int64 nanoseconds since the epoch, UTC
NS_PER_DAY = 24 * NS_PER_HOUR
OPTIONAL_TEXT_COLUMNS = (CASE_ID, CHANNEL)
OPTIONAL_NUMBER_COLUMNS = (VALUE, SCORE)
CANONICAL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_TEXT_COLUMNS + OPTIONAL_NUMBER_COLUMNS

TIME_DTYPE = "datetime64[ns, UTC]"
CANONICAL_MARK = b"journeyguard.canonical"  # Parquet metadata key of a log saved by `to_parquet`


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
    in `features.load`) or read one saved by `to_parquet` with `EventLog.read_parquet`.
    `columns` holds the optional canonical columns and the attributes, row-aligned: text as
    `Coded`, numbers as float64 arrays.
    """

    journey_ids: np.ndarray
    offsets: np.ndarray
    steps: np.ndarray
    step_codes: np.ndarray
    times: np.ndarray
    columns: Mapping[str, Column] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> EventLog:
        """Canonical form of a frame with at least `customer_id`, `timestamp` and `event`."""
        from features.frames import log_from_frame

        return log_from_frame(frame)

    @classmethod
    def read_parquet(cls, path: str | Path) -> EventLog:
        """Reads a log: fast when `to_parquet` wrote it, else through `from_frame`."""
        log = read_canonical(path)
        if log is None:
            import pandas as pd

            log = cls.from_frame(pd.read_parquet(path))
        return log

    def to_parquet(self, path: str | Path) -> None:
        """Writes the canonical, dictionary-encoded form, marked so it reads back fast."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = {
            CUSTOMER_ID: _dictionary(self.journey_codes, self.journey_ids),
            TIMESTAMP: pa.array(self.times, type=pa.timestamp("ns", tz="UTC")),
            EVENT: _dictionary(self.step_codes, self.steps),
        }
        for name, column in self.columns.items():
            arrays[name] = (
                _dictionary(column.codes, column.categories)
                if isinstance(column, Coded)
                else pa.array(column, from_pandas=True)
            )
        table = pa.table(arrays).replace_schema_metadata({CANONICAL_MARK: b"1"})
        # One row group: each group would repeat the whole journey-id dictionary.
        pq.write_table(table, path, row_group_size=max(self.n_events, 1))

    @cached_property
    def events(self) -> pd.DataFrame:
        """The log as a pandas frame (categoricals for text, UTC times)."""
        from features.frames import log_to_frame

        return log_to_frame(self)

    def column(self, name: str) -> Column | None:
        return self.columns.get(name)

    def select(self, keep: np.ndarray) -> EventLog:
        """The log of the events where `keep` is true; journeys left without events vanish."""
        kept_codes = self.journey_codes[keep]
        present = np.bincount(kept_codes, minlength=self.n_journeys) > 0
        renumber = np.cumsum(present) - 1
        counts = np.bincount(renumber[kept_codes], minlength=int(present.sum()))
        return EventLog(
            journey_ids=self.journey_ids[present],
            offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
            steps=self.steps,
            step_codes=self.step_codes[keep],
            times=self.times[keep],
            columns={
                name: column.take(keep) if isinstance(column, Coded) else column[keep]
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
        if len(self.as_of) and (self.as_of == self.as_of[0]).all():
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


def read_canonical(path: str | Path, columns: list[str] | None = None) -> EventLog | None:
    """A log that `EventLog.to_parquet` wrote, read straight into arrays; None for any other
    file. `columns` limits the optional columns read (default: all)."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if (schema.metadata or {}).get(CANONICAL_MARK) != b"1":
        return None
    names = [c for c in schema.names if c not in REQUIRED_COLUMNS]
    wanted = names if columns is None else [c for c in names if c in columns]
    # ParquetFile rather than read_table: the dataset layer behind read_table imports pandas.
    text = [f.name for f in schema if _is_text(f.type)]
    table = pq.ParquetFile(path, read_dictionary=text).read(columns=[*REQUIRED_COLUMNS, *wanted])
    journey = _coded(table.column(CUSTOMER_ID))
    counts = np.bincount(journey.codes, minlength=len(journey.categories))
    event = _coded(table.column(EVENT))
    extra = {name: _column(table.column(name)) for name in wanted}
    times = _from_buffers(table.column(TIMESTAMP).combine_chunks(), np.dtype(np.int64), 0)
    return EventLog(
        journey_ids=journey.categories,
        offsets=np.r_[0, np.cumsum(counts)],
        steps=event.categories,
        step_codes=event.codes.astype(np.int32),
        times=times,
        columns=extra,
    )


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (a sort and a comparison: faster than np.unique here)."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _nanoseconds(moment: Any) -> int:
    return int(getattr(moment, "value", moment))


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or (pa.types.is_dictionary(arrow_type) and pa.types.is_string(arrow_type.value_type))
    )


def _dictionary(codes: np.ndarray, categories: np.ndarray) -> Any:
    import pyarrow as pa

    indices = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, pa.array(categories.astype(str)))


def _coded(chunked: Any) -> Coded:
    """A dictionary column of Arrow as `Coded` with sorted categories."""
    array = chunked.unify_dictionaries().combine_chunks() if chunked.num_chunks else chunked
    categories = np.asarray(array.dictionary.to_pylist(), dtype=object)
    codes = _nullable_integers(array.indices)
    if (categories[1:] < categories[:-1]).any():  # chunks may add categories out of order
        order = np.argsort(categories.astype(str), kind="stable")
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1).astype(np.int32)
        categories = categories[order]
    return Coded(codes, categories)


def _nullable_integers(array: Any) -> np.ndarray:
    """Arrow dictionary indices as int32, -1 for nulls."""
    dtype = np.dtype(f"int{array.type.bit_width}")
    return _from_buffers(array, dtype, -1).astype(np.int32)


def _from_buffers(array: Any, dtype: np.dtype, missing: float) -> np.ndarray:
    """A primitive Arrow array as numpy, `missing` for nulls, read from its buffers (pyarrow's
    own conversion of arrays with nulls imports pandas)."""
    validity, data = array.buffers()[:2]
    values = np.frombuffer(data, dtype=dtype)[array.offset : array.offset + len(array)].copy()
    if array.null_count:
        bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        values[~bits[array.offset : array.offset + len(array)].astype(bool)] = missing
    return values


def _column(chunked: Any) -> Column:
    import pyarrow as pa

    if pa.types.is_dictionary(chunked.type):
        return _coded(chunked)
    return _from_buffers(chunked.combine_chunks().cast(pa.float64()), np.dtype(np.float64), np.nan)
