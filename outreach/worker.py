"""Dispatcher workers: processes that only send the outbox's due messages, as many as the load
needs (`journeyguard outreach dispatch`, a Kubernetes Deployment of N replicas).

The daily cycle decides and enqueues under its lease, and sends what it can; workers keep
sending between cycles (retries falling due hours later, a backlog after an outage). Any number
run at once: each message is claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL
(`dispatch.claim`), so workers take different rows instead of queueing on one, and a message
whose worker died is taken over when its lease expires, with the same `webhook-id`.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping

import httpx
from sqlalchemy import Engine

from journeyguard.features.config.model import OutreachConfig
from journeyguard.outreach.cycle import DISPATCH_BATCH, next_due
from journeyguard.outreach.dispatch import DispatchResult, dispatch, webhook_target

IDLE = datetime.timedelta(seconds=30)  # the longest a worker sleeps while nothing is due
# The shortest: a due message another worker holds is not ours until its lease ends.
BUSY = datetime.timedelta(seconds=1)


def run_worker(
    config: OutreachConfig,
    engine: Engine,
    *,
    now: Callable[[], datetime.datetime],
    stop: threading.Event,
    once: bool = False,
    idle: datetime.timedelta = IDLE,
    environ: Mapping[str, str] = os.environ,
    worker: str | None = None,
) -> DispatchResult:
    """Sends due messages in batches until `stop` is set; with `once`, until none it may
    claim is due.

    Between batches it sleeps until the next message falls due, at most `idle` (a cycle may
    enqueue new messages meanwhile). `now` stamps claims and signatures: the real clock outside
    tests.
    """
    url, secret = webhook_target(config, environ)
    name = worker or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    totals = DispatchResult()
    with httpx.Client(timeout=config.timeout.total_seconds()) as client:
        while not stop.is_set():
            batch = dispatch(
                engine,
                url=url,
                secret=secret,
                now=now,
                worker=name,
                max_attempts=config.max_attempts,
                timeout=config.timeout.total_seconds(),
                lease=max(datetime.timedelta(seconds=60), 2 * config.timeout),
                client=client,
                limit=DISPATCH_BATCH,
            )
            totals += batch
            if batch.attempted == DISPATCH_BATCH:
                continue  # more may be due right now
            if once:
                break  # nothing left that this worker may claim now
            stop.wait(_seconds_until(next_due(engine), now(), idle))
    return totals


def _seconds_until(
    due: datetime.datetime | None, now: datetime.datetime, idle: datetime.timedelta
) -> float:
    """How long to sleep: until `due`, within [`BUSY`, `idle`]."""
    if due is None:
        return idle.total_seconds()
    return min(idle, max(BUSY, due - now)).total_seconds()
