"""A typed Parquet source with nothing to set aside, read straight from Arrow into a log.

Most ingests are of a clean export: ids and steps as text (or whole numbers), times typed with
a zone, numbers numeric, no row rejected. `load_typed` gives such a file the log, source rows
and empty quarantine that the validating load (`sources.load`) gives it, without pandas (its
import, the frame and the per-row checks were most of an ingest). At the first sign of a row
that load would set aside or a column it would type another way (a missing id or time, a blank
step, a number out of range, an exact duplicate, a text attribute of numbers, a naive time in a
zone other than UTC) it returns None, and the validating load reads the file with its reasons.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from journeyguard.features.arrays import ranges
from journeyguard.features.config.model import SourceConfig
from journeyguard.features.eventlog import buffers
from journeyguard.features.eventlog.columns import (
    CUSTOMER_ID,
    EVENT,
    NUMBER_LIMIT,
    OPTIONAL_NUMBER_COLUMNS,
    OPTIONAL_TEXT_COLUMNS,
    TIMESTAMP,
)
from journeyguard.features.eventlog.log import Coded, Column, EventLog
from journeyguard.features.eventlog.order import (
    break_ties,
    journey_time_order,
    repeats,
    shares_journey_time,
)
from journeyguard.features.sources.growth import is_parquet
from journeyguard.features.sources.mapping import column_mapping, require_unique
from journeyguard.features.sources.quarantine import write_empty_quarantine

_NS_PER_UNIT = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_THREADS_FROM = 50_000  # rows below which starting two threads costs more than they save
_INT64 = np.iinfo(np.int64)


@dataclass(frozen=True)
class TypedLoad:
    log: EventLog
    source_rows: np.ndarray  # each event's source row (1-based), in log order
    columns_read: list[str]  # the source columns read: the quarantine's raw columns

    @property
    def rows_read(self) -> int:
        return self.log.n_events

    def write_quarantine(self, path: Path) -> None:
        write_empty_quarantine(self.columns_read, path)


def load_typed(source: SourceConfig) -> TypedLoad | None:
    """The load of a Parquet source none of whose rows is set aside, or None when the
    validating load must read it (a mapping error raises `LoadError` as that load does)."""
    if source.path is None or not is_parquet(source) or source.attributes.path is not None:
        return None
    read = _read(source)
    if read is None:
        return None
    table, mapping = read
    sorted_log = _sorted_log(table, mapping, source)
    if sorted_log is None:
        return None
    log, order = sorted_log
    return TypedLoad(log, order.astype(np.int64) + 1, list(dict.fromkeys(mapping.values())))


def _read(source: SourceConfig) -> tuple[pa.Table, dict[str, str]] | None:
    """The file's mapped columns (text dictionary-encoded) and the mapping."""
    assert source.path is not None
    try:
        schema = pq.read_schema(source.path)
    except (pa.ArrowException, OSError):
        return None  # the validating load names what is wrong with the file
    mapping = column_mapping(source, schema.names)
    require_unique(source.display_name, schema.names, list(mapping.values()))
    read = list(dict.fromkeys(mapping.values()))
    text = [c for c in read if _is_text(schema.field(c).type)]
    try:
        # ParquetFile, not read_table: its dataset layer imports pandas (a quarter second);
        # pre-buffered, the column chunks come in a few large reads (a fifth less time)
        file = pq.ParquetFile(source.path, read_dictionary=text, pre_buffer=True)
        return file.read(columns=read), mapping
    except (pa.ArrowException, OSError):
        return None


