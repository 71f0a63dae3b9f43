"""What the console reads, cached: the enriched risk list of each task, the outbox's decisions
and one customer's page. Holds the service's own readers (event log, risk lists, champions), so
the console sees exactly what `/risk_list` and `/predict_customer` see.

Each cache is keyed by what it was built from (the risk list file's modification time, the log
object, the outbox's stamp): a new day's list, log or outreach cycle shows without a restart,
and a page view in between costs a filter and a slice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd

from journeyguard.serving.console import pages
from journeyguard.serving.console.errors import ConsoleError
from journeyguard.serving.responses import shown

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from journeyguard.features.config.model import Config
    from journeyguard.features.eventlog.log import EventLog
    from journeyguard.serving.champions import Champion
    from journeyguard.serving.sources import CustomerEvents, RiskLists


T = TypeVar("T")


class ConsoleData:
    """The console's view of the service's data sources."""

    def __init__(self, settings: Config, customers: CustomerEvents, risk_lists: RiskLists) -> None:
        self.settings = settings
        self._customers = customers
        self._risk_lists = risk_lists
        self._every = settings.serving.reload_every.total_seconds()
        self._lock = threading.Lock()
        self._tables: dict[str, tuple[tuple, pd.DataFrame]] = {}
        self._decisions: tuple[Any, pd.DataFrame] | None = None
        self._engine: Engine | None = None
        self._engine_identity: tuple[int, int] | None = None

    @property
    def tasks(self) -> list[str]:
        return list(self.settings.tasks)

    def log(self) -> EventLog:
        """The service's cached event log (reloaded when its file changes)."""
        return _or_unavailable(self._customers.log)

    def risk_table(self, task: str) -> pd.DataFrame | None:
        """The task's latest risk list with spend, outreach and joined reasons; None when
        `journeyguard score` has not written one."""
        path = self._risk_lists.path(task)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return None
        log, decisions = self.log(), self.decisions()
        key = (stamp, id(log), id(decisions))
        with self._lock:
            cached = self._tables.get(task)
            if cached is not None and cached[0] == key:
                return cached[1]
        table = self._risk_lists.top(task, np.iinfo(np.int64).max, 0.0)
        if table is None:
            return None
        as_of = pd.Timestamp(table["as_of"].max()).value if len(table) else log.last_time
        values = pages.customer_values(log, as_of)
        enriched = pages.enrich(table, values, pages.outreach_by_customer(decisions))
        with self._lock:
            self._tables[task] = (key, enriched)
        return enriched

    def outbox(self) -> Engine | None:
        """The outbox of the configured campaign, read only; None while none exists."""
        from journeyguard.outreach.outbox import open_outbox_to_read

        identity = self._outbox_identity()
        if self._engine is not None and identity != self._engine_identity:
            self._engine.dispose()  # the SQLite file was replaced or removed: not the same outbox
            self._engine = None
        if self._engine is None:
            self._engine = open_outbox_to_read(self.settings)
            self._engine_identity = identity
        return self._engine

    def _outbox_identity(self) -> tuple[int, int] | None:
        """Which SQLite outbox file is there now (device, inode); None without one, or for a
        server database."""
        if self.settings.outreach.database is not None:
            return None
        try:
            stat = self.settings.workspace.outbox.stat()
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino)

    def decisions(self) -> pd.DataFrame:
        """The configured campaign's decisions; re-read when the SQLite file changes, or every
        `reload_every` for a server database."""
        from journeyguard.outreach.outbox import decisions, decisions_frame

        engine = self.outbox()
        if engine is None:
            return pd.DataFrame(columns=[c.name for c in decisions.columns])
        if self.settings.outreach.database is None:
            stamp: Any = self.settings.workspace.outbox.stat().st_mtime_ns
        else:
            stamp = int(time.monotonic() // max(self._every, 1.0))
        cached = self._decisions
        if cached is None or cached[0] != stamp:
            cached = (stamp, decisions_frame(engine, self.settings.outreach.campaign))
            self._decisions = cached
        return cached[1]

    def job_runs(self) -> dict[str, dict[str, Any]]:
        """The last run of each scheduled job (`journeyguard schedule`); none without any."""
        from journeyguard.outreach.runs import has_runs_table, last_runs

        engine = self.outbox()
        return {} if engine is None or not has_runs_table(engine) else last_runs(engine)

    def messages(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's outreach messages, oldest first (none without an outbox)."""
        from journeyguard.outreach.outbox import customer_messages

        engine = self.outbox()
        return [] if engine is None else customer_messages(engine, customer_id)

    def as_of(self) -> int:
        """The moment the console scores at (ns): that of the latest risk lists, else the
        log's last event; the same moment as the list a user came from."""
        moments = []
        for task in self.tasks:
            table = self.risk_table(task)
            if table is not None and len(table):
                moments.append(pd.Timestamp(table["as_of"].max()).value)
        return max(moments) if moments else self.log().last_time

    def customer(self, customer_id: str, champions: Mapping[str, Champion]) -> dict[str, Any]:
        """Everything the customer page shows: the journey, the risk of every task now with
        reasons, its history over the journey's events, and the outreach decisions and
        messages. `ConsoleError(404)` for a customer the log does not know."""
        from journeyguard.features.population import eligibility
        from journeyguard.serving.predict import predict

        as_of = self.as_of()
        snapshot = _or_unavailable(lambda: self._customers.snapshot(customer_id, as_of))
        if snapshot is None:
            raise ConsoleError(404, f"no customer {shown(customer_id)} in the event log")
        journey = snapshot.log
        risks = (
            predict(snapshot, [customer_id], champions, self.settings.tasks)[0]["risks"]
            if champions
            else {}
        )
        times = pages.history_times(journey.times, as_of)
        past = type(snapshot)(journey, np.zeros(len(times), dtype=np.int64), times)
        history = {
            task: np.where(
                eligibility(past, self.settings.tasks[task]).eligible, c.model.predict(past), np.nan
            )
            for task, c in champions.items()
        }
        decisions = self.decisions()
        mine = decisions[decisions["customer_id"] == customer_id].sort_values("as_of")
        return {
            "customer_id": customer_id,
            "as_of": pd.Timestamp(as_of, tz="UTC").isoformat(),
            "events": pages.journey_events(journey),
            "value": float(pages.customer_values(journey, as_of).iloc[0]),
            "risks": risks,
            "history": pages.sparkline(times, history),
            "decisions": mine.to_dict("records"),
            "messages": self.messages(customer_id),
        }


def _or_unavailable(read: Callable[[], T]) -> T:
    """`read()`, or a 503 page when the event source was never read well (a source that
    fails later keeps its last good log, so this is the first read failing)."""
    from journeyguard.serving.sources import SourceUnreadable

    try:
        return read()
    except SourceUnreadable as error:
        raise ConsoleError(503, f"The event source cannot be read: {error}") from None
