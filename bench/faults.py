"""A randomised fault campaign against the outreach outbox (issue 18), then an audit.

Real processes and a real receiver on loopback: cycles (the lease with its heartbeat, the real
policy and cooldown, the outbox, the dispatcher) and extra dispatchers run as forked processes,
two schedulers or two dispatchers at once in some rounds, and windows run out of order. The
receiver fails at random (500, no answer in time, an answer after the timeout, a hang-up before
or after accepting, 410, 429 with Retry-After) and processes kill themselves with SIGKILL at a
random point (before a send, after a send before its commit, inside a transaction). Then a
fault-free dispatcher drains what is left and the outbox is audited against the receiver:

- lost: a contact decision whose message is missing, still pending, or marked delivered yet
  never received;
- duplicated: a decision (customer and window) received under two webhook ids;
- dead but received: given up on as `dead` although the receiver has it (an ambiguous case not
  recorded as such); `ambiguous` is the outcome expected there;
- cooldown breaches: one customer received twice within the cooldown.

    .venv/bin/python bench/faults.py --faults 1000 --store sqlite
    .venv/bin/python bench/faults.py --faults 1000 --store postgresql   # database wt_outbox

The audit is `fault_audit.py`, beside this file. Seeded (`--seed`): the plan of faults is the
same each run, though which request meets which receiver fault depends on the order requests
arrive in. Exit status 1 when anything was lost,
duplicated, dead but received, or sent inside the cooldown.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pandas as pd
from fault_audit import Observed, audit, failed, report_text
from sqlalchemy import create_engine, event
from sqlalchemy.engine import make_url

from journeyguard.features.config.model import ActionConfig, OutreachConfig
from journeyguard.outreach import outbox
from journeyguard.outreach.cycle import LEASE_NAME, decide_and_store, utc_now
from journeyguard.outreach.dispatch import dispatch
from journeyguard.outreach.lease import Lease, break_lease, lease_state, owner_name
from journeyguard.outreach.policy import window_start
from journeyguard.outreach.receiver import CannedResponse, Receiver

SECRET = "whsec_" + "ZmF1bHRzLWNhbXBhaWduLXNlY3JldC0zMi1ieXRlcyE="
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/wt_outbox"
BASE = pd.Timestamp("2026-01-01 06:00", tz="UTC")
TIMEOUT = 0.25  # seconds per HTTP attempt
MESSAGE_LEASE = datetime.timedelta(seconds=1)  # a killed dispatcher's message waits this long
CYCLE_TTL = datetime.timedelta(seconds=3)
MAX_ATTEMPTS = 3  # few, so that faults often reach the last attempt
DAYS, CUSTOMERS = 400, 80  # windows to choose from (few repeat); the customers they draw on
CONFIG = OutreachConfig(
    campaign="faults",
    actions={"call": ActionConfig(name="call", task="churn", min_risk=0.5, cost=1.0)},
    holdout=0.2,
    budget_count=8,
    cooldown=datetime.timedelta(days=3),
    window=datetime.timedelta(days=1),
    max_attempts=MAX_ATTEMPTS,
)
RECEIVER_FAULTS = {
    "error_500": CannedResponse(500),
    "no_answer": CannedResponse(503, delay=2.5 * TIMEOUT),  # times out; not recorded
    "late_answer": CannedResponse(None, delay=2 * TIMEOUT),  # recorded, answered too late
    "hang_up_before": CannedResponse(502, hang_up=True),  # hangs up; not recorded
    "hang_up_after": CannedResponse(None, hang_up=True),  # recorded, then hangs up
    "gone_410": CannedResponse(410),
    "rate_429": CannedResponse(429, {"retry-after": "1"}),
}
KILL_POINTS = ("kill_before_send", "kill_after_send", "kill_in_transaction")
ROUND_FAULTS = ("two_schedulers", "two_dispatchers", "window_out_of_order")  # scenarios
RECEIVER_FAULT_SHARE = 0.4  # of requests
KILL_SHARE = 0.5  # of processes
TWO_AT_ONCE_SHARE = 0.3  # of rounds, for schedulers and for dispatchers each
DRAIN_SECONDS = 120.0


class FaultyReceiver(Receiver):
    """The test receiver, failing a share of requests with a fault drawn at random."""

    def __init__(self, secret: str, rng: random.Random, share: float) -> None:
        super().__init__(secret)
        self.rng, self.share, self.enabled = rng, share, True
        self.faults: list[tuple[str | None, str]] = []  # (webhook id, fault kind)
        self._draw = threading.Lock()

    def next_response(self, webhook_id: str | None) -> CannedResponse | None:
        with self._draw:
            if not self.enabled or self.rng.random() >= self.share:
                return None
            kind = self.rng.choice(sorted(RECEIVER_FAULTS))
            self.faults.append((webhook_id, kind))
        return RECEIVER_FAULTS[kind]


@dataclass(frozen=True)
class Plan:
    """What one process does and where it dies: `kill` (one of KILL_POINTS, or None) at the
    chance after `after` passed ones."""

    role: str  # "cycle" or "dispatcher"
    day: int
    seed: int
    kill: str | None = None
    after: int = 0


@dataclass
class Killer:
    """Kills its own process with SIGKILL at the planned point, after writing down where."""

    plan: Plan
    log_path: str
    seen: int = 0
    last_key: str | None = None

    def chance(self, point: str, key: str | None) -> None:
        if self.plan.kill != point:
            return
        self.seen += 1
        if self.seen > self.plan.after:
            line = json.dumps({"kind": point, "key": key, "role": self.plan.role})
            descriptor = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(descriptor, (line + "\n").encode())
            os.close(descriptor)
            os.kill(os.getpid(), signal.SIGKILL)

    def on_request(self, request: httpx.Request) -> None:
        self.last_key = request.headers.get("webhook-id")
        self.chance("kill_before_send", self.last_key)

    def after_send(self, key: str) -> None:
        self.chance("kill_after_send", key)

    def on_execute(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        """After a write to `messages` ran, before its transaction commits."""
        text = " ".join(statement.split()).upper()
        if text.startswith(("INSERT INTO MESSAGES", "UPDATE MESSAGES")):
            recording = "DELIVERED_AT" in text or "LAST_ERROR" in text  # after a send
            self.chance("kill_in_transaction", self.last_key if recording else None)


def window_of(day: int) -> pd.Timestamp:
    return window_start(as_of_of(day), CONFIG.window)


def as_of_of(day: int) -> pd.Timestamp:
    return BASE + pd.Timedelta(days=day)


def scores_of(day: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A window's scores (the same for every process of the round) and the customer facts."""
    rng = random.Random(seed)
    chosen = rng.sample(range(CUSTOMERS), rng.randint(5, 12))
    scores = pd.DataFrame(
        {
            "customer_id": [f"c{i:03}" for i in chosen],
            "task": "churn",
            "risk": [round(rng.uniform(0.55, 1.0), 3) for _ in chosen],
            "as_of": as_of_of(day),
        }
    )
    facts = pd.DataFrame(
        {"value": 200.0, "open_case": False},
        index=pd.Index([f"c{i:03}" for i in range(CUSTOMERS)], name="customer_id"),
    )
    return scores, facts


