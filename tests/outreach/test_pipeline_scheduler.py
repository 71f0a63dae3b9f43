"""The pipeline on APScheduler: the jobs as stored in the SQLAlchemy job store (SQLite and
PostgreSQL), a scheduled run recorded in `job_runs`, a failed one asking for its retry (added
as a one-off job), and a job another scheduler holds skipped."""

from __future__ import annotations

import datetime
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.util import ref_to_obj

from journeyguard.features.config.reader import load_config, parse_config
from journeyguard.outreach import runs
from journeyguard.outreach.outbox import acquire_lease, open_outbox
from journeyguard.outreach.pipeline import Pipeline, early_retrains, ingest_append, run_job
from journeyguard.outreach.pipeline_scheduler import (
    build_pipeline_scheduler,
    run_scheduled,
    schedule_follow_ups,
)
from journeyguard.outreach.runs import runs_frame
from journeyguard.outreach.scheduler import JOB_ID as OUTREACH_ONLY_JOB
from journeyguard.outreach.scheduler import build_scheduler
from journeyguard.outreach.timetable import Due, triggers
from tests.outreach.conftest import Clock
from tests.outreach.test_scheduler import start_paused, stored_jobs
from tests.outreach.workspace import Workspace

MINUTE = datetime.timedelta(minutes=1)
SCHEDULE = '[schedule]\nretry_backoff = "5m"\nmisfire_grace = "2h"\n'


def test_every_job_is_stored_with_its_cron_and_limits(
    untrained: Workspace, tmp_path: Path, outbox_url: str
) -> None:
    path = untrained.config(tmp_path, extra=f"database = '{outbox_url}'\n{SCHEDULE}")
    settings = load_config(path)
    outreach_only = build_scheduler(settings, str(path))  # `journeyguard outreach schedule`
    thread = start_paused(outreach_only)
    outreach_only.shutdown()
    thread.join(10)
    assert [job.id for job in stored_jobs(outbox_url)] == [OUTREACH_ONLY_JOB]
    scheduler = build_pipeline_scheduler(settings, str(path))
    thread = start_paused(scheduler)
    try:
        # The old job goes once the scheduler has told its listeners it started, just after
        # `start_paused` sees it paused.
        deadline = time.monotonic() + 10
        while OUTREACH_ONLY_JOB in (jobs := {job.id: job for job in stored_jobs(outbox_url)}):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        scheduler.shutdown()
        thread.join(10)
    expected = triggers(settings)
    assert set(jobs) == {f"pipeline-{job}" for job in expected}  # the outreach-only job retired
    for name, trigger in expected.items():
        job = jobs[f"pipeline-{name}"]
        assert ref_to_obj(job.func_ref) is run_scheduled
        assert job.args == (str(path), name)
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 7200)
        assert str(job.trigger) == str(trigger)


def test_a_run_is_recorded_and_a_failed_one_asks_for_its_retry(
    untrained: Workspace, tmp_path: Path
) -> None:
    clock = Clock()
    path = untrained.config(tmp_path, extra=SCHEDULE)
    result = run_scheduled(str(path), "ingest", now=clock)
    assert (result["outcome"], result["error"], result["follow_ups"]) == ("ok", None, [])
    assert result["counts"]["journeys"] == 3000

    broken = untrained.config(tmp_path / "broken", extra=SCHEDULE)
    broken.write_text(broken.read_text().replace(str(untrained.events), "/nowhere/events.csv"))
    failed = run_scheduled(str(broken), "ingest", now=clock)
    assert failed["outcome"] == "failed" and "/nowhere/events.csv" in failed["error"]
    retry_at = clock() + datetime.timedelta(minutes=5)
    assert failed["follow_ups"] == [(retry_at, 2, "ingest", "retry")]

    recorded = runs_frame(open_outbox(f"sqlite:///{tmp_path / 'broken' / 'outreach.db'}"))
    assert list(recorded[["job", "cause", "attempt", "outcome"]].itertuples(index=False)) == [
        ("ingest", "schedule", 1, "failed")
    ]
    assert (
        recorded["started_at"].iloc[0] == clock() and recorded["error"].iloc[0] == failed["error"]
    )

    scheduler = BackgroundScheduler(timezone="UTC")
    schedule_follow_ups(scheduler, failed, str(broken), grace=60)
    (job,) = scheduler.get_jobs()
    assert job.id == "pipeline-ingest-retry-2" and job.args == (str(broken), "ingest", 2, "retry")
    assert isinstance(job.trigger, DateTrigger) and job.trigger.run_date == retry_at


def test_a_job_another_scheduler_runs_is_skipped(untrained: Workspace, tmp_path: Path) -> None:
    clock = Clock()
    path = untrained.config(tmp_path, extra=SCHEDULE)
    engine = open_outbox(f"sqlite:///{tmp_path / 'outreach.db'}")
    held = acquire_lease(
        engine, "pipeline-ingest", "elsewhere", now=clock(), ttl=datetime.timedelta(hours=1)
    )
    assert held
    result = run_scheduled(str(path), "ingest", now=clock)
    assert result["outcome"] == "skipped" and result["follow_ups"] == []
    assert list(runs_frame(engine)["outcome"]) == ["skipped"]
    engine.dispose()


