"""The output folder: every path the stages write under it and read back, named once.

The stages hand results to each other through these files (the ingested log store and its
quarantine,
analysis, datasets, risk lists, monitor results, the outbox, the outreach write-back), so one
class owns the layout and every package asks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPORT = "report.html"  # an analysis folder's page, beside analysis.json and variants.csv


@dataclass(frozen=True)
class Workspace:
    """The paths under `root`, the configured `[output] dir`."""

    root: Path

    @property
    def quarantine(self) -> Path:
        """Rows the source's validation rejected, with their reasons (CSV)."""
        return self.root / "quarantine.csv"

    @property
    def store(self) -> Path:
        """The ingested log store: the file source validated once, canonical (`sources.store`)."""
        return self.root / "store"

    @property
    def daily_export(self) -> Path:
        """The demo week's daily CSV export of the simulated log (`outreach.daily_export`)."""
        return self.root / "export" / "events.csv"

    @property
    def quarantine_table(self) -> Path:
        """The Spark engine's rejected rows with their reasons (a Parquet folder)."""
        return self.root / "quarantine"

    @property
    def outreach_events(self) -> Path:
        """Outreach contact decisions as events, joined to the source's log (`load_log`)."""
        return self.root / "outreach_events.parquet"

    @property
    def outbox(self) -> Path:
        """The SQLite outbox used when `[outreach] database` is not set."""
        return self.root / "outreach.db"

    @property
    def kpis(self) -> Path:
        """The folder of kpis.json and kpis.html."""
        return self.root / "kpis"

    @property
    def features(self) -> Path:
        """The demo's features of every journey at the log's last event."""
        return self.root / "features.parquet"

    @property
    def serving_metrics(self) -> Path:
        """Prometheus' multiprocess folder of the service's workers."""
        return self.root / "serving-metrics"

    @property
    def console_sessions(self) -> Path:
        """The console's session generation: logging out moves it on (serving.sessions)."""
        return self.root / "console-session-generation"

    def analysis(self, task: str) -> Path:
        """The folder of a task's analysis.json, variants.csv and report.html."""
        return self.root / "analysis" / task

    def report(self, task: str) -> Path:
        """A task's journey report, which the console shows."""
        return self.analysis(task) / REPORT

    def dataset(self, task: str) -> Path:
        """A task's labelled snapshots (the demo's `journeyguard dataset`)."""
        return self.root / f"dataset-{task}.parquet"

    def risk_list(self, task: str) -> Path:
        """A task's scored list, which the service's /risk_list and the console read."""
        return self.root / f"risk-{task}.parquet"

    def lapsed_list(self, task: str) -> Path:
        """A task's lapsed customers (active once, quiet since), for win-back."""
        return self.root / f"lapsed-{task}.parquet"

    def monitor_result(self, task: str) -> Path:
        """The last `journeyguard monitor` result of a task's champion."""
        return self.root / f"monitor-{task}.json"
