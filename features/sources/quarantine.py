"""The quarantine file: every row a load set aside, with its source row, a reason, a detail
and the raw values of the columns read."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

SOURCE_ROW = "source_row"
REASON = "reason"
DETAIL = "detail"
DUPLICATE = "duplicate row"


def write_quarantine(quarantine: Any, path: Path) -> None:
    """Writes the quarantined rows (a frame: source row, reason, detail, raw values) as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    quarantine.to_csv(path, index=False)


def write_empty_quarantine(columns: list[str], path: Path) -> None:
    """The quarantine of a load that set nothing aside: the header `write_quarantine` writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        csv.writer(file, lineterminator="\n").writerow([SOURCE_ROW, REASON, DETAIL, *columns])
