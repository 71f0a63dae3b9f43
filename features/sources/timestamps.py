"""Parsing a source's timestamp column into UTC, with a reason for every row that cannot be.

Formats: ISO 8601 (the default; each value may carry its own offset), any strftime format, or
`unix_s` / `unix_ms`. Values without an offset are local times of `[source] timezone`; with no
timezone configured they are rejected, and a column with nothing but such values stops the load.
Times outside what int64 nanoseconds hold (1677-09-21 .. 2262-04-11) are rejected, one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.config.model import UNIX_FORMATS, SourceConfig
from journeyguard.features.errors import LoadError

MISSING = "missing timestamp"
UNPARSABLE = "unparsable timestamp"
NAIVE = "naive timestamp"
INVALID_LOCAL = "invalid local time"
OUT_OF_RANGE = "timestamp out of range"
_EARLIEST, _LATEST = pd.Timestamp.min.tz_localize("UTC"), pd.Timestamp.max.tz_localize("UTC")
_RANGE = f"{_EARLIEST.date()} .. {_LATEST.date()}, the range of nanosecond times"

# A trailing UTC offset after a time of day; a date alone ("2024-01-05") carries none.
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[Zz]|UTC|[+-]\d{2}(?::?\d{2})?)$"


@dataclass(frozen=True)
class ParsedTimestamps:
    times: pd.Series  # datetime64[ns, UTC]; NaT where `reason` is set
    reason: pd.Series  # object: None where the value parsed
    detail: pd.Series


def parse_timestamps(column: pd.Series, source: SourceConfig) -> ParsedTimestamps:
    """Parses one source column of timestamps as configured by `source`."""
    fmt = source.timestamp_format
    if pd.api.types.is_datetime64_any_dtype(column):
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            typed = _combine(_no_times(column, naive=True), column.dt.tz_convert("UTC"), source)
        else:
            typed = _combine(column, _no_times(column, naive=False), source)
        return _in_range(typed, column, column.name)
    if fmt in UNIX_FORMATS:
        return _from_unix(column, fmt)
    text = column.astype("string").str.strip().replace("", pd.NA)
    if fmt is None:
        has_offset = text.str.contains(_OFFSET, regex=True, na=False)
        aware = pd.to_datetime(text.where(has_offset), format="ISO8601", utc=True, errors="coerce")
        local = pd.to_datetime(text.where(~has_offset), format="ISO8601", errors="coerce")
        expected = "an ISO 8601 timestamp"
    elif "%z" in fmt or "%Z" in fmt:
        aware = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
        local, expected = _no_times(text, naive=True), f"in the format {fmt!r}"
    else:
        local = pd.to_datetime(text, format=fmt, errors="coerce")
        aware, expected = _no_times(text, naive=False), f"in the format {fmt!r}"
    result = _in_range(_combine(local, aware, source), text, column.name)
    unparsable = text.notna() & result.times.isna() & result.reason.isna()
    result.reason[unparsable] = UNPARSABLE
    result.detail[unparsable] = (
        f"column {column.name!r}: '" + text[unparsable] + f"' is not {expected}"
    )
    result.reason[text.isna()] = MISSING
    result.detail[text.isna()] = f"column {column.name!r} is empty"
    return result


def _no_times(like: pd.Series, *, naive: bool) -> pd.Series:
    """All-missing times shaped like `like`: naive, or UTC when naive is False."""
    return pd.Series(
        pd.NaT,
        index=like.index,
        name=like.name,
        dtype="datetime64[ns]" if naive else "datetime64[ns, UTC]",
    )


def _from_unix(column: pd.Series, fmt: str) -> ParsedTimestamps:
    numbers = pd.to_numeric(column, errors="coerce").astype("float64")
    ns_per_unit = 1e9 if fmt == "unix_s" else 1e6
    beyond = np.isfinite(numbers) & (
        (numbers * ns_per_unit < _EARLIEST.value) | (numbers * ns_per_unit > _LATEST.value)
    )
    times = pd.to_datetime(
        numbers.where(~beyond), unit="s" if fmt == "unix_s" else "ms", utc=True, errors="coerce"
    )
    reason = pd.Series(None, index=column.index, dtype="object")
    detail = pd.Series(None, index=column.index, dtype="object")
    empty = column.isna() | (column.astype("string").str.strip() == "")
    bad = times.isna() & ~empty & ~beyond
    reason[bad] = UNPARSABLE
    detail[bad] = f"column {column.name!r}: '" + column[bad].astype(str) + f"' is not {fmt}"
    reason[beyond] = OUT_OF_RANGE
    detail[beyond] = (
        f"column {column.name!r}: '" + column[beyond].astype(str) + f"' is outside {_RANGE}"
    )
    reason[empty], detail[empty] = MISSING, f"column {column.name!r} is empty"
    return ParsedTimestamps(times.astype("datetime64[ns, UTC]"), reason, detail)


def _in_range(parsed: ParsedTimestamps, values: pd.Series, name: object) -> ParsedTimestamps:
    """Times as UTC nanoseconds; those beyond their range (pandas parses them at a coarser
    resolution) missing, with a reason naming the column and the value (only those `values`
    are formatted: formatting a whole column of times costs seconds)."""
    times = parsed.times
    beyond = times.notna() & ((times < _EARLIEST) | (times > _LATEST))
    reason, detail = parsed.reason.copy(), parsed.detail.copy()
    reason[beyond] = OUT_OF_RANGE
    detail[beyond] = f"column {name!r}: '" + values[beyond].astype(str) + f"' is outside {_RANGE}"
    return ParsedTimestamps(times.where(~beyond).astype("datetime64[ns, UTC]"), reason, detail)


def _combine(local: pd.Series, aware: pd.Series, source: SourceConfig) -> ParsedTimestamps:
    """UTC times from values that carried an offset (`aware`) and local ones (`local`, naive)."""
    reason = pd.Series(None, index=local.index, dtype="object")
    detail = pd.Series(None, index=local.index, dtype="object")
    naive = local.notna()
    if naive.any() and source.timezone is None:
        if aware.notna().sum() == 0:
            raise LoadError(
                f"{source.display_name}: column {local.name!r} holds naive timestamps (no UTC "
                f"offset), such as '{local[naive].iloc[0]}'; set [source] timezone (e.g. 'UTC' "
                "or 'Europe/Rome') or give the values offsets"
            )
        reason[naive] = NAIVE
        detail[naive] = f"column {local.name!r}: no UTC offset and no [source] timezone configured"
        return ParsedTimestamps(aware, reason, detail)
    localized = local.dt.tz_localize(source.timezone or "UTC", ambiguous="NaT", nonexistent="NaT")
    invalid = naive & localized.isna()
    reason[invalid] = INVALID_LOCAL
    detail[invalid] = (
        f"column {local.name!r}: does not exist or is ambiguous in {source.timezone} "
        "(a clock change)"
    )
    times = aware.fillna(localized.dt.tz_convert("UTC"))
    return ParsedTimestamps(times, reason, detail)