def test_a_failed_scheduled_run_leaves_its_retry_in_the_job_store(
    untrained: Workspace, tmp_path: Path
) -> None:
    path = untrained.config(tmp_path, extra=SCHEDULE)
    path.write_text(path.read_text().replace(str(untrained.events), "/nowhere/events.csv"))
    settings = load_config(path)
    scheduler = build_pipeline_scheduler(settings, str(path))
    url = f"sqlite:///{tmp_path / 'outreach.db'}"
    thread = threading.Thread(target=scheduler.start, daemon=True)
    thread.start()
    try:
        # Due at once: the real scheduler runs it in its pool and its listener adds the retry.
        scheduler.add_job(run_scheduled, args=[str(path), "ingest"], id="pipeline-ingest-now")
        deadline = time.monotonic() + 30
        while "pipeline-ingest-retry-2" not in {j.id for j in stored_jobs(url)}:
            assert time.monotonic() < deadline, "no retry was scheduled"
            time.sleep(0.1)
    finally:
        scheduler.shutdown()
        thread.join(10)
    retry = next(j for j in stored_jobs(url) if j.id == "pipeline-ingest-retry-2")
    assert retry.args == (str(path), "ingest", 2, "retry")
    (failed,) = runs_frame(open_outbox(url))[["outcome", "ended_at"]].itertuples(index=False)
    assert failed.outcome == "failed"
    assert retry.next_run_time == failed.ended_at + datetime.timedelta(minutes=5)


def test_a_breach_asks_for_an_early_retrain_unless_one_ran_within_the_interval(
    untrained: Workspace, tmp_path: Path
) -> None:
    settings = load_config(untrained.config(tmp_path, extra=SCHEDULE))
    engine = open_outbox(f"sqlite:///{tmp_path / 'outreach.db'}")
    runs.create_runs_table(engine)
    pipeline = Pipeline(settings, engine, Clock(), outreach=lambda config, as_of: {})
    monday = datetime.datetime(2025, 12, 15, 5, 30, tzinfo=datetime.UTC)
    counts = {"no_champion": [], "churn": {"breach": True}, "escalation": {"breach": False}}
    (due,) = early_retrains(pipeline, counts, monday)
    assert (due.at, due.job, due.cause, due.attempt) == (monday, "retrain:churn", "breach", 1)
    assert counts["early_retrain"] == ["churn"]  # what the monitor run records
    runs.start_run(
        engine, "retrain:churn", cause="breach", attempt=1, as_of=monday, started_at=monday
    )
    week = datetime.timedelta(days=7)
    assert early_retrains(pipeline, dict(counts), monday + week - MINUTE) == []
    assert [d.job for d in early_retrains(pipeline, dict(counts), monday + week)] == [
        "retrain:churn"
    ]
    off = load_config(untrained.config(tmp_path / "off", extra="[schedule]\nearly_retrain = false"))
    assert early_retrains(replace(pipeline, settings=off), dict(counts), monday + week) == []
    engine.dispose()


def test_a_retry_never_overlaps_a_run_of_its_job_still_going_in_the_same_process(
    untrained: Workspace, tmp_path: Path
) -> None:
    settings = load_config(untrained.config(tmp_path, extra=SCHEDULE))
    engine = open_outbox(f"sqlite:///{tmp_path / 'outreach.db'}")
    runs.create_runs_table(engine)
    clock = Clock()
    pipeline = Pipeline(settings, engine, clock, outreach=lambda config, as_of: {}, owner="me")
    # A long run of ingest holds its lease; a retry of ingest falls due meanwhile.
    hour = datetime.timedelta(hours=1)
    assert acquire_lease(engine, "pipeline-ingest", "me", now=clock(), ttl=hour)
    outcome = run_job(pipeline, Due(clock(), 0, 2, "ingest", "retry"))
    assert outcome.outcome == "skipped" and outcome.follow_ups == []
    engine.dispose()


def test_the_outreach_job_without_actions_is_skipped_not_failed(
    untrained: Workspace, tmp_path: Path
) -> None:
    settings = load_config(untrained.config(tmp_path, extra=SCHEDULE, actions=""))
    engine = open_outbox(f"sqlite:///{tmp_path / 'outreach.db'}")
    runs.create_runs_table(engine)
    clock = Clock()
    pipeline = Pipeline(settings, engine, clock, outreach=lambda config, as_of: 1 / 0)
    outcome = run_job(pipeline, Due(clock(), 4, 1, "outreach"))
    assert outcome.outcome == "skipped" and "no [outreach.actions]" in outcome.counts["skipped"]
    assert outcome.follow_ups == []  # nothing to retry
    engine.dispose()


def test_the_ingest_job_appends_the_rows_a_grown_source_gained(tmp_path: Path) -> None:
    source = tmp_path / "events.csv"
    header, first = "id,when,what", "a,2024-01-01T00:00Z,order"
    source.write_text(f"{header}\n{first}\n")
    raw = {
        "source": {"path": str(source), "columns": {"customer_id": "id", "timestamp": "when",
                                                     "event": "what"}},
        "output": {"dir": str(tmp_path / "out")},
    }  # fmt: skip
    settings = parse_config(raw, tmp_path / "c.toml")
    as_of = pd.Timestamp("2024-01-03", tz="UTC")
    assert ingest_append(settings, as_of)["action"] == "ingested"
    with source.open("a") as grown:
        grown.write("b,2024-01-02T00:00Z,order\nb,not a time,order\n")
    appended = ingest_append(settings, as_of)
    assert appended["action"] == "appended" and appended["rows_read"] == 2
    assert appended["new_events"] == 1 and appended["events"] == 2
    assert sum(appended["quarantined"].values()) == 1
    assert ingest_append(settings, as_of)["action"] == "current"
