"""The pipeline's pure decisions: crons in crontab's own weekday numbering, the order of runs,
retries with backoff, and the early retrain's once-per-interval rule."""

from __future__ import annotations

import datetime

import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.outreach.timetable import (
    Due,
    Queue,
    cron_trigger,
    crontab_weekdays,
    early_retrain_due,
    retrain_interval,
    retry_delay,
    retry_of,
    scheduled_runs,
    triggers,
)

UTC = datetime.UTC
SUNDAY = datetime.datetime(2025, 12, 14, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)


def at(day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2025, 12, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("5-7", "sun,fri,sat"),
        ("0-6/2", "sun,tue,thu,sat"),
        ("*/3", "sun,wed,sat"),
        ("sat,SUN", "sun,sat"),
        ("mon-wed,6", "mon,tue,wed,sat"),
    ],
)
def test_weekdays_are_numbered_as_crontab_numbers_them(field: str, days: str) -> None:
    assert crontab_weekdays(field) == days


@pytest.mark.parametrize("field", ["8", "fri-mon", "1-x", "*/two"])
def test_a_weekday_field_crontab_would_refuse_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="weekday"):
        crontab_weekdays(field)


def test_weekday_zero_is_sunday_not_apschedulers_monday() -> None:
    # APScheduler 3's from_crontab would fire "30 3 * * 0" on Monday the 15th.
    trigger = cron_trigger("30 3 * * 0")
    assert trigger.get_next_fire_time(None, at(14)) == at(14, 3, 30)
    assert trigger.get_next_fire_time(None, at(14, 4)) == at(21, 3, 30)


def test_a_days_runs_come_in_the_pipelines_order_and_weekly_retrain_only_on_sunday(
    tmp_path,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        '[source]\npath = "e.csv"\n[schedule]\nscore = "0 6 * * *"\nmonitor = "0 6 * * *"\n'
    )
    settings = load_config(config)  # outreach: [outreach] schedule, "0 6 * * *" by default
    runs = scheduled_runs(triggers(settings), at(13), at(15))  # Saturday and Sunday
    saturday = [(r.at, r.job) for r in runs if r.at < at(14)]
    assert saturday == [
        (at(13, 3), "ingest"), (at(13, 6), "score"), (at(13, 6), "monitor"),
        (at(13, 6), "outreach"),
    ]  # fmt: skip
    sunday = [r.job for r in runs if r.at >= at(14)]
    assert sunday == ["ingest", "retrain", "score", "monitor", "outreach"]
    assert {r.cause for r in runs} == {"schedule"} and {r.attempt for r in runs} == {1}


def test_a_bad_cron_names_the_file_and_key(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[source]\npath = "e.csv"\n[schedule]\nretrain = "weekly"\n')
    with pytest.raises(ConfigError, match=r"c\.toml: schedule: retrain: expected a cron"):
        triggers(load_config(config))
    config.write_text('[source]\npath = "e.csv"\n[outreach]\nschedule = "0 6 * * 9"\n')
    with pytest.raises(ConfigError, match=r"outreach: schedule: .*weekday '9'"):
        triggers(load_config(config))


def test_retries_back_off_doubling_until_they_run_out() -> None:
    backoff = datetime.timedelta(minutes=10)
    assert [retry_delay(n, backoff) for n in (1, 2, 3)] == [10 * MINUTE, 20 * MINUTE, 40 * MINUTE]
    run, failed_at, chain = Due(at(16, 3), 0, 1, "ingest"), at(16, 3, 2), []
    while (run := retry_of(run, failed_at, 2, backoff)) is not None:
        chain.append(run)
        failed_at = run.at
    assert [(r.at, r.attempt, r.cause) for r in chain] == [
        (at(16, 3, 12), 2, "retry"),
        (at(16, 3, 32), 3, "retry"),  # the second retry waits twice as long; then no third
    ]
    assert retry_of(Due(at(16, 3), 0, 1, "ingest"), at(16, 3), 0, backoff) is None


def test_an_early_retrain_follows_a_breach_at_most_once_per_interval() -> None:
    week = datetime.timedelta(days=7)
    assert retrain_interval(cron_trigger("30 3 * * 0"), at(16)) == week
    # Twice a week: from Tuesday the next two are Thursday and Monday.
    assert retrain_interval(cron_trigger("0 2 * * 1,4"), at(16)) == datetime.timedelta(days=4)
    assert early_retrain_due(True, None, at(16), week)
    assert not early_retrain_due(False, None, at(16), week)
    assert not early_retrain_due(True, at(10), at(16), week)  # six days ago
    assert early_retrain_due(True, at(9), at(16), week)  # a whole interval ago


def test_the_queue_gives_runs_earliest_first_and_stops_at_the_end() -> None:
    queue = Queue([Due(at(14, 6), 4, 1, "outreach"), Due(at(14, 5), 2, 1, "score")])
    queue.push(Due(at(14, 5), 1, 1, "retrain:churn", "breach"))
    queue.push(Due(at(15, 1), 0, 1, "ingest"))
    popped = []
    while (run := queue.pop_until(at(15))) is not None:
        popped.append(run.job)
    assert popped == ["retrain:churn", "score", "outreach"]
    assert queue.pop_until(at(16)).job == "ingest"
