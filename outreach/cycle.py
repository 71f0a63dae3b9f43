"""One outreach cycle: score, decide, store, send, write back; safe to run twice or at once.

`run_once` is what the scheduler runs every day and `journeyguard outreach run-once` runs by
hand. In order, under the outbox lease "outreach-cycle" (`outreach.lease`: renewed by a heartbeat
while the cycle works, lost within its short time to live when the cycle dies; a second cycle
that finds it held does nothing and says so):

1. load the log and score it at `as_of` with the champion of every task an action uses;
2. take the customer facts, the opted-out list, and from the outbox the window's start, each
   customer's contact of another window nearest to `as_of`, before or after it (cooldown), the
   window's spending so far and the customers it has decided already (a customer gets one
   decision per window: a rerun decides only the newcomers, against the budget it has left);
3. `decide`, then `enqueue` the decisions and their messages in one transaction, which also
   checks that the lease is still this cycle's (a cycle that lost it stores nothing);
4. `dispatch` what is due to the webhook, in batches, renewing the lease between them, and
   retries falling due within `RETRY_WAIT` (later ones wait for the next cycle);
5. rewrite `<output dir>/outreach_events.parquet` from the outbox: one `outreach_sent` event per
   contact decision, delivered or not (intention to treat), which `load_log` merges into the
   log (see `outbox.sent_events`).

Never sent twice: the lease keeps two cycles from deciding one window at once (the budget would
be given out twice), the outbox's keys make a rerun store and queue nothing new, and the
receiver drops a retried `webhook-id`.
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from sqlalchemy import Engine, func, select

from journeyguard.features.config.model import Config, OutreachConfig
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.canonical import write_canonical
from journeyguard.features.eventlog.columns import CUSTOMER_ID
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.log import load_log
from journeyguard.outreach import outbox
from journeyguard.outreach.dispatch import dispatch, webhook_target
from journeyguard.outreach.facts import customer_facts
from journeyguard.outreach.gains import uplift_gains
from journeyguard.outreach.lease import Lease, owner_name
from journeyguard.outreach.policy import decide, summary, utc, window_start

LEASE_NAME = "outreach-cycle"
DISPATCH_BATCH = 200  # messages sent between two renewals of the lease
RETRY_WAIT = datetime.timedelta(minutes=10)  # how long a cycle waits for retries falling due
COUNT_KEYS = (
    "scored", "already_decided", "selected", "contact", "holdout", "suppressed", "enqueued",
    "delivered", "retrying", "ambiguous", "dead", "pending",
)  # fmt: skip


def utc_now() -> datetime.datetime:
    """The real clock, aware UTC: receivers check signature times against theirs."""
    return datetime.datetime.now(datetime.UTC)


def run_once(
    settings: Config,
    *,
    as_of: pd.Timestamp,
    now: Callable[[], datetime.datetime],
    url: str | None = None,
    secret: str | None = None,
    environ: Mapping[str, str] = os.environ,
    worker: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Runs one cycle for the window holding `as_of` (see the module docstring) and returns
    its counts: `COUNT_KEYS`, "as_of", "window_start", and "skipped" (None, or why the cycle
    did nothing). selected = contact + holdout + suppressed (this run's new decisions);
    enqueued = contact unless another writer queued some first.

    `now` stamps the outbox and the signatures: pass the real clock outside tests (and
    `sleep`, which waits for retries, must agree with it). The webhook is `url`/`secret` when
    given, else `[outreach]` or the environment (`webhook_target`).
    """
    as_of = utc(as_of)
    if not settings.outreach.actions:
        raise ConfigError(f"{settings.path}: [outreach.actions] is empty: nothing to decide")
    if url is None or secret is None:
        configured_url, configured_secret = webhook_target(settings.outreach, environ)
        url, secret = url or configured_url, secret or configured_secret
    engine = outbox.open_outbox(outbox.outbox_url(settings))
    lease = Lease(engine, LEASE_NAME, worker or owner_name(), now)
    start = window_start(as_of, settings.outreach.window)
    result: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "window_start": start.isoformat(),
        "skipped": None,
        "ranking": {},
        **dict.fromkeys(COUNT_KEYS, 0),
    }
    try:
        if not lease.acquire():
            return result | {"skipped": f"another cycle holds the lease ({_holder_text(engine)})"}
        try:
            with lease.heartbeat():
                result |= _decide_and_enqueue(settings, engine, as_of, lease)
                if result["skipped"] is None:
                    result |= _send(settings, engine, (url, secret), lease, sleep)
                    write_sent_events(settings, engine)
        finally:
            lease.release()
        return result | {"pending": outbox.status_counts(engine)["pending"]}
    finally:
        engine.dispose()


