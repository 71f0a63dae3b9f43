"""The record of the pipeline's scheduled runs: one row per run of a job (start, end, outcome,
counts), in the outbox database beside the outbox, which the console and `/metrics` read.

A table of its own (`job_runs`, its own metadata): the outbox's tables and their SQL stay as
they are. A run is written twice: when it starts (outcome "running", so a run that never ends
shows as such) and when it ends. Times are the pipeline clock's, aware UTC (`UtcDateTime`).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import pandas as pd
from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
    update,
)

from journeyguard.outreach.outbox import UtcDateTime

RUNNING, OK, FAILED, SKIPPED = "running", "ok", "failed", "skipped"

metadata = MetaData()

job_runs = Table(
    "job_runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("job", String(100), nullable=False),
    Column("cause", String(20), nullable=False),  # schedule, retry, breach, manual
    Column("attempt", Integer, nullable=False),  # 1 for the first, 2 for its first retry...
    Column("as_of", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("outcome", String(20), nullable=False),
    Column("counts", Text, nullable=False),  # JSON object
    Column("error", Text),
    Index("ix_job_runs_job_started", "job", "started_at"),
)


def create_runs_table(engine: Engine) -> None:
    """Creates `job_runs` if absent (on the outbox's engine, which serialises writers)."""
    with engine.begin() as connection:
        metadata.create_all(connection)


def has_runs_table(engine: Engine) -> bool:
    return inspect(engine).has_table(job_runs.name)


def start_run(
    engine: Engine,
    job: str,
    *,
    cause: str,
    attempt: int,
    as_of: datetime.datetime,
    started_at: datetime.datetime,
) -> int:
    """Records a run as started; returns its id for `end_run`."""
    row = {
        "job": job,
        "cause": cause,
        "attempt": attempt,
        "as_of": as_of,
        "started_at": started_at,
        "outcome": RUNNING,
        "counts": "{}",
    }
    with engine.begin() as connection:
        return int(connection.execute(insert(job_runs).values(row)).inserted_primary_key[0])


def end_run(
    engine: Engine,
    run_id: int,
    *,
    ended_at: datetime.datetime,
    outcome: str,
    counts: dict[str, Any],
    error: str | None = None,
) -> None:
    values = {
        "ended_at": ended_at,
        "outcome": outcome,
        "counts": json.dumps(counts, default=str, sort_keys=True),
        "error": error,
    }
    with engine.begin() as connection:
        connection.execute(update(job_runs).where(job_runs.c.run_id == run_id).values(values))


def runs_frame(engine: Engine, job: str | None = None) -> pd.DataFrame:
    """Every recorded run (of `job`, or of all), in the order they started; counts parsed."""
    query = select(job_runs).order_by(job_runs.c.started_at, job_runs.c.run_id)
    if job is not None:
        query = query.where(job_runs.c.job == job)
    with engine.connect() as connection:
        rows = [row._asdict() for row in connection.execute(query)]
    frame = pd.DataFrame(rows, columns=[c.name for c in job_runs.columns])
    frame["counts"] = [json.loads(text) for text in frame["counts"]]
    return frame


def last_runs(engine: Engine) -> dict[str, dict[str, Any]]:
    """The latest run of each job (by start), as plain dicts keyed by job."""
    latest = (
        select(job_runs.c.job, func.max(job_runs.c.run_id).label("run_id"))
        .group_by(job_runs.c.job)
        .subquery()
    )
    query = select(job_runs).join(latest, job_runs.c.run_id == latest.c.run_id)
    with engine.connect() as connection:
        rows = [row._asdict() for row in connection.execute(query)]
    return {row["job"]: row | {"counts": json.loads(row["counts"])} for row in rows}


def last_early_retrain(engine: Engine, task: str) -> datetime.datetime | None:
    """When the latest retrain caused by a breach of `task` started (None: never)."""
    query = select(func.max(job_runs.c.started_at)).where(
        job_runs.c.job == retrain_job(task), job_runs.c.cause == "breach"
    )
    with engine.connect() as connection:
        value = connection.execute(query).scalar()
    # func.max loses the column's type on SQLite: the text comes back as it was stored.
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return None if value is None else value.replace(tzinfo=datetime.UTC)


def retrain_job(task: str) -> str:
    """The job name of one task's early retrain ("retrain:<task>"); the weekly one is
    "retrain" and covers every task."""
    return f"retrain:{task}"
