"""What every package's command line shares: the --config and --as-of options and their parsing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
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
    if text is None:
        return None
    import pandas as pd

    try:
        value = pd.Timestamp(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected an ISO 8601 time such as 2025-06-01, got {text!r}", param_hint="--as-of"
        ) from None
    return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
