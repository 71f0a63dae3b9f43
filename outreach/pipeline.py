"""The daily pipeline's jobs and how one run of a job goes; `outreach.timetable` says when.

The jobs (each returns its counts, a JSON-ready dict):
- ingest: takes the source's new rows (`ingest_append`, the one place to point at the ingested
  log store's append);
- retrain: trains and registers a challenger of every task, promoted by the gate
  (`training.champion.train_and_register`); "retrain:<task>" retrains one task after a breach;
- score: writes the risk and lapsed lists of every task with a champion (what the service and
  console read);
- monitor: monitors every champion, and queues an early retrain of a task with a breach when
  the timetable allows one;
- outreach: one outreach cycle (`outreach.cycle.run_once`); skipped without an action.

`run_job` runs one: under a lease of its own in the outbox database (two schedulers never run
a job at once; the one finding it held skips), recorded in `job_runs` (start, end, outcome,
counts), with any error caught and recorded, so a failed job stops nothing else. It returns
what should follow: the retry of a failed run, the early retrains of a breach.

Nothing here reads the clock: `Pipeline.now` is the scheduler's clock (a simulated one in tests
and the demo), and each run's `as_of` is the time it starts.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from journeyguard.features.config.model import Config
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.log import load_log
from journeyguard.features.sources.store import ingest
from journeyguard.outreach import outbox, runs
from journeyguard.outreach.timetable import (
    JOBS,
    Due,
    cron_trigger,
    early_retrain_due,
    retrain_interval,
    retry_of,
)

LEASE_TTL = datetime.timedelta(hours=6)  # outlasts a retrain of a large log
RETRAIN_SEED = 0  # as `journeyguard train`'s default: same log, same model

logger = logging.getLogger(__name__)

Step = Callable[[Config, pd.Timestamp], dict[str, Any]]


def ingest_append(settings: Config, as_of: pd.Timestamp) -> dict[str, Any]:
    """The ingest job's work: a file source's rows after the last ingest's watermark into the
    ingested store (`sources.ingest`: an append, or a full ingest when the file changed
    otherwise); a database source has no store, so it is validated as a load (`load_log`)."""
    if settings.source.path is None:
        log = load_log(settings)
        return {"action": "loaded", "events": log.n_events, "journeys": log.n_journeys}
    result = ingest(settings).to_dict()
    return {key: result[key] for key in INGEST_COUNTS}


INGEST_COUNTS = ("action", "rows_read", "events", "journeys", "new_events", "quarantined")


def source_log(settings: Config, as_of: pd.Timestamp) -> EventLog:
    """The log the other jobs read: the configured source's (`load_log`, from the ingested
    store when it is current)."""
    return load_log(settings)


@dataclass(frozen=True)
class Pipeline:
    """What the jobs run with: the settings, the outbox database (runs and leases), the clock,
    and the steps that touch the outside world, given here so a simulated week can replace
    them (a log as of a day, a test receiver for the outreach cycle)."""

    settings: Config
    engine: Engine
    now: Callable[[], datetime.datetime]
    outreach: Step  # one outreach cycle as of a time
    ingest: Step = ingest_append
    read_log: Callable[[Config, pd.Timestamp], EventLog] = source_log
    owner: str = "journeyguard-schedule"  # names the lease holder, with a per-run suffix


@dataclass(frozen=True)
class Outcome:
    """How one run ended, and the runs it asks for (its retry, early retrains)."""

    run_id: int
    outcome: str
    counts: dict[str, Any]
    error: str | None
    follow_ups: list[Due]


def run_job(pipeline: Pipeline, due: Due) -> Outcome:
    """Runs `due` once (see the module docstring) and records it."""
    engine, now = pipeline.engine, pipeline.now
    started = now()
    as_of = pd.Timestamp(started)
    run_id = runs.start_run(
        engine, due.job, cause=due.cause, attempt=due.attempt, as_of=started, started_at=started
    )
    # Unique per run: a retry must not share the lease of a run of the same job still going.
    lease, owner = f"pipeline-{due.job}", f"{pipeline.owner}:{uuid.uuid4().hex[:12]}"
    counts: dict[str, Any] = {}
    error, follow_ups = None, []
    if not outbox.acquire_lease(engine, lease, owner, now=started, ttl=LEASE_TTL):
        outcome, counts = runs.SKIPPED, {"skipped": "another scheduler runs this job"}
    else:
        try:
            counts, follow_ups = _work(pipeline, due.job, as_of)
            outcome = runs.SKIPPED if counts.get("skipped") else runs.OK
        except Exception as failure:  # any failure is recorded and retried, never spreads
            logger.exception("job %s failed", due.job)
            outcome, error = runs.FAILED, f"{type(failure).__name__}: {failure}"
        finally:
            outbox.release_lease(engine, lease, owner)
    ended = now()
    runs.end_run(engine, run_id, ended_at=ended, outcome=outcome, counts=counts, error=error)
    if outcome == runs.FAILED:
        schedule = pipeline.settings.schedule
        retry = retry_of(due, ended, schedule.retries, schedule.retry_backoff)
        follow_ups = [retry] if retry is not None else []
    return Outcome(run_id, outcome, counts, error, follow_ups)


def _work(pipeline: Pipeline, job: str, as_of: pd.Timestamp) -> tuple[dict[str, Any], list[Due]]:
    """The job's work: its counts and the runs it asks for."""
    settings = pipeline.settings
    if job == "ingest":
        return pipeline.ingest(settings, as_of), []
    if job == "outreach":
        if not settings.outreach.actions:  # a pipeline without outreach is no failure
            return {"skipped": f"no [outreach.actions] in {settings.path}"}, []
        return pipeline.outreach(settings, as_of), []
    if job == "retrain" or job.startswith("retrain:"):
        tasks = list(settings.tasks) if job == "retrain" else [job.split(":", 1)[1]]
        return retrain(settings, tasks, pipeline.read_log(settings, as_of)), []
    if job == "score":
        return score(settings, pipeline.read_log(settings, as_of), as_of), []
    if job == "monitor":
        counts = monitor(settings, pipeline.read_log(settings, as_of), as_of)
        return counts, early_retrains(pipeline, counts, as_of.to_pydatetime())
    raise ValueError(f"unknown job {job!r}; jobs: {list(JOBS)}")


