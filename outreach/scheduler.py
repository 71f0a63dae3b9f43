"""The outreach schedule: one APScheduler 3 `BlockingScheduler`, run in its own process by
`journeyguard outreach schedule`, that runs a cycle on the `[outreach] schedule` cron (UTC).

The job lives in a `SQLAlchemyJobStore` on the outbox database, so a restarted scheduler knows
its job and when it last ran; a run missed by less than `misfire_grace` still happens, and
missed runs coalesce into one. Two schedulers started by mistake do not send twice: each run
takes the cycle's lease first, and the outbox's keys make a repeated window a no-op.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.outreach.cycle import run_once, utc_now
from journeyguard.outreach.outbox import open_outbox, outbox_url
from journeyguard.outreach.timetable import cron_trigger

JOB_ID = "outreach-cycle"


def trigger(settings: Config) -> CronTrigger:
    """The cron trigger of `[outreach] schedule`, in UTC whatever the machine's zone; checked
    here, by the scheduler that runs it, so reading a config never imports APScheduler."""
    expression = settings.outreach.schedule
    try:
        return cron_trigger(expression)  # crontab's weekdays, Sunday 0 (not APScheduler 3's)
    except ValueError as error:
        raise ConfigError(
            f"{settings.path}: outreach: schedule: expected a cron expression (minute hour day "
            f"month weekday), such as '0 6 * * *'; got {expression!r}: {error}"
        ) from None


def build_scheduler(settings: Config, config_path: str) -> BlockingScheduler:
    """A scheduler (not started) with the cycle job stored on the outbox database.

    The job's only argument is the config path: APScheduler pickles arguments into the store,
    and a path stays valid where a `Config` object might not (and the file is re-read each run,
    so edits take effect without a restart).
    """
    # The outbox's own engine: on SQLite it waits for the cycle's writers instead of failing.
    store = SQLAlchemyJobStore(engine=open_outbox(outbox_url(settings)))
    scheduler = BlockingScheduler(timezone="UTC", jobstores={"default": store})
    scheduler.add_job(
        run_cycle,
        trigger(settings),
        args=[str(config_path)],
        id=JOB_ID,
        name="outreach cycle",
        replace_existing=True,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=max(1, int(settings.outreach.misfire_grace.total_seconds())),
    )
    return scheduler


def run_cycle(
    config_path: str,
    *,
    now: Callable[[], datetime.datetime] = utc_now,
    environ: Mapping[str, str] = os.environ,
) -> dict[str, Any]:
    """The scheduled job: reads the config and runs one cycle as of `now()`.

    A plain module-level function, so the job store can name it; `now` and `environ` are for
    tests (the scheduler passes the path only).
    """
    settings = load_config(config_path)
    return run_once(settings, as_of=pd.Timestamp(now()), now=now, environ=environ)
