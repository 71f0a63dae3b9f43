"""The pipeline on a clock: APScheduler 3 for the real one (`journeyguard schedule`), a queue
for a simulated one (the demo's week, the tests' fortnight). Both run the same `run_job` and
queue the same follow-ups (retries, early retrains), in the order `outreach.timetable` gives.

The real scheduler keeps its jobs in a `SQLAlchemyJobStore` on the outbox database, as the
outreach schedule does: one job per cron ("pipeline-<job>"), and a one-off job for each retry
or early retrain, added when the run asking for it ends. It takes over the outreach cycle: the
job `journeyguard outreach schedule` left in the store is removed when it starts. Jobs run in
the scheduler's thread pool, so a long retrain delays no other job; each job's lease keeps two
schedulers from running it at once.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_SCHEDULER_STARTED, JobExecutionEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.outreach.cycle import run_once, utc_now
from journeyguard.outreach.outbox import open_outbox, outbox_url
from journeyguard.outreach.pipeline import Outcome, Pipeline, run_job
from journeyguard.outreach.runs import create_runs_table
from journeyguard.outreach.scheduler import JOB_ID as OUTREACH_ONLY_JOB
from journeyguard.outreach.timetable import JOBS, Due, Queue, scheduled_runs, triggers

JOB_PREFIX = "pipeline-"


class SteppedClock:
    """A clock that shows what it is set to: the simulated scheduler sets it to each run's
    time."""

    def __init__(self, start: datetime.datetime) -> None:
        self.time = start

    def __call__(self) -> datetime.datetime:
        return self.time


def run_simulated(
    pipeline: Pipeline,
    clock: SteppedClock,
    end: datetime.datetime,
    on_run: Callable[[Due, Outcome], None] = lambda due, outcome: None,
) -> list[tuple[Due, Outcome]]:
    """Runs every job due from the clock's time until `end`, in order, setting the clock to
    each run's time, with the retries and early retrains the runs ask for; returns them all
    (and tells `on_run` of each as it ends)."""
    queue = Queue(scheduled_runs(triggers(pipeline.settings), clock.time, end))
    done = []
    while (due := queue.pop_until(end)) is not None:
        clock.time = max(clock.time, due.at)
        outcome = run_job(pipeline, due)
        for follow_up in outcome.follow_ups:
            queue.push(follow_up)
        on_run(due, outcome)
        done.append((due, outcome))
    return done


def production_pipeline(
    settings: Config,
    now: Callable[[], datetime.datetime] = utc_now,
    environ: Mapping[str, str] = os.environ,
) -> Pipeline:
    """The pipeline as `journeyguard schedule` runs it: the real clock, the configured
    source, the configured webhook."""
    engine = open_outbox(outbox_url(settings))
    create_runs_table(engine)

    def outreach(config: Config, as_of: pd.Timestamp) -> dict[str, Any]:
        return run_once(config, as_of=as_of, now=now, environ=environ)

    return Pipeline(settings, engine, now, outreach, owner=f"{socket.gethostname()}:{os.getpid()}")


def run_scheduled(
    config_path: str,
    job: str,
    attempt: int = 1,
    cause: str = "schedule",
    *,
    now: Callable[[], datetime.datetime] = utc_now,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """The scheduled job: reads the config (edits apply without a restart), runs `job` now
    and returns its outcome with the follow-ups for the listener to schedule.

    Module level with plain arguments, so the job store can name and pickle it; `now` and
    `environ` are for tests.
    """
    settings = load_config(config_path)
    pipeline = production_pipeline(settings, now, environ)
    try:
        due = Due(now(), _rank(job), attempt, job, cause)
        outcome = run_job(pipeline, due)
    finally:
        pipeline.engine.dispose()
    return {
        "job": job,
        "outcome": outcome.outcome,
        "counts": outcome.counts,
        "error": outcome.error,
        "follow_ups": [(d.at, d.attempt, d.job, d.cause) for d in outcome.follow_ups],
    }


def _rank(job: str) -> int:
    return JOBS.index(job.split(":", 1)[0])


def build_pipeline_scheduler(settings: Config, config_path: str) -> BlockingScheduler:
    """A scheduler (not started) with a job per cron of `[schedule]`, stored on the outbox
    database, which schedules each run's follow-ups when it ends."""
    engine = open_outbox(outbox_url(settings))
    create_runs_table(engine)
    store = SQLAlchemyJobStore(engine=engine)
    scheduler = BlockingScheduler(timezone="UTC", jobstores={"default": store})
    grace = max(1, int(settings.schedule.misfire_grace.total_seconds()))
    for job, trigger in triggers(settings).items():
        scheduler.add_job(
            run_scheduled,
            trigger,
            args=[str(config_path), job],
            id=f"{JOB_PREFIX}{job}",
            name=job,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=grace,
        )

    def follow_up(event: JobExecutionEvent) -> None:
        if event.job_id.startswith(JOB_PREFIX) and isinstance(event.retval, dict):
            schedule_follow_ups(scheduler, event.retval, str(config_path), grace)

    def retire_outreach_only_job(event: object) -> None:
        # `journeyguard outreach schedule`'s job, left in the same store, would run the cycle a
        # second time each day: this scheduler's outreach job replaces it.
        with contextlib.suppress(JobLookupError):
            scheduler.remove_job(OUTREACH_ONLY_JOB)

    scheduler.add_listener(follow_up, EVENT_JOB_EXECUTED)
    scheduler.add_listener(retire_outreach_only_job, EVENT_SCHEDULER_STARTED)
    return scheduler


def schedule_follow_ups(
    scheduler: BaseScheduler, result: dict[str, Any], config_path: str, grace: int
) -> None:
    """A one-off job for each retry or early retrain a run asked for."""
    for at, attempt, job, cause in result.get("follow_ups", []):
        scheduler.add_job(
            run_scheduled,
            "date",
            run_date=at,
            args=[config_path, job, attempt, cause],
            id=f"{JOB_PREFIX}{job}-{cause}-{attempt}",
            name=f"{job} ({cause}, attempt {attempt})",
            replace_existing=True,
            misfire_grace_time=grace,
        )


def next_runs(settings: Config, now: datetime.datetime) -> dict[str, datetime.datetime]:
    """When each job runs next after `now`."""
    return {job: t.get_next_fire_time(None, now) for job, t in triggers(settings).items()}