def retrain(settings: Config, tasks: list[str], log: EventLog) -> dict[str, Any]:
    """Trains a challenger of each task on `log`; the gate promotes it or not."""
    from journeyguard.training.champion import train_and_register

    counts = {}
    for task in tasks:
        result = train_and_register(settings, task, None, seed=RETRAIN_SEED, log=log)
        counts[task] = {
            "version": result["version"],
            "promoted": result["promoted"],
            "rule": result["rule"],
            "roc_auc": result["metrics"].get("roc_auc"),
        }
    return counts


def champion_tasks(settings: Config) -> tuple[list[str], list[str]]:
    """The tasks with a champion, and those without one yet (nothing to score or monitor)."""
    from journeyguard.training import registry

    uri = registry.tracking_uri()
    having = [t for t in settings.tasks if registry.champion_version(t, uri=uri) is not None]
    return having, [t for t in settings.tasks if t not in having]


def score(settings: Config, log: EventLog, as_of: pd.Timestamp) -> dict[str, Any]:
    """Writes each task's risk and lapsed lists as of `as_of`; counts their rows."""
    from journeyguard.training.risk_lists import write_risk_lists

    tasks, waiting = champion_tasks(settings)
    counts: dict[str, Any] = {"no_champion": waiting}
    for task in tasks:
        risks, lapsed = write_risk_lists(settings, task, as_of, log)
        version = int(risks["model_version"].iloc[0]) if len(risks) else None
        counts[task] = {"scored": len(risks), "lapsed": len(lapsed), "model_version": version}
    return counts


def monitor(settings: Config, log: EventLog, as_of: pd.Timestamp) -> dict[str, Any]:
    """Monitors each champion as of `as_of` (the result files the service's gauges read)."""
    from journeyguard.training.champion import monitor_champion

    tasks, waiting = champion_tasks(settings)
    counts: dict[str, Any] = {"no_champion": waiting}
    for task in tasks:
        result = monitor_champion(settings, task, as_of, log=log)
        counts[task] = {
            "model_version": result["model_version"],
            "breach": bool(result["breach"]),
            "score_psi": result["score_psi"],
            "max_feature_psi": result["max_feature_psi"],
        }
    return counts


def early_retrains(pipeline: Pipeline, counts: dict[str, Any], now: datetime.datetime) -> list[Due]:
    """The early retrains a monitor run's breaches call for (`timetable.early_retrain_due`)."""
    if not pipeline.settings.schedule.early_retrain:
        return []
    interval = retrain_interval(cron_trigger(pipeline.settings.schedule.retrain), now)
    due = []
    for task, result in counts.items():
        breach = isinstance(result, dict) and bool(result.get("breach"))
        if breach and early_retrain_due(
            breach, runs.last_early_retrain(pipeline.engine, task), now, interval
        ):
            due.append(Due(now, JOBS.index("retrain"), 1, runs.retrain_job(task), "breach"))
    counts["early_retrain"] = [d.job.split(":", 1)[1] for d in due]
    return due
