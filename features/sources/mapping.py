"""Which source column holds each canonical column, checked before a row is read.

Pandas-free, so a typed source's clean load (`sources.typed`) needs none.
"""

from __future__ import annotations

import difflib

from journeyguard.features.config.model import SourceConfig
from journeyguard.features.errors import LoadError
from journeyguard.features.eventlog.columns import CANONICAL_COLUMNS, REQUIRED_COLUMNS


def column_mapping(source: SourceConfig, available: list[str]) -> dict[str, str]:
    """canonical name -> source column, for every canonical column the source provides."""
    mapping: dict[str, str] = {}
    for canonical in CANONICAL_COLUMNS:
        column = source.source_column(canonical)
        if column is None:
            continue
        if column in available:
            mapping[canonical] = column
        elif canonical in source.columns:
            role = f"mapped to {canonical} in [source.columns]"
            raise LoadError(missing_column_message(source, column, role, available))
        elif canonical in REQUIRED_COLUMNS:
            role = f"needed as {canonical}: map the source's column in [source.columns]"
            raise LoadError(missing_column_message(source, column, role, available))
    if source.attributes.path is None:
        for attribute in source.attributes.columns:
            if attribute not in available:
                role = "listed in [source.attributes] columns"
                raise LoadError(missing_column_message(source, attribute, role, available))
            mapping[attribute] = attribute
    return mapping


def missing_column_message(
    source: SourceConfig, column: str, role: str, available: list[str]
) -> str:
    close = difflib.get_close_matches(column, available, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"{source.display_name}: column {column!r} not found{hint} ({role}); "
        f"available columns: {available}"
    )


def require_unique(source: str, names: list[str], read: list[str]) -> None:
    """`LoadError` when a column to be read is named twice in the header: which one is meant
    cannot be told. Columns not read may repeat (the help desk log has two `Variant`)."""
    for name in dict.fromkeys(read):
        if names.count(name) > 1:
            positions = ", ".join(str(i + 1) for i, n in enumerate(names) if n == name)
            raise LoadError(
                f"{source}: column {name!r} appears {names.count(name)} times in the header "
                f"(columns {positions}); expected each column that is read once"
            )
