"""Canonical files: a log saved sorted and dictionary-encoded in Parquet, marked so that it
reads straight back into arrays without validation or pandas (it was validated when written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from journeyguard.features.arrays import ranges
from journeyguard.features.eventlog import buffers, ipc
from journeyguard.features.eventlog.columns import CUSTOMER_ID, EVENT, REQUIRED_COLUMNS, TIMESTAMP
from journeyguard.features.eventlog.log import Coded, Column, EventLog
from journeyguard.features.eventlog.order import packed_journey_time

CANONICAL_MARK = b"journeyguard.canonical"  # Parquet metadata key of a log `write_canonical` saved


def write_canonical(log: EventLog, path: str | Path) -> None:
    """Writes the canonical, dictionary-encoded form, marked so it reads back fast."""
    import pyarrow.parquet as pq

    table = _canonical_table(log)
    # One row group: each group would repeat the whole journey-id dictionary. Only the text is
    # dictionary-encoded: trying it on times and numbers, nearly all distinct, doubles the write.
    text = [field.name for field in table.schema if _is_text(field.type)]
    pq.write_table(table, path, row_group_size=max(log.n_events, 1), use_dictionary=text)


def write_canonical_arrow(log: EventLog, path: str | Path) -> None:
    """The canonical form as an uncompressed Arrow IPC file: larger than Parquet, but written
    and read back (memory-mapped) at the speed of a copy, for a store that is rewritten on
    every append and read by every command."""
    import pyarrow as pa

    table = _canonical_table(log)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_canonical_arrow(path: str | Path, columns: list[str] | None = None) -> EventLog:
    """A log that `write_canonical_arrow` wrote. `columns` limits the optional columns read.
    Without any, the file is read without pyarrow where `ipc.ArrowFile` can."""
    log = _read_required_columns(path, columns) if columns is not None else None
    if log is not None:
        return log
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:  # the arrays are copied out before it closes
        table = pa.ipc.open_file(source).read_all()
        names = [c for c in table.column_names if c not in REQUIRED_COLUMNS]
        wanted = names if columns is None else [c for c in names if c in columns]
        return _log_of_table(table, wanted)


def _read_required_columns(path: str | Path, columns: list[str]) -> EventLog | None:
    """The log of a file that holds none of `columns`, read by `ipc.ArrowFile` (its
    journeys, steps and times: what `analyze` reads); None where it cannot read them."""
    with ipc.opened(path) as file:
        if file is None or set(columns) & set(file.names).difference(REQUIRED_COLUMNS):
            return None
        journey, event = file.coded_text(CUSTOMER_ID), file.coded_text(EVENT)
        times = file.int64s(TIMESTAMP)
    if journey is None or event is None or times is None:
        return None
    return _event_log(_journeys(_text_coded(*journey)), _text_coded(*event), times, {})


def _text_coded(indices: np.ndarray, texts: list[str]) -> Coded:
    return _sorted_coded(indices, np.asarray(texts, dtype=object))


def read_canonical_arrow_near(path: str | Path, near: EventLog) -> tuple[EventLog, np.ndarray]:
    """The events in a file that `write_canonical_arrow` wrote that share journey and time
    with an event of `near` (the only ones an event of `near` can equal), and their indices
    in it. The log names every journey of `near` the file holds, some with no events.
    Journeys are found by a search of the sorted journey codes, not a pass over them, and only
    the rows kept and the text they use are converted."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
        ids = _one_array(table.column(CUSTOMER_ID))
        codes = buffers.values(ids.indices)
        held, journeys = buffers.found_texts(ids.dictionary, near.journey_ids)
        journeys = journeys.astype(codes.dtype)  # of another type, the search copies all codes
        starts = np.searchsorted(codes, journeys)
        lengths = np.searchsorted(codes, journeys, side="right") - starts
        taken = ranges(starts, lengths)
        times = buffers.values(_one_array(table.column(TIMESTAMP)))[taken]
        found = np.repeat(np.arange(len(journeys)), lengths)  # each row's journey found
        in_near = np.flatnonzero(held)[found]  # and its code in `near`
        kept = _shares_journey_time(in_near, times, near.journey_codes, near.times)
        counts = np.bincount(found[kept], minlength=len(journeys))
        taken = taken[kept]
        steps = _taken_coded(table.column(EVENT), taken)
        names = [c for c in table.column_names if c not in REQUIRED_COLUMNS]
        log = EventLog(
            journey_ids=buffers.texts_at(ids.dictionary, journeys),
            offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
            steps=steps.categories,
            step_codes=steps.codes,
            times=times[kept],
            columns={name: _taken_column(table.column(name), taken) for name in names},
        )
    return log, taken


def _shares_journey_time(
    journeys: np.ndarray, times: np.ndarray, other_journeys: np.ndarray, other_times: np.ndarray
) -> np.ndarray:
    """Which (journey, time) pairs of the first arrays are among those of the others. Only
    the rows within the others' span of time (few, for a day's events) are compared as
    pairs, each pair packed into one integer (times ranked first when they do not fit)."""
    shared = np.zeros(len(times), dtype=bool)
    if not len(other_times):
        return shared
    maybe = np.flatnonzero((times >= other_times.min()) & (times <= other_times.max()))
    both_times = np.concatenate([times[maybe], other_times])
    both_journeys = np.concatenate([journeys[maybe], other_journeys])
    packed = packed_journey_time(both_journeys, both_times)
    if packed is None:
        packed = packed_journey_time(both_journeys, np.unique(both_times, return_inverse=True)[1])
    assert packed is not None  # ranks fit: fewer than rows
    shared[maybe] = np.isin(packed[: len(maybe)], packed[len(maybe) :])
    return shared