def _decide_and_enqueue(
    settings: Config, engine: Engine, as_of: pd.Timestamp, lease: Lease
) -> dict[str, Any]:
    """Scores the log and stores the window's decisions (`decide_and_store`)."""
    log = load_log(settings)
    scores = score_tasks(settings, log, as_of)
    gains, ranking = uplift_gains(settings, log, as_of, scores)
    counts = decide_and_store(
        settings.outreach,
        engine,
        scores,
        customer_facts(log, as_of, settings.kpis.resolution),
        opted_out_ids(settings),
        as_of=as_of,
        lease=lease,
        gains=gains,
    )
    return counts | {"ranking": ranking}  # how each action ranked by gain did rank, in words


def decide_and_store(
    config: OutreachConfig,
    engine: Engine,
    scores: pd.DataFrame,
    facts: pd.DataFrame,
    opted_out: frozenset[str],
    *,
    as_of: pd.Timestamp,
    lease: Lease,
    gains: Mapping[str, pd.Series] | None = None,
) -> dict[str, Any]:
    """Decides the customers the window of `as_of` has not decided yet, against the outbox's
    cooldown and the budget the window has left (`gains`: the predicted uplift of each action
    ranked by gain, as `policy.decide` takes it), and stores the decisions and their messages
    if `lease` is still held. Returns the counts of `summary`, "already_decided", "enqueued"
    and "skipped"."""
    start = window_start(as_of, config.window).to_pydatetime()
    ids = scores[CUSTOMER_ID].astype(str)
    done = ids.isin(decided_customers(engine, config.campaign, start))
    decisions = decide(
        scores[~done],
        facts,
        config,
        as_of=as_of,
        nearest_contact=outbox.nearest_contacts(
            engine, config.campaign, as_of.to_pydatetime(), start
        ),
        opted_out=opted_out,
        spent=outbox.spent(engine, config.campaign, start),
        gains=gains,
    )
    counts = summary(decisions, ids.nunique()) | {"already_decided": ids[done].nunique()}
    lost = counts | {"skipped": "lost the lease before storing the decisions"}
    if not lease.renew():  # taken over while scoring: the new holder decides this window
        return lost
    try:  # checked again as it stores: the lease may expire between the two
        enqueued = outbox.enqueue(engine, decisions, now=lease.now(), lease=lease.key)
    except outbox.LeaseLost:
        return lost
    return counts | {"enqueued": enqueued, "skipped": None}


def _send(
    settings: Config,
    engine: Engine,
    webhook: tuple[str, str],
    lease: Lease,
    sleep: Callable[[float], None],
) -> dict[str, int]:
    """Dispatches everything due, then waits for the retries that fall due within
    `RETRY_WAIT` (a brief outage should not delay a message to the next day's cycle) and sends
    those, until none is due soon. Stops early if the lease was lost: its new holder sends.
    "retrying" is what is left pending after failed attempts, for the next cycle."""
    config = settings.outreach
    timeout = config.timeout.total_seconds()
    totals = {"delivered": 0, "ambiguous": 0, "dead": 0}
    deadline = lease.now() + RETRY_WAIT
    with httpx.Client(timeout=timeout) as client:
        for _ in range(config.max_attempts):  # a pass gives each message one more try at most
            for key, count in _dispatch_due(settings, engine, webhook, lease, client).items():
                totals[key] += count
            due = next_due(engine)
            if due is None or due > deadline or not lease.renew():
                break
            sleep(max(0.0, (due - lease.now()).total_seconds()))
    return totals | {"retrying": outbox.status_counts(engine)["retrying"]}


