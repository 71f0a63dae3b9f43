"""The record of scheduled runs (`job_runs`) on SQLite and PostgreSQL: a run written when it
starts and when it ends, the last run of each job, the last early retrain of a task."""

from __future__ import annotations

import datetime

from sqlalchemy import Engine

from journeyguard.outreach import runs

UTC = datetime.UTC
T0 = datetime.datetime(2025, 12, 14, 3, 0, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)


def record(engine: Engine, job: str, at: datetime.datetime, outcome: str, cause: str = "schedule"):
    run_id = runs.start_run(engine, job, cause=cause, attempt=1, as_of=at, started_at=at)
    if outcome != runs.RUNNING:
        runs.end_run(engine, run_id, ended_at=at + MINUTE, outcome=outcome, counts={"n": 1})
    return run_id


def test_runs_are_recorded_and_the_last_of_each_job_read_back(engine: Engine) -> None:
    runs.create_runs_table(engine)
    runs.create_runs_table(engine)  # idempotent: every scheduler start calls it
    assert runs.has_runs_table(engine)
    record(engine, "ingest", T0, runs.FAILED)
    record(engine, "ingest", T0 + 10 * MINUTE, runs.OK, cause="retry")
    record(engine, "score", T0 + 120 * MINUTE, runs.RUNNING)
    last = runs.last_runs(engine)
    assert set(last) == {"ingest", "score"}
    ingest = last["ingest"]
    assert (ingest["cause"], ingest["outcome"], ingest["counts"]) == ("retry", "ok", {"n": 1})
    assert ingest["started_at"] == T0 + 10 * MINUTE and ingest["ended_at"] == T0 + 11 * MINUTE
    assert last["score"]["outcome"] == "running" and last["score"]["ended_at"] is None
    frame = runs.runs_frame(engine, "ingest")
    assert list(frame["outcome"]) == ["failed", "ok"] and list(frame["attempt"]) == [1, 1]


def test_the_last_early_retrain_of_a_task_is_its_latest_breach_run(engine: Engine) -> None:
    runs.create_runs_table(engine)
    assert runs.last_early_retrain(engine, "churn") is None
    record(engine, "retrain", T0, runs.OK)  # the weekly one does not count
    assert runs.last_early_retrain(engine, "churn") is None
    record(engine, runs.retrain_job("churn"), T0 + MINUTE, runs.OK, cause="breach")
    record(engine, runs.retrain_job("churn"), T0 + 7 * MINUTE, runs.FAILED, cause="breach")
    record(engine, runs.retrain_job("escalation"), T0 + 9 * MINUTE, runs.OK, cause="breach")
    assert runs.last_early_retrain(engine, "churn") == T0 + 7 * MINUTE
