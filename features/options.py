"""What every package's command line shares: the --config and --as-of options and their parsing."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ConfigOption = Annotated[Path, typer.Option("--config", "-c", help="The TOML configuration file.")]
PastOption = Annotated[
    str | None,
    typer.Option("--as-of", help="See the log as it stood then (ISO 8601; UTC if no offset)."),
]

EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine", help="Where to run: local or spark (default: the config's [engine] kind)."
    ),
]


def parse_as_of(text: str | None) -> pd.Timestamp | None:
    """An --as-of value: ISO 8601, UTC when it carries no offset."""
    return None if text is None else _timestamp(text)


def _timestamp(text: str) -> pd.Timestamp:
    import pandas as pd

    try:
        value = pd.Timestamp(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO 8601 time such as 2025-06-01, got {text!r}", param_hint="--as-of"
        ) from None
    return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")


# The ISO 8601 forms read without pandas: a date, then optionally a time to the minute, second
# or up to nine decimals, and Z or a +-HH:MM offset.
_ISO_MOMENT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"(?:Z|([+-])(\d{2}):(\d{2}))?"
)
_EPOCH_DAY = datetime.date(1970, 1, 1).toordinal()
_NANOSECOND_YEARS = range(1678, 2262)  # whole years that int64 nanoseconds hold


def parse_as_of_utc(text: str) -> np.datetime64:
    """An --as-of value as `parse_as_of` reads it, as a naive UTC numpy time in the unit pandas
    gives it: microseconds, nanoseconds when the text has more than six decimals. The usual
    ISO 8601 forms are read without pandas, whose import the features command otherwise
    needs for this alone; other text goes to `parse_as_of`."""
    import numpy as np

    parts = _ISO_MOMENT.fullmatch(text)
    if parts is None:
        return _timestamp(text).tz_localize(None).to_datetime64()
    year, month, day, hour, minute, second = (int(part or 0) for part in parts.groups()[:6])
    decimals, sign, offset_hours, offset_minutes = parts.groups()[6:]
    hours, minutes = int(offset_hours or 0), int(offset_minutes or 0)
    if hours > 23 or minutes > 59 or not _exists(year, month, day, hour, minute, second):
        return _timestamp(text).tz_localize(None).to_datetime64()  # pandas' answer, or error
    offset = (hours * 60 + minutes) * (-1 if sign == "-" else 1)
    days = datetime.date(year, month, day).toordinal() - _EPOCH_DAY
    seconds = (((days * 24 + hour) * 60 + minute - offset) * 60) + second
    nanoseconds = seconds * 10**9 + int((decimals or "").ljust(9, "0"))
    unit = "ns" if decimals is not None and len(decimals) > 6 else "us"
    return np.datetime64(nanoseconds, "ns").astype(f"datetime64[{unit}]")


def _exists(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bool:
    """A real day and time of day, in the years that int64 nanoseconds hold."""
    if year not in _NANOSECOND_YEARS:
        return False
    try:
        datetime.datetime(year, month, day, hour, minute, second)
    except ValueError:
        return False
    return True
