"""The scheduled jobs' gauges of the service: the last run of each job of `journeyguard
schedule` (from the outbox database's `job_runs`), re-read in the background, with its age."""

from __future__ import annotations

import datetime
import math
import threading
from collections.abc import Callable

import bentoml
from sqlalchemy.exc import SQLAlchemyError

from journeyguard.features.config.model import Config
from journeyguard.serving.periodic import every

JOB_LAST_RUN = bentoml.metrics.Gauge(
    name="journeyguard_job_last_run_timestamp_seconds",
    documentation="When the last run of a scheduled job ended (Unix time; its start while it "
    "runs).",
    labelnames=["job"],
    multiprocess_mode="mostrecent",
)
JOB_AGE = bentoml.metrics.Gauge(
    name="journeyguard_job_last_run_age_seconds",
    documentation="Seconds from the end of a scheduled job's last run to the service's last "
    "check (every serving.reload_every).",
    labelnames=["job"],
    multiprocess_mode="mostrecent",
)
JOB_SUCCESS = bentoml.metrics.Gauge(
    name="journeyguard_job_last_run_success",
    documentation="1 when a scheduled job's last run ended well (ok or skipped), 0 when it "
    "failed, NaN while it runs.",
    labelnames=["job"],
    multiprocess_mode="mostrecent",
)


def gauge_values(
    last: dict[str, dict], now: datetime.datetime
) -> dict[str, tuple[float, float, float]]:
    """(timestamp, age, success) of each job's last run (`outreach.runs.last_runs`) at `now`."""
    values = {}
    for job, run in last.items():
        moment = run["ended_at"] or run["started_at"]
        success = {"ok": 1.0, "skipped": 1.0, "failed": 0.0}.get(run["outcome"], math.nan)
        values[job] = (moment.timestamp(), (now - moment).total_seconds(), success)
    return values


class JobGauges:
    """Sets the job gauges from the configured outbox database."""

    def __init__(self, settings: Config, now: Callable[[], datetime.datetime]) -> None:
        self.settings = settings
        self.now = now
        self._stop = threading.Event()  # replaced by `watch`'s

    def refresh(self) -> dict[str, tuple[float, float, float]]:
        """Reads the last runs and sets the gauges; returns what it set (none without runs)."""
        from journeyguard.outreach.outbox import open_outbox_to_read
        from journeyguard.outreach.runs import has_runs_table, last_runs

        # Opened for each read: an SQLite outbox replaced on disk (restored, recreated) would
        # leave a kept connection reading the old file for good.
        engine = None
        try:
            engine = open_outbox_to_read(self.settings)
            if engine is None or not has_runs_table(engine):
                return {}
            values = gauge_values(last_runs(engine), self.now())
        except (OSError, SQLAlchemyError):  # a database away for now: keep the values, retry
            return {}
        finally:
            if engine is not None:
                engine.dispose()
        for job, (stamp, age, success) in values.items():
            JOB_LAST_RUN.labels(job).set(stamp)
            JOB_AGE.labels(job).set(age)
            JOB_SUCCESS.labels(job).set(success)
        return values

    def watch(self, every_seconds: float) -> None:
        """Refreshes now and then every `every_seconds` in the background."""
        self._stop = every(every_seconds, self.refresh, "job-watch")

    def stop(self) -> None:
        self._stop.set()
