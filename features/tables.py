"""Tables to files: Parquet, or CSV when the file's name ends in .csv."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def write_table(table: pd.DataFrame, out: Path) -> None:
    """Writes `table` to `out` (CSV by suffix, else Parquet), creating the folder if needed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        table.to_csv(out, index=False)
    else:
        import pandas as pd  # here: the command line imports this module, analyze needs no pandas

        # Dictionary encoding pays for text; tried on every float column (features, scores) it
        # costs a third of the write.
        text = [c for c in table.columns if not pd.api.types.is_float_dtype(table[c])]
        table.to_parquet(out, index=False, use_dictionary=text)