def worker(database: str, url: str, plan: Plan, scores_seed: int, log_path: str) -> None:
    """One forked process: a cycle (lease, decide, store, send) or a dispatcher (send)."""
    engine = outbox.open_outbox(database)
    killer = Killer(plan, log_path)
    event.listen(engine, "after_cursor_execute", killer.on_execute)
    if plan.role == "dispatcher":
        send(engine, url, killer, owner_name(), plan.seed)
        return
    lease = Lease(engine, LEASE_NAME, owner_name(), utc_now, ttl=CYCLE_TTL)
    if not lease.acquire():
        return  # the other scheduler has it: skipped, as the real cycle does
    try:
        with lease.heartbeat():
            scores, facts = scores_of(plan.day, scores_seed)
            stored = decide_and_store(
                CONFIG, engine, scores, facts, frozenset(), as_of=as_of_of(plan.day), lease=lease
            )
            if stored["skipped"] is None:
                send(engine, url, killer, lease.owner, plan.seed)
    finally:
        lease.release()


def send(engine: Any, url: str, killer: Killer | None, name: str, seed: int) -> None:
    hooks = {"request": [killer.on_request]} if killer else {}
    with httpx.Client(timeout=TIMEOUT, event_hooks=hooks) as client:
        dispatch(
            engine,
            url=url,
            secret=SECRET,
            now=utc_now,
            worker=name,
            max_attempts=MAX_ATTEMPTS,
            timeout=TIMEOUT,
            lease=MESSAGE_LEASE,
            base_delay=0.05,
            max_delay=0.5,
            rng=random.Random(seed),
            client=client,
            after_send=killer.after_send if killer else None,
        )


@dataclass
class Campaign:
    """The faults injected so far and what they touched."""

    kills: list[dict[str, Any]] = field(default_factory=list)
    round_faults: list[tuple[str, pd.Timestamp]] = field(default_factory=list)  # kind, window
    rounds: int = 0
    stuck: int = 0  # processes still running after their round's time: killed, counted

    def injected(self, receiver: FaultyReceiver) -> int:
        """The faults so far: receiver failures and kills (not the rounds' scenarios)."""
        return len(receiver.faults) + len(self.kills)