def _taken_column(chunked: Any, taken: np.ndarray) -> Column:
    import pyarrow as pa

    if pa.types.is_dictionary(chunked.type):
        return _taken_coded(chunked, taken)
    return buffers.values_at(_one_array(chunked), taken, np.nan)


def _taken_coded(chunked: Any, taken: np.ndarray) -> Coded:
    """The `taken` rows of a written dictionary column (one sorted dictionary), with only the
    categories they use."""
    array = _one_array(chunked)
    codes = buffers.values_at(array.indices, taken, -1, cells=array).astype(np.int32)
    texts = array.dictionary
    used = np.bincount(codes + 1, minlength=len(texts) + 1)[1:] > 0  # a count, not a sort
    renumber = np.append(np.cumsum(used, dtype=np.int32) - 1, -1)  # missing, -1, stays
    return Coded(renumber[codes], buffers.texts_at(texts, np.flatnonzero(used)))


def _one_array(chunked: Any) -> Any:
    """The column of a file of one record batch as one array: its chunk, where combining
    chunks would copy the whole column to take a few rows of it."""
    return chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()


def _canonical_table(log: EventLog) -> Any:
    import pyarrow as pa

    arrays = {
        CUSTOMER_ID: _dictionary(log.journey_codes, log.journey_ids),
        TIMESTAMP: buffers.fixed_width(log.times, pa.timestamp("ns", tz="UTC")),
        EVENT: _dictionary(log.step_codes, log.steps),
    }
    for name, column in log.columns.items():
        arrays[name] = (
            _dictionary(column.codes, column.categories)
            if isinstance(column, Coded)
            else buffers.fixed_width(column, pa.float64(), ~np.isnan(column))
        )
    return pa.table(arrays).replace_schema_metadata({CANONICAL_MARK: b"1"})


def read_canonical(path: str | Path, columns: list[str] | None = None) -> EventLog | None:
    """A log that `write_canonical` wrote, read straight into arrays; None for any other
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
    return _log_of_table(table, wanted)


def _log_of_table(
    table: Any, wanted: list[str], journeys: tuple[np.ndarray, np.ndarray] | None = None
) -> EventLog:
    """The `EventLog` of a canonical Arrow table, with the optional columns `wanted`; its
    journeys' ids and offsets when known (those of a part of the table)."""
    if journeys is None:
        journeys = _journeys(_coded(table.column(CUSTOMER_ID)))
    event = _coded(table.column(EVENT))
    extra = {name: _column(table.column(name)) for name in wanted}
    times = buffers.values(table.column(TIMESTAMP).combine_chunks()).copy()
    return _event_log(journeys, event, times, extra)


def _journeys(journey: Coded) -> tuple[np.ndarray, np.ndarray]:
    """The ids and offsets of the journeys of a sorted log's journey column: where its codes
    change, when every journey has rows (half the time of a count, which widens every code
    to 64 bits first), else by a count."""
    codes, n_journeys = journey.codes, len(journey.categories)
    changes = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    if len(codes) and len(changes) + 1 == n_journeys:
        return journey.categories, np.concatenate(([0], changes, [len(codes)]))
    counts = np.bincount(codes, minlength=n_journeys)
    return journey.categories, np.r_[0, np.cumsum(counts)]


def _event_log(
    journeys: tuple[np.ndarray, np.ndarray],
    event: Coded,
    times: np.ndarray,
    columns: dict[str, Column],
) -> EventLog:
    return EventLog(
        journey_ids=journeys[0],
        offsets=journeys[1].astype(np.int64),
        steps=event.categories,
        step_codes=event.codes.astype(np.int32, copy=False),  # a copy or a private mapping
        times=times,
        columns=columns,
    )


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or (pa.types.is_dictionary(arrow_type) and pa.types.is_string(arrow_type.value_type))
    )


def _dictionary(codes: np.ndarray, categories: np.ndarray) -> Any:
    import pyarrow as pa

    indices = buffers.fixed_width(codes.astype(np.int32), pa.int32(), codes >= 0)
    return pa.DictionaryArray.from_arrays(indices, buffers.strings(categories))


def _coded(chunked: Any) -> Coded:
    """A dictionary column of Arrow as `Coded` with sorted categories."""
    array = chunked.unify_dictionaries().combine_chunks() if chunked.num_chunks else chunked
    categories = np.asarray(array.dictionary.to_pylist(), dtype=object)
    codes = buffers.with_missing(array.indices, -1).astype(np.int32)  # a copy: the file closes
    return _sorted_coded(codes, categories)


def _sorted_coded(codes: np.ndarray, categories: np.ndarray) -> Coded:
    """`Coded` of int32 dictionary indices (-1 for missing) and their dictionary, which is
    sorted here if it is not."""
    if (categories[1:] < categories[:-1]).any():  # chunks may add categories out of order
        order = np.argsort(categories.astype(str), kind="stable")
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order), dtype=np.int32)
        codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1).astype(np.int32)
        categories = categories[order]
    return Coded(codes, categories)


def _column(chunked: Any) -> Column:
    import pyarrow as pa

    if pa.types.is_dictionary(chunked.type):
        return _coded(chunked)
    array = chunked.combine_chunks()
    if not pa.types.is_float64(array.type):  # written as float64; a cast imports compute
        array = array.cast(pa.float64())
    return buffers.with_missing(array, np.nan).astype(np.float64)  # a copy: the file closes
