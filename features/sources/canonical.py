"""Sources that are logs saved in canonical form (`EventLog.to_parquet`): read straight into
arrays, without validation or pandas, because they were validated when they were written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from journeyguard.features.config.model import SourceConfig, is_parquet_file
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.canonical import CANONICAL_MARK, read_canonical
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from journeyguard.features.eventlog.log import EventLog

T = TypeVar("T")


def read_if_canonical(source: SourceConfig, columns: list[str] | None = None) -> EventLog | None:
    """The source's log when it is a canonical Parquet file used as it is, else None.

    `columns` limits the optional columns read (default: the canonical ones and the
    configured attributes)."""
    if not _may_be_canonical(source):
        return None
    assert source.path is not None
    if columns is None:
        optional = [c for c in CANONICAL_COLUMNS if c not in REQUIRED_COLUMNS]
        columns = [*optional, *source.attributes.columns]
    return _parquet(source.path, lambda: read_canonical(source.path, columns=columns))


def is_canonical_source(source: SourceConfig) -> bool:
    """Whether `read_if_canonical` reads the source (it checks the file's schema only)."""
    if not _may_be_canonical(source):
        return False
    import pyarrow.parquet as pq

    assert source.path is not None
    schema = _parquet(source.path, lambda: pq.read_schema(source.path))
    return (schema.metadata or {}).get(CANONICAL_MARK) == b"1"


def _parquet(path: Path, read: Callable[[], T]) -> T:
    """`read()` of a Parquet file, a missing, fake or cut-short file a one-line `LoadError`."""
    import pyarrow as pa

    if not path.is_file():
        raise LoadError(f"{path}: file not found")
    try:
        return read()
    except (pa.ArrowException, OSError) as error:  # a file that is not Parquet, or cut short
        # Only now: read imports pandas, which a canonical file is read without.
        from journeyguard.features.sources.read import not_parquet

        raise not_parquet(path, error) from None


def _may_be_canonical(source: SourceConfig) -> bool:
    """A Parquet file whose columns the config neither renames, fills nor joins."""
    if source.path is None or not is_parquet_file(source.path, source.format):
        return False
    renamed = any(source.columns.get(c, c) != c for c in CANONICAL_COLUMNS)
    return not (renamed or source.defaults or source.attributes.path is not None)
