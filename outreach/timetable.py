"""What the pipeline runs when: pure decisions on times, tested directly (no scheduler, no clock).

1. Each job runs on its own cron of `[schedule]` (UTC): ingest, retrain (weekly by default, every
   task), score, monitor, outreach (`JOBS`, in the order of one day's defaults).
2. Runs due at one moment run in `JOBS` order (the day's scores before its outreach, when two
   crons name the same minute).
3. A failed run is retried `retry_backoff` later, then twice that, and so on, `retries` times at
   most; a retry is a run of its own and delays no other job.
4. A monitor breach of a task retrains that task at once, unless an early retrain of the task
   started less than one retrain interval ago (the time between two weekly retrains): at most
   one early retrain per interval.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field

from apscheduler.triggers.cron import CronTrigger

from journeyguard.features.config.model import Config
from journeyguard.features.errors import ConfigError

JOBS = ("ingest", "retrain", "score", "monitor", "outreach")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's numbering: 0 and 7 Sunday


def cron_trigger(expression: str) -> CronTrigger:
    """The trigger of a standard crontab line (minute hour day month weekday), in UTC.

    APScheduler 3's `from_crontab` numbers weekdays from Monday = 0 (fixed only in 4.x), so
    "30 3 * * 0" would run on Mondays: the weekday field is rewritten as day names first.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields, got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(weekday),
        timezone="UTC",
    )


def crontab_weekdays(field: str) -> str:
    """A crontab weekday field (0-7 or names, lists, ranges, steps; 0 and 7 are Sunday) as the
    comma-separated day names it selects, or "*" for every day."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.lower().split(","):
        span, _, step = item.partition("/")
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _weekday(low)
            last = _weekday(high) if high else (6 if step else first)
            if high and last == 0 and high.strip() == "7":
                last = 7  # "5-7": Friday to Sunday
        if not step.isdigit() and step:
            raise ValueError(f"weekday step {step!r} is not a number")
        if last < first:
            raise ValueError(f"weekday range {span!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, int(step or 1)))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def _weekday(token: str) -> int:
    token = token.strip()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token) % 7
    if token in DAY_NAMES:
        return DAY_NAMES.index(token)
    raise ValueError(f"weekday {token!r}: expected 0-7 (0 and 7 are Sunday) or {list(DAY_NAMES)}")


def triggers(settings: Config) -> dict[str, CronTrigger]:
    """The cron trigger of each job, in UTC whatever the machine's zone; a bad expression is a
    `ConfigError` naming the file and key."""
    found = {}
    for job in JOBS:
        expression = settings.schedule.cron(job, settings.outreach)
        try:
            found[job] = cron_trigger(expression)
        except ValueError as error:
            key = "schedule" if job != "outreach" or settings.schedule.outreach else "outreach"
            name = job if key == "schedule" else "schedule"
            raise ConfigError(
                f"{settings.path}: {key}: {name}: expected a cron expression (minute hour day "
                f"month weekday), such as '0 6 * * *'; got {expression!r}: {error}"
            ) from None
    return found


@dataclass(order=True, frozen=True)
class Due:
    """A run falling due: when, then `JOBS` order, then attempt (the queue's sort key)."""

    at: datetime.datetime
    rank: int
    attempt: int
    job: str = field(compare=False)
    cause: str = field(compare=False, default="schedule")  # schedule, retry, breach


def fire_times(
    trigger: CronTrigger, start: datetime.datetime, end: datetime.datetime
) -> Iterator[datetime.datetime]:
    """The trigger's fire times in [start, end)."""
    moment = trigger.get_next_fire_time(None, start)
    while moment is not None and moment < end:
        yield moment
        moment = trigger.get_next_fire_time(moment, moment + datetime.timedelta(seconds=1))


def scheduled_runs(
    crons: dict[str, CronTrigger], start: datetime.datetime, end: datetime.datetime
) -> list[Due]:
    """Every scheduled run in [start, end), in the order they run (rule 2)."""
    runs = [
        Due(moment, JOBS.index(job), 1, job)
        for job, trigger in crons.items()
        for moment in fire_times(trigger, start, end)
    ]
    return sorted(runs)


def retry_delay(attempt: int, backoff: datetime.timedelta) -> datetime.timedelta:
    """How long after failed attempt `attempt` (1: the first run) its retry waits: doubling."""
    return backoff * 2 ** (attempt - 1)


def retry_of(
    failed: Due, failed_at: datetime.datetime, retries: int, backoff: datetime.timedelta
) -> Due | None:
    """The retry of a failed run (rule 3), or None once `retries` retries have failed."""
    if failed.attempt > retries:
        return None
    at = failed_at + retry_delay(failed.attempt, backoff)
    return Due(at, failed.rank, failed.attempt + 1, failed.job, "retry")


def retrain_interval(trigger: CronTrigger, now: datetime.datetime) -> datetime.timedelta:
    """The time between the retrain cron's next two runs after `now` (a week by default)."""
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first + datetime.timedelta(seconds=1))
    return second - first


def early_retrain_due(
    breach: bool,
    last_early: datetime.datetime | None,
    now: datetime.datetime,
    interval: datetime.timedelta,
) -> bool:
    """Whether a monitor result retrains its task now (rule 4)."""
    return breach and (last_early is None or now - last_early >= interval)


class Queue:
    """Runs waiting to fall due, earliest first (a simulated clock's scheduler)."""

    def __init__(self, runs: list[Due]) -> None:
        self._heap = list(runs)
        heapq.heapify(self._heap)

    def push(self, run: Due) -> None:
        heapq.heappush(self._heap, run)

    def pop_until(self, end: datetime.datetime) -> Due | None:
        """The next run due before `end`, or None."""
        if self._heap and self._heap[0].at < end:
            return heapq.heappop(self._heap)
        return None
