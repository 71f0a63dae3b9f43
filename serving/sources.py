"""What the service reads besides requests: the configured event log and the scored risk lists.

Both are read on first use and again when their file changes (or, for a database source, when
`refresh_every` has passed), so a new day's log or risk list needs no restart. A log that cannot
be read again (a file emptied, cut short or removed mid-write) leaves the last good one in
service, and `problem` says why until a read succeeds (`/readyz` shows it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
import pandas as pd

from journeyguard.features.config.model import Config
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.sources.log import load_log

T = TypeVar("T")


_MISSING = -1.0  # the stamp of a file that could not be looked at


class SourceUnreadable(RuntimeError):
    """The source could not be read and no earlier read succeeded: nothing to serve."""


class Cached(Generic[T]):
    """A value loaded by `load`, reloaded when `path`'s modification time changes or, without
    a path, once `refresh_every` seconds have passed. A reload that fails keeps the value it
    would have replaced, and `problem` says why (None after a good read)."""

    def __init__(self, load: Callable[[], T], path: Path | None, refresh_every: float) -> None:
        self._load, self._path, self._every = load, path, refresh_every
        self._value: T | None = None
        self._stamp: float | None = None
        self._lock = threading.Lock()
        self.problem: str | None = None

    def get(self) -> T:
        try:
            stamp = self._path.stat().st_mtime if self._path is not None else None
            missing = None
        except OSError as error:  # removed or renamed mid-rotation: read when it is back
            stamp, missing = _MISSING, f"{self._path}: cannot be read ({error.strerror or error})"
        with self._lock:
            if missing is not None:
                self._stamp, self.problem = _MISSING, missing
            elif self._value is None or (
                stamp != self._stamp
                if self._path is not None
                else time.monotonic() - (self._stamp or 0.0) > self._every
            ):
                self._reload(stamp)
            if self._value is None:
                raise SourceUnreadable(self.problem or "not read yet")
            return self._value

    def _reload(self, stamp: float | None) -> None:
        # Stamped even when it fails: the same broken file is not read again on every request.
        self._stamp = stamp if self._path is not None else time.monotonic()
        try:
            self._value = self._load()
        except (ValueError, OSError) as error:  # LoadError included; pyarrow's are either
            self.problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        else:
            self.problem = None


class CustomerEvents:
    """The configured event log, to look customers up by id."""

    def __init__(self, settings: Config, refresh_every: float) -> None:
        self._log = Cached(lambda: load_log(settings), settings.source.path, refresh_every)
        self._every = refresh_every
        self._stop = threading.Event()  # replaced by `watch`'s

    def watch(self) -> None:
        """Reads the log now, and again whenever it changes, in a background thread: every
        worker starts with a log to fall back on, and knows (`problem`, shown on /readyz)
        when the source stops reading, before a request asks for it."""
        from journeyguard.serving.periodic import every

        self._stop = every(self._every, self._refresh, "source-watch")

    def stop(self) -> None:
        self._stop.set()

    def _refresh(self) -> None:
        with contextlib.suppress(SourceUnreadable):  # `problem` says why
            self._log.get()

    def log(self) -> EventLog:
        """The whole log, as last read well; `SourceUnreadable` when no read ever was."""
        return self._log.get()

    @property
    def problem(self) -> str | None:
        """Why the source's last read failed (the last good log is still served), or None."""
        return self._log.problem

    def snapshot(self, customer_id: str, as_of_ns: int) -> Snapshots | None:
        """The customer's journey at `as_of_ns`, or None when the log does not know them."""
        log = self.log()
        position = int(np.searchsorted(log.journey_ids, customer_id))
        if position >= log.n_journeys or log.journey_ids[position] != customer_id:
            return None
        keep = np.zeros(log.n_journeys, dtype=bool)
        keep[position] = True
        journey = log.select_journeys(keep)
        return Snapshots(journey, np.zeros(1, dtype=np.int64), np.array([as_of_ns]))


class RiskLists:
    """The latest scored list of each task, as `journeyguard score` wrote it."""

    def __init__(self, settings: Config) -> None:
        self._paths = {task: settings.workspace.risk_list(task) for task in settings.tasks}
        self._lists = {
            task: Cached(lambda path=path: pd.read_parquet(path), path, 0.0)
            for task, path in self._paths.items()
        }

    def path(self, task: str) -> Path:
        return self._paths[task]

    def top(
        self, task: str, limit: int, min_risk: float, sort: str = "risk"
    ) -> pd.DataFrame | None:
        """The first `limit` rows with risk >= min_risk by `sort` ("risk", or "value_at_risk"
        with unknown values last), highest first; None when no list was written."""
        if not self._paths[task].exists():
            return None
        table = self._lists[task].get()
        return ranked(table[table["risk"] >= min_risk], sort).head(limit)


def ranked(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """A risk list's rows by the column `by`, highest first, missing values (a list scored
    without purchase values) last, ties by customer id: the order of /risk_list and the
    console."""
    key = table[by] if by in table else pd.Series(np.nan, index=table.index)
    ordered = table.assign(_key=key.astype(float).fillna(-np.inf))
    ordered = ordered.sort_values(["_key", "customer_id"], ascending=[False, True], kind="stable")
    return ordered.drop(columns="_key").reset_index(drop=True)
