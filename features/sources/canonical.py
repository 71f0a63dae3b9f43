"""Sources that are logs saved in canonical form (`EventLog.to_parquet`): read straight into
arrays, without validation or pandas, because they were validated when they were written."""

from __future__ import annotations

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.eventlog.canonical import CANONICAL_MARK, read_canonical
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from journeyguard.features.eventlog.log import EventLog


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
    return read_canonical(source.path, columns=columns)


def is_canonical_source(source: SourceConfig) -> bool:
    """Whether `read_if_canonical` reads the source (it checks the file's schema only)."""
    if not _may_be_canonical(source):
        return False
    import pyarrow.parquet as pq

    assert source.path is not None
    return (pq.read_schema(source.path).metadata or {}).get(CANONICAL_MARK) == b"1"


def _may_be_canonical(source: SourceConfig) -> bool:
    """A Parquet file whose columns the config neither renames, fills nor joins."""
    if (
        source.path is None
        or source.format == "csv"
        or source.path.suffix.lower() not in {".parquet", ".pq"}
    ):
        return False
    renamed = any(source.columns.get(c, c) != c for c in CANONICAL_COLUMNS)
    return not (renamed or source.defaults or source.attributes.path is not None)