def run_campaign(database: str, faults: int, seed: int, *, quiet: bool = False) -> dict:
    """Injects at least `faults` faults, drains, and returns the audit (see `audit`)."""
    rng = random.Random(seed)
    started = time.monotonic()
    engine = outbox.open_outbox(database)
    campaign = Campaign()
    fork = multiprocessing.get_context("fork")
    with (
        FaultyReceiver(SECRET, random.Random(seed + 1), RECEIVER_FAULT_SHARE) as receiver,
        tempfile.TemporaryDirectory() as folder,
    ):
        log_path = os.path.join(folder, "kills.jsonl")
        latest_day = -1
        while campaign.injected(receiver) < faults:
            campaign.rounds += 1
            day = rng.randrange(DAYS)
            if day < latest_day:
                campaign.round_faults.append(("window_out_of_order", window_of(day)))
            latest_day = max(latest_day, day)
            plans = round_plans(rng, day, campaign)
            free_the_lease(engine)
            engine.dispose()  # no pooled connection may be shared with the forked processes
            scores_seed = rng.randrange(2**31)
            processes = [
                fork.Process(target=worker, args=(database, receiver.url, p, scores_seed, log_path))
                for p in plans
            ]
            for process in processes:
                process.start()
            for process in processes:
                process.join(60)
                if process.is_alive():
                    campaign.stuck += 1
                    process.kill()
                    process.join()
            campaign.kills = read_kills(log_path)
            if not quiet and campaign.rounds % 20 == 0:
                print(f"round {campaign.rounds}: {campaign.injected(receiver)} faults", flush=True)
        receiver.enabled = False
        drained = drain(engine, receiver.url)
        seen = Observed(
            received=list(receiver.received),
            requests=receiver.attempts,
            receiver_faults=list(receiver.faults),
            kills=campaign.kills,
            round_faults=campaign.round_faults,
        )
        result = audit(
            engine,
            seen,
            campaign=CONFIG.campaign,
            cooldown=CONFIG.cooldown,
            kinds=(*sorted(RECEIVER_FAULTS), *KILL_POINTS, *ROUND_FAULTS),
        )
    engine.dispose()
    return result | {
        "rounds": campaign.rounds,
        "stuck": campaign.stuck,
        "drained": drained,
        "seconds": round(time.monotonic() - started, 1),
    }


def round_plans(rng: random.Random, day: int, campaign: Campaign) -> list[Plan]:
    """The processes of one round: one or two cycles of the window, maybe two dispatchers."""
    schedulers = 2 if rng.random() < TWO_AT_ONCE_SHARE else 1
    dispatchers = 2 if rng.random() < TWO_AT_ONCE_SHARE else 0
    if schedulers == 2:
        campaign.round_faults.append(("two_schedulers", window_of(day)))
    if dispatchers == 2:
        campaign.round_faults.append(("two_dispatchers", window_of(day)))
    roles = ["cycle"] * schedulers + ["dispatcher"] * dispatchers
    return [
        Plan(
            role,
            day,
            rng.randrange(2**31),
            rng.choice(KILL_POINTS) if rng.random() < KILL_SHARE else None,
            rng.randrange(3),
        )
        for role in roles
    ]


def free_the_lease(engine: Any) -> None:
    """Breaks the cycle's lease when its holder was killed (as `outreach lease --break` does);
    waits for a live holder (a cycle of the last round still letting go)."""
    deadline = time.monotonic() + 2 * CYCLE_TTL.total_seconds()
    while time.monotonic() < deadline:
        state = lease_state(engine, LEASE_NAME, utc_now())
        if state.owner is None:
            return
        if state.stale:
            break_lease(engine, LEASE_NAME, utc_now(), force=False)
            return
        time.sleep(0.05)


def read_kills(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def drain(engine: Any, url: str) -> bool:
    """Sends what is left without faults until nothing is pending (leases of killed
    dispatchers expire, retries fall due); False if something is still pending at the end."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < deadline:
        send(engine, url, None, "drain", 0)
        if outbox.status_counts(engine)["pending"] == 0:
            return True
        time.sleep(0.1)
    return False


@contextmanager
def database_for(store: str, database: str | None) -> Iterator[str]:
    """The outbox URL: `database` as given, else a new SQLite file or a new schema of the
    PostgreSQL database (dropped afterwards)."""
    if database is not None:
        yield database
        return
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/outbox.db"
        return
    base = make_url(os.environ.get("JOURNEYGUARD_TEST_POSTGRES_URL", POSTGRES_URL))
    schema = f"faults_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faults", type=int, default=1000, help="at least this many (1000)")
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database",
        help="an outbox URL to use as it is (default: a new SQLite file, or a new schema of "
        f"$JOURNEYGUARD_TEST_POSTGRES_URL, else {POSTGRES_URL})",
    )
    parser.add_argument("--json", action="store_true", help="print the audit as JSON")
    options = parser.parse_args(argv)
    logging.getLogger("journeyguard.outreach.dispatch").setLevel(logging.ERROR)  # dead: expected
    with database_for(options.store, options.database) as database:
        result = run_campaign(database, options.faults, options.seed, quiet=options.json)
    print(json.dumps(result, indent=2) if options.json else report_text(result, options.store))
    return 1 if failed(result) else 0


if __name__ == "__main__":
    sys.exit(main())
