"""A warehouse's daily export of a log, for the demo's simulated week: a CSV file holding the
events up to a time, to which each day's events are appended, as a nightly export job adds
them. The pipeline's ingest job then appends the new rows to the ingested store, and every
later job of the day (scores, monitoring, the outreach cycle) reads the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.frames import log_to_frame
from journeyguard.features.eventlog.log import EventLog


@dataclass
class DailyExport:
    """The export of `log` at `path`, holding its events up to `until` (ns since the epoch)."""

    log: EventLog
    path: Path
    until: int = field(default=np.iinfo(np.int64).min)

    def export_until(self, moment: pd.Timestamp) -> int:
        """Appends the events after the last export and up to `moment`, in time order (the
        header first, for a new file); returns how many rows it wrote."""
        end = int(moment.value)
        day = self.log.select((self.log.times > self.until) & (self.log.times <= end))
        frame = log_to_frame(day).iloc[np.argsort(day.times, kind="stable")]
        first = not self.path.is_file()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(self.path, mode="w" if first else "a", header=first, index=False)
        self.until = max(self.until, end)
        return len(frame)
