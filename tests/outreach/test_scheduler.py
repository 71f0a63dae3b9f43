"""The outreach schedule: the cron trigger from fixed clocks, the job as stored in the
SQLAlchemy job store (SQLite and PostgreSQL), and the job function running a real cycle."""

from __future__ import annotations

import datetime
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.util import ref_to_obj

from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.outreach.dispatch import SECRET_VARIABLE, URL_VARIABLE
from journeyguard.outreach.receiver import Receiver
from journeyguard.outreach.scheduler import JOB_ID, build_scheduler, run_cycle, trigger
from tests.outreach.conftest import SECRET, Clock
from tests.outreach.workspace import Workspace

UTC = datetime.UTC


def at(*parts: int, zone: datetime.tzinfo = UTC) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=zone)


def test_the_trigger_fires_at_the_configured_time_in_utc(untrained: Workspace, tmp_path) -> None:
    fire = trigger(load_config(untrained.config(tmp_path)))  # "0 6 * * *"
    assert fire.get_next_fire_time(None, at(2025, 3, 1, 5, 59)) == at(2025, 3, 1, 6, 0)
    assert fire.get_next_fire_time(None, at(2025, 3, 1, 6, 0, 1)) == at(2025, 3, 2, 6, 0)
    # A clock in another zone names the same moment: 06:30 in Paris is 05:30 UTC.
    paris = at(2025, 3, 1, 6, 30, zone=ZoneInfo("Europe/Paris"))
    assert fire.get_next_fire_time(None, paris) == at(2025, 3, 1, 6, 0)
    # Daylight saving time in Europe does not move a UTC schedule.
    assert fire.get_next_fire_time(None, at(2025, 3, 30, 7, 0)) == at(2025, 3, 31, 6, 0)


def test_a_weekday_counts_as_crontab_counts_it_sunday_zero(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[source]\npath = "e.csv"\n[outreach]\nschedule = "0 6 * * 0"\n')
    fire = trigger(load_config(config))
    # Thursday 2025-03-06: the next Sunday is the 9th (APScheduler 3's own crontab: Monday).
    assert fire.get_next_fire_time(None, at(2025, 3, 6, 12, 0)) == at(2025, 3, 9, 6, 0)


def test_a_schedule_that_is_not_cron_is_rejected_with_the_file_and_key(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[source]\npath = "e.csv"\n[outreach]\nschedule = "every morning"\n')
    settings = load_config(config)  # reading a config never imports APScheduler
    with pytest.raises(ConfigError, match=r"c\.toml: outreach: schedule: expected a cron"):
        trigger(settings)


def stored_jobs(url: str) -> list[Job]:
    """The jobs in the store at `url`, read by a store of our own."""
    store = SQLAlchemyJobStore(url=url)
    try:
        return store.get_all_jobs()
    finally:
        store.shutdown()


def start_paused(scheduler: BlockingScheduler, timeout: float = 10.0) -> threading.Thread:
    """Starts a BlockingScheduler in a thread, paused (it runs nothing), and returns once it
    has stored its job: `start` writes the pending jobs before it leaves the stopped state."""
    thread = threading.Thread(target=scheduler.start, kwargs={"paused": True}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while scheduler.state == STATE_STOPPED and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scheduler.state == STATE_PAUSED
    return thread


def test_the_job_is_stored_with_its_id_and_limits(
    untrained: Workspace, tmp_path: Path, outbox_url: str
) -> None:
    path = untrained.config(tmp_path, extra=f"database = '{outbox_url}'")
    settings = load_config(path)
    for _ in range(2):  # a second scheduler on the same store replaces the job
        scheduler = build_scheduler(settings, str(path))
        thread = start_paused(scheduler)
        try:
            jobs = stored_jobs(outbox_url)
        finally:
            scheduler.shutdown()
            thread.join(10)
        assert not thread.is_alive()
        (job,) = jobs
        assert (job.id, job.coalesce, job.max_instances) == (JOB_ID, True, 1)
        assert job.misfire_grace_time == 2 * 3600  # misfire_grace = "2h"
        assert job.args == (str(path),) and job.kwargs == {}
        assert ref_to_obj(job.func_ref) is run_cycle
        assert str(job.trigger.timezone) == "UTC"
        assert str(job.trigger) == str(trigger(settings))
        assert job.next_run_time == trigger(settings).get_next_fire_time(
            None, datetime.datetime.now(UTC)
        )


def test_the_job_runs_a_cycle_as_of_now(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    path = str(workspace.config(tmp_path))
    clock = Clock()
    with Receiver(SECRET) as receiver:
        environ = {URL_VARIABLE: receiver.url, SECRET_VARIABLE: SECRET}
        result = run_cycle(path, now=clock, environ=environ)
        again = run_cycle(path, now=clock, environ=environ)
    assert result["as_of"] == clock().isoformat()
    midnight = clock().replace(hour=0, minute=0, second=0)
    assert result["window_start"] == midnight.isoformat()
    assert result["delivered"] == result["enqueued"] == result["contact"] > 0
    assert len(receiver.received) == receiver.attempts == result["delivered"]
    assert (again["enqueued"], again["delivered"]) == (0, 0)