def _sorted_log(
    table: pa.Table, mapping: dict[str, str], source: SourceConfig
) -> tuple[EventLog, np.ndarray] | None:
    """The log of the table's rows in canonical order, and that order."""
    if table.num_rows == 0 or not all(c in mapping for c in (CUSTOMER_ID, EVENT, TIMESTAMP)):
        return None
    raw = _raw_text(table.column(mapping[CUSTOMER_ID]))
    times = _times(table.column(mapping[TIMESTAMP]), source.timezone)
    if raw is None or times is None or (raw[1] < 0).any():
        return None
    # numpy's sorts and gathers let go of the GIL: the rows are sorted by the file's own
    # journey codes beside the ids' cleaning and ranking and the other columns' conversion,
    # then the journeys' blocks put in the order of their ids; the gathers go two at a time.
    pool = ThreadPoolExecutor(max_workers=2) if table.num_rows >= _THREADS_FROM else _InPlace()
    with pool:
        sorting = pool.submit(journey_time_order, raw[1], times)
        coded = _coded(*raw, required=True)
        columns = _other_columns(table, mapping, source)
        order = sorting.result()
        if coded is None or columns is None:
            return None
        journeys, journey_of_raw = coded
        order = _in_journey_order(order, raw[1], journey_of_raw, journeys, times)
        others = [c.codes if isinstance(c, Coded) else c for c in columns.values()]
        # Ties only reorder rows of one journey and time: these stay sorted through them.
        sorted_times = times[order]
        same = shares_journey_time(journeys.codes[order], sorted_times)
        order = break_ties(order, same, others)
        if repeats(order, same, others).any():
            return None  # which duplicates to keep and how to report them is the full load's
        steps, *sorted_columns = pool.map(_taken, columns.values(), repeat(order))
    counts = np.bincount(journeys.codes, minlength=len(journeys.categories))
    log = EventLog(
        journey_ids=journeys.categories,
        offsets=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
        steps=steps.categories,
        step_codes=steps.codes,
        times=sorted_times,
        columns=dict(zip(list(columns)[1:], sorted_columns, strict=True)),
    )
    return log, order


class _InPlace(Executor):
    """Runs each call as it is submitted, in this thread (for a few rows: an append's)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        done: Future = Future()
        done.set_result(fn(*args, **kwargs))
        return done


def _other_columns(
    table: pa.Table, mapping: dict[str, str], source: SourceConfig
) -> dict[str, Column] | None:
    """The columns after journey and time, in the order a load gives them (the step, the
    optional canonical columns, the attributes), each as it would type it; None if any row or
    column is not for this path."""
    found: dict[str, Column | None] = {EVENT: _text(table.column(mapping[EVENT]), required=True)}
    for name in OPTIONAL_TEXT_COLUMNS:
        if name in mapping:
            found[name] = _text(table.column(mapping[name]), required=False)
        elif name in source.defaults:
            default = source.defaults[name]
            fill = np.zeros(table.num_rows, np.int32)
            found[name] = Coded(fill, np.array([str(default)], dtype=object))
    for name in OPTIONAL_NUMBER_COLUMNS:
        if name in mapping:
            found[name] = _numbers(table.column(mapping[name]), booleans=False)
    for name in source.attributes.columns:
        found[name] = _attribute(table.column(mapping[name]))
    if any(column is None for column in found.values()):
        return None
    return {name: column for name, column in found.items() if column is not None}


def _in_journey_order(
    order: np.ndarray,
    raw_codes: np.ndarray,
    journey_of_raw: np.ndarray,
    journeys: Coded,
    times: np.ndarray,
) -> np.ndarray:
    """Rows sorted by the file's journey codes and time, put in journey-id order: each raw
    code's block moved whole where its journey's rank says, when the cleaning kept one id per
    raw code (else a sort again)."""
    counts = np.bincount(raw_codes, minlength=len(journey_of_raw))
    used = np.flatnonzero(counts)
    if len(used) > len(journeys.categories):  # two raw ids cleaned into one
        return journey_time_order(journeys.codes, times)
    by_rank = used[np.argsort(journey_of_raw[used])]
    starts = np.cumsum(counts) - counts
    return order[ranges(starts[by_rank], counts[by_rank])]


def _text(column: pa.ChunkedArray, *, required: bool) -> Coded | None:
    """Text as a load cleans it: surrounding spaces dropped, empty cells missing, codes into
    the sorted values used; None when a required cell is missing or the type is not text or
    whole numbers."""
    raw = _raw_text(column)
    coded = None if raw is None else _coded(*raw, required=required)
    return None if coded is None else coded[0]


def _raw_text(column: pa.ChunkedArray) -> tuple[list[Any], np.ndarray] | None:
    """The column's distinct values as the file holds them (text) and each cell's code into
    them (-1 missing); None unless text or whole numbers."""
    if pa.types.is_dictionary(column.type) and _is_text(column.type.value_type):
        column = column.unify_dictionaries()
        values = (
            column.chunk(0).dictionary.to_pylist() if column.num_chunks else []
        )  # the same dictionary in every chunk once unified
        return values, _indices(column)
    if pa.types.is_null(column.type):  # every cell missing
        return [], np.full(len(column), -1, dtype=np.int64)
    if pa.types.is_integer(column.type) and column.null_count == 0:
        numbers = np.concatenate([buffers.values(c) for c in column.chunks])
        uniques, codes = np.unique(numbers, return_inverse=True)
        return [str(v) for v in uniques.tolist()], codes.reshape(-1)
    return None


def _coded(
    values: list[Any], codes: np.ndarray, *, required: bool
) -> tuple[Coded, np.ndarray] | None:
    """Raw text cleaned: codes into the sorted cleaned values used, and the code each raw
    value became (-1 for none)."""
    used = np.bincount(codes + 1, minlength=len(values) + 1)[1:] > 0
    sorted_codes = _sorted_codes(values, used)
    if sorted_codes is None:
        return None
    recode, categories = sorted_codes
    coded = recode[codes]  # a missing cell's -1 takes the last slot: missing stays missing
    if required and (coded < 0).any():
        return None
    return Coded(coded, categories), recode[:-1]


def _sorted_codes(values: list[Any], used: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For each of `values` (and one more slot, missing) its code among the sorted distinct
    cleaned values used, -1 for none; None if a value ends in NUL (numpy's text, which the
    load sorts with, drops those)."""
    if used.all() and _clean_and_distinct(values):
        order = np.argsort(np.array(values))  # already clean and distinct: a sort
        recode = np.empty(len(values) + 1, dtype=np.int32)
        recode[order], recode[-1] = np.arange(len(values), dtype=np.int32), -1
        return recode, np.array(values, dtype=object)[order]
    keep = used.tolist()
    cleaned = [v.strip() if u and v is not None else "" for v, u in zip(values, keep, strict=True)]
    if any(c.endswith("\0") for c in cleaned):
        return None
    categories = sorted(set(cleaned) - {""})
    number = {c: i for i, c in enumerate(categories)}
    recode = np.array([number.get(c, -1) for c in cleaned] + [-1], dtype=np.int32)
    return recode, np.array(categories, dtype=object)