def _dispatch_due(
    settings: Config,
    engine: Engine,
    webhook: tuple[str, str],
    lease: Lease,
    client: httpx.Client,
) -> dict[str, int]:
    """Sends what is due now in batches, renewing the cycle's lease between them."""
    config = settings.outreach
    totals = {"delivered": 0, "ambiguous": 0, "dead": 0}
    while True:
        batch = dispatch(
            engine,
            url=webhook[0],
            secret=webhook[1],
            now=lease.now,
            worker=lease.owner,
            max_attempts=config.max_attempts,
            timeout=config.timeout.total_seconds(),
            lease=max(datetime.timedelta(seconds=60), 2 * config.timeout),
            client=client,
            limit=DISPATCH_BATCH,
        )
        totals["delivered"] += batch.delivered
        totals["ambiguous"] += batch.ambiguous
        totals["dead"] += batch.dead
        if batch.attempted < DISPATCH_BATCH or not lease.renew():
            return totals


def next_due(engine: Engine) -> datetime.datetime | None:
    """When the next pending message falls due (None when nothing is pending)."""
    table = outbox.messages
    query = select(func.min(table.c.next_attempt_at)).where(table.c.status == "pending")
    with engine.connect() as connection:
        return connection.execute(query).scalar()


def score_tasks(settings: Config, log: EventLog, as_of: pd.Timestamp) -> pd.DataFrame:
    """The long score table of every task an action uses (one row per customer and task),
    each scored by its champion."""
    from journeyguard.training.risk_lists import score_with_champion

    tasks = sorted({action.task for action in settings.outreach.actions.values()})
    tables = [score_with_champion(settings, task, as_of, log) for task in tasks]
    return pd.concat(tables, ignore_index=True)


def opted_out_ids(settings: Config) -> frozenset[str]:
    """The customers who asked not to be contacted: the `customer_id` column of the CSV named
    by `[outreach] opted_out`; none without one."""
    path = settings.outreach.opted_out
    if path is None:
        return frozenset()
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ConfigError(f"{settings.path}: [outreach] opted_out: no file {path}") from None
    except pd.errors.EmptyDataError:
        raise ConfigError(
            f"{settings.path}: [outreach] opted_out: {path} is empty; it needs a header line "
            f"with a {CUSTOMER_ID!r} column"
        ) from None
    if CUSTOMER_ID not in table.columns:
        raise ConfigError(
            f"{settings.path}: [outreach] opted_out: {path} has no {CUSTOMER_ID!r} column; "
            f"its columns: {list(table.columns)}"
        )
    return frozenset(table[CUSTOMER_ID].str.strip()) - {""}


def decided_customers(engine: Engine, campaign: str, start: datetime.datetime) -> set[str]:
    """The customers the window starting at `start` has a decision for already."""
    table = outbox.decisions
    query = select(table.c.customer_id).where(
        table.c.campaign == campaign, table.c.window_start == start
    )
    with engine.connect() as connection:
        return set(connection.execute(query).scalars())


def write_sent_events(settings: Config, engine: Engine) -> Path:
    """Rewrites the write-back file from the outbox (idempotent: the outbox is the record).
    Written aside and renamed, so a reader never sees half a file."""
    path = settings.workspace.outreach_events
    events = outbox.sent_events(engine, settings.outreach.campaign)
    if events.empty:
        path.unlink(missing_ok=True)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    write_canonical(log_from_frame(events), partial)
    os.replace(partial, path)
    return path


def _holder_text(engine: Engine) -> str:
    """Who holds the cycle's lease and until when, for the message of a skipped cycle."""
    held = outbox.lease_holder(engine, LEASE_NAME)
    return "released since" if held is None else f"{held[0]} until {held[1].isoformat()}"
