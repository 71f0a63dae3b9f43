"""Sources that are logs saved in canonical form (`EventLog.to_parquet`): read straight into
arrays, without validation or pandas, because they were validated when they were written."""

from __future__ import annotations

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.canonical import read_canonical
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS, REQUIRED_COLUMNS
from journeyguard.features.eventlog.log import EventLog


def read_if_canonical(source: SourceConfig, columns: list[str] | None = None) -> EventLog | None:
    """The source's log when it is a canonical Parquet file used as it is, else None.

    `columns` limits the optional columns read (default: the canonical ones and the
    configured attributes)."""
    if (
        source.path is None
        or source.format == "csv"
        or source.path.suffix.lower() not in {".parquet", ".pq"}
    ):
        return None
    renamed = any(source.columns.get(c, c) != c for c in CANONICAL_COLUMNS)
    if renamed or source.defaults or source.attributes.path is not None:
        return None
    if columns is None:
        optional = [c for c in CANONICAL_COLUMNS if c not in REQUIRED_COLUMNS]
        columns = [*optional, *source.attributes.columns]
    import pyarrow as pa

    if not source.path.is_file():
        raise LoadError(f"{source.path}: file not found")
    try:
        return read_canonical(source.path, columns=columns)
    except (pa.ArrowException, OSError) as error:  # a file that is not Parquet, or cut short
        # Only now: read imports pandas, which a canonical file is read without.
        from journeyguard.features.sources.read import not_parquet

        raise not_parquet(source.path, error) from None