def _clean_and_distinct(values: list[Any]) -> bool:
    """Whether the values are distinct and none is missing (None), empty, padded with spaces
    or holds a NUL, checked by C loops (a Python one per value costs more than the sort)."""
    if not all(values) or len(set(values)) < len(values):
        return False
    stripped = sum(map(len, map(str.strip, values)))
    return sum(map(len, values)) == stripped and "\0" not in "".join(values)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _indices(column: pa.ChunkedArray) -> np.ndarray:
    """A unified dictionary column's indices, -1 for missing cells."""
    parts = [buffers.with_missing(c.indices, -1, cells=c) for c in column.chunks]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric or boolean column as float64, NaN where missing."""
    parts = [buffers.with_missing(c, np.nan) for c in column.chunks]
    return np.concatenate(parts).astype(np.float64, copy=False) if parts else np.zeros(0)


def _times(column: pa.ChunkedArray, timezone: str | None) -> np.ndarray | None:
    """UTC nanoseconds of a typed time column with a zone (or naive, read as UTC when that is
    the configured zone); None when a time is missing or beyond nanoseconds."""
    kind = column.type
    if not pa.types.is_timestamp(kind) or column.null_count:
        return None
    if kind.tz is None and timezone != "UTC":
        return None
    factor = _NS_PER_UNIT[kind.unit]
    values = np.concatenate([buffers.values(c) for c in column.chunks]).astype(np.int64, copy=False)
    low, high = _INT64.min // factor, _INT64.max // factor  # the lowest is NaT's
    if len(values) and (values.min() <= low or values.max() > high):
        return None
    return values * factor if factor > 1 else values


def _numbers(column: pa.ChunkedArray, *, booleans: bool) -> np.ndarray | None:
    """float64 numbers, NaN where missing; None for another type or a value beyond the
    load's limit (infinities included)."""
    kind = column.type
    if booleans and pa.types.is_boolean(kind) and column.null_count == 0:
        return _floats(column)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        return None
    values = _floats(column)
    if (np.abs(values) > NUMBER_LIMIT).any():  # infinities too; NaN, missing, is not
        return None
    return values


def _attribute(column: pa.ChunkedArray) -> Column | None:
    """Numbers for a numeric column, else text; None for text that might all be numbers (the
    load makes such a column numeric), which only the validating load can decide."""
    numbers = _numbers(column, booleans=True)
    if numbers is not None:
        return numbers
    text = _text(column, required=False)
    if text is None or all(_may_be_number(v) for v in text.categories):
        return None
    return text


def _may_be_number(value: str) -> bool:
    """Whether the load might read the text as a number: every text pandas reads as one is
    one Python's float reads (a test checks this on the cases where they could part)."""
    try:
        float(value)
    except ValueError:
        return False
    return True


def _taken(column: Any, order: np.ndarray) -> Column:
    if isinstance(column, Coded):
        return Coded(column.codes[order], column.categories)
    return column[order]
