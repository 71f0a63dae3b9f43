"""How a file source changed since it was ingested: not at all, grown by new rows, or otherwise.

A watermark records the file as it was read: its size, modification time, rows, and digests of
its start and of the end of what was read (CSV: the first and the last 64 KiB of bytes; Parquet,
which a writer rewrites whole: the first 64 rows' values and the last 64 rows' times). A file
whose size and time are unchanged is current without reading it. A file that only grew (a daily
export adding rows, CSV appended to, Parquet rewritten with more rows) keeps both digests; its
new rows are the ones after the watermark, read from the row groups that hold them. Anything
else counts as changed. The digests cost a few reads, not a pass over the file, so an edit in
the middle of a grown file is not seen: `ingest --full` rebuilds from scratch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from journeyguard.features.config.model import SourceConfig, is_parquet_file
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS, TIMESTAMP

EDGE_BYTES = 64 * 1024  # bytes of a CSV file's start and end that its digests cover
EDGE_ROWS = 64  # rows of a Parquet file's start and end that its digests cover

Change = Literal["current", "grown", "changed"]


@dataclass(frozen=True)
class Watermark:
    """A file source as it was ingested."""

    rows: int  # data rows read
    size: int  # bytes
    mtime_ns: int
    head: str  # digest of the start
    tail: str  # digest of the end of what was read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_parquet(source: SourceConfig) -> bool:
    assert source.path is not None
    return is_parquet_file(source.path, source.format)


def watermark(
    source: SourceConfig, rows: int, stat: os.stat_result, grown_from: Watermark | None = None
) -> Watermark:
    """The watermark of a file read whole when it had `stat` and `rows` data rows; a file
    that grew from `grown_from` keeps its start, and so its head digest."""
    assert source.path is not None
    if is_parquet(source) and grown_from is not None:
        head, tail = grown_from.head, _row_digests(source, rows, head=False)[1]
    elif is_parquet(source):
        head, tail = _row_digests(source, rows) if rows else ("", "")
    else:
        head, tail = _byte_digests(source.path, stat.st_size)
    return Watermark(rows, stat.st_size, stat.st_mtime_ns, head, tail)


def change_since(source: SourceConfig, mark: Watermark) -> Change:
    """Whether the file is as `mark` recorded it, grew by rows after it, or changed."""
    assert source.path is not None
    stat = source.path.stat()
    if stat.st_size == mark.size and stat.st_mtime_ns == mark.mtime_ns:
        return "current"
    if is_parquet(source):
        rows = _parquet_rows(source.path)
        if rows <= mark.rows or not mark.rows:
            return "changed"
        same = _row_digests(source, mark.rows) == (mark.head, mark.tail)
    else:
        if stat.st_size <= mark.size or not _ends_a_line(source.path, mark.size):
            return "changed"
        same = _byte_digests(source.path, mark.size) == (mark.head, mark.tail)
    return "grown" if same else "changed"


def write_new_rows(source: SourceConfig, mark: Watermark, out: Path, size: int) -> SourceConfig:
    """Writes the rows after `mark` to `out` (a file of the source's format, header included)
    and returns the source that reads them; a CSV file is read up to `size` bytes (its size
    when the new watermark was taken, so rows written meanwhile wait for the next append)."""
    assert source.path is not None
    if is_parquet(source):
        import pyarrow.parquet as pq

        pq.write_table(_parquet_rows_from(source, mark.rows), out)
        return _replaced_path(source, out, "parquet")
    with source.path.open("rb") as file:
        header = file.readline()
        file.seek(mark.size)
        out.write_bytes(header + file.read(size - mark.size))
    return _replaced_path(source, out, "csv")


def _replaced_path(source: SourceConfig, path: Path, fmt: Literal["csv", "parquet"]):
    from dataclasses import replace

    return replace(source, path=path, format=fmt)


def _ends_a_line(path: Path, size: int) -> bool:
    """Whether the first `size` bytes end with a newline (an appended row starts after it)."""
    with path.open("rb") as file:
        file.seek(size - 1)
        return file.read(1) == b"\n"


def _byte_digests(path: Path, size: int) -> tuple[str, str]:
    with path.open("rb") as file:
        head = file.read(min(EDGE_BYTES, size))
        file.seek(max(size - EDGE_BYTES, 0))
        tail = file.read(size - max(size - EDGE_BYTES, 0))
    return _digest(head), _digest(tail)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _used_columns(source: SourceConfig, names: list[str]) -> list[str]:
    """The file's columns that the mapping reads: the only ones a digest or a load needs."""
    used = {source.source_column(c) for c in CANONICAL_COLUMNS}
    if source.attributes.path is None:
        used |= set(source.attributes.columns)
    return [name for name in names if name in used]


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def _row_digests(source: SourceConfig, rows: int, head: bool = True) -> tuple[str, str]:
    """Digests of the first rows' values (unless not `head`) and of the last `rows`' times: a
    few pages of one cheap column, where reading every column of a large row group costs a
    pass over it. The two reads go side by side: pyarrow decodes pages without the GIL."""
    if not head:
        return "", _tail_digest(source, rows)
    from concurrent.futures import ThreadPoolExecutor  # here: `analyze` imports this module

    with ThreadPoolExecutor(max_workers=1) as pool:
        tail = pool.submit(_tail_digest, source, rows)
        return _head_digest(source, rows), tail.result()


def _head_digest(source: SourceConfig, rows: int) -> str:
    import pyarrow.parquet as pq

    assert source.path is not None
    file = pq.ParquetFile(source.path)
    columns = _used_columns(source, file.schema_arrow.names)
    first = next(file.iter_batches(batch_size=EDGE_ROWS, columns=columns)).slice(0, rows)
    return _values_digest(first)


def _tail_digest(source: SourceConfig, rows: int) -> str:
    times = [source.source_column(TIMESTAMP)]
    return _values_digest(_parquet_rows_from(source, max(rows - EDGE_ROWS, 0), rows, times))


def _values_digest(rows: Any) -> str:
    """A digest of an Arrow table's or batch's values; times as their integers, since Arrow
    turns nanosecond times into pandas' (a quarter second's import) to make Python values."""
    import pyarrow as pa

    values = []
    for column in rows.columns:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        plain = pa.types.is_timestamp(column.type) or pa.types.is_duration(column.type)
        values.append([v for c in chunks for v in (c.view(pa.int64()) if plain else c).to_pylist()])
    return _digest(repr(values).encode())


def _parquet_rows_from(
    source: SourceConfig, start: int, stop: int | None = None, columns: list[str] | None = None
) -> Any:
    """Rows `start:stop` of `columns` (default: the used ones), reading only the row groups
    that hold them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert source.path is not None
    file = pq.ParquetFile(source.path)
    columns = columns or _used_columns(source, file.schema_arrow.names)
    stop = file.metadata.num_rows if stop is None else stop
    groups, first, at = [], None, 0
    for index in range(file.metadata.num_row_groups):
        size = file.metadata.row_group(index).num_rows
        if at + size > start and at < stop:
            groups.append(index)
            first = at if first is None else first
        at += size
    if not groups:
        return file.schema_arrow.empty_table().select(columns)
    table = file.read_row_groups(groups, columns=columns)
    return pa.Table.slice(table, start - first, stop - start)
