"""Canonical files: a log saved sorted and dictionary-encoded in Parquet, marked so that it
reads straight back into arrays without validation or pandas (it was validated when written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from journeyguard.features.arrays import found_sorted, ranges
from journeyguard.features.eventlog.columns import CUSTOMER_ID, EVENT, REQUIRED_COLUMNS, TIMESTAMP
from journeyguard.features.eventlog.log import Coded, Column, EventLog

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
    """A log that `write_canonical_arrow` wrote. `columns` limits the optional columns read."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:  # the arrays are copied out before it closes
        table = pa.ipc.open_file(source).read_all()
        names = [c for c in table.column_names if c not in REQUIRED_COLUMNS]
        wanted = names if columns is None else [c for c in names if c in columns]
        return _log_of_table(table, wanted)


def read_canonical_arrow_journeys(
    path: str | Path, journey_ids: np.ndarray
) -> tuple[EventLog, np.ndarray]:
    """The events of the journeys among `journey_ids` (sorted) in a file that
    `write_canonical_arrow` wrote, and their indices in it: only those rows are converted,
    found by a search of the sorted journey codes, not a pass over them."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
        column = table.column(CUSTOMER_ID).combine_chunks()
        categories = np.asarray(column.dictionary.to_pylist(), dtype=object)
        indices = column.indices
        width = np.dtype(f"int{indices.type.bit_width}")
        codes = np.frombuffer(indices.buffers()[1], dtype=width)[
            indices.offset : indices.offset + len(indices)
        ]
        journeys = found_sorted(categories, journey_ids)
        starts = np.searchsorted(codes, journeys)
        lengths = np.searchsorted(codes, journeys, side="right") - starts
        offsets = np.r_[0, np.cumsum(lengths)]
        taken = ranges(starts, lengths)
        names = [c for c in table.column_names if c not in REQUIRED_COLUMNS]
        small = table.take(pa.array(taken))
        log = _log_of_table(small, names, (categories[journeys], offsets))
    return log, taken


def _canonical_table(log: EventLog) -> Any:
    import pyarrow as pa

    arrays = {
        CUSTOMER_ID: _dictionary(log.journey_codes, log.journey_ids),
        TIMESTAMP: _fixed_width(log.times, pa.timestamp("ns", tz="UTC")),
        EVENT: _dictionary(log.step_codes, log.steps),
    }
    for name, column in log.columns.items():
        arrays[name] = (
            _dictionary(column.codes, column.categories)
            if isinstance(column, Coded)
            else _fixed_width(column, pa.float64(), valid=~np.isnan(column))
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
        journey = _coded(table.column(CUSTOMER_ID))
        counts = np.bincount(journey.codes, minlength=len(journey.categories))
        journeys = journey.categories, np.r_[0, np.cumsum(counts)]
    event = _coded(table.column(EVENT))
    extra = {name: _column(table.column(name)) for name in wanted}
    times = _from_buffers(table.column(TIMESTAMP).combine_chunks(), np.dtype(np.int64), 0)
    return EventLog(
        journey_ids=journeys[0],
        offsets=journeys[1].astype(np.int64),
        steps=event.categories,
        step_codes=event.codes.astype(np.int32),
        times=times,
        columns=extra,
    )


def _is_text(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or (pa.types.is_dictionary(arrow_type) and pa.types.is_string(arrow_type.value_type))
    )


# Arrays are built from their buffers: `pa.array` imports pandas (a quarter second) to check
# whether it was handed a pandas object, and a first ingest needs pandas nowhere else.
def _dictionary(codes: np.ndarray, categories: np.ndarray) -> Any:
    import pyarrow as pa

    indices = _fixed_width(codes.astype(np.int32), pa.int32(), valid=codes >= 0)
    return pa.DictionaryArray.from_arrays(indices, _strings(categories))


def _fixed_width(values: np.ndarray, kind: Any, valid: np.ndarray | None = None) -> Any:
    """An Arrow array of numpy `values`, null where `valid` is False."""
    import pyarrow as pa

    bitmap = None
    if valid is not None and not valid.all():
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = pa.py_buffer(np.ascontiguousarray(values))
    return pa.Array.from_buffers(kind, len(values), [bitmap, data])


def _strings(texts: np.ndarray) -> Any:
    import pyarrow as pa

    values = [str(text) for text in texts.tolist()]
    whole = "".join(values)
    if whole.isascii():  # a character is a byte: lengths without encoding each value
        data, lengths = whole.encode(), np.fromiter(map(len, values), np.int64, len(values))
    else:
        encoded = [value.encode() for value in values]
        data, lengths = b"".join(encoded), np.fromiter(map(len, encoded), np.int64, len(values))
    if len(data) >= 2**31:  # beyond 32-bit offsets: Arrow splits it
        return pa.array(values)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    return pa.Array.from_buffers(
        pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


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
