"""The dispatcher against a real loopback receiver, on SQLite and PostgreSQL: outages, errors,
rate limits, slowness, a dispatcher killed between send and commit, and two at once. Whatever
happens, each message is recorded by the receiver exactly once."""

from __future__ import annotations

import datetime
import email.utils
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from standardwebhooks import Webhook

from journeyguard.features.config.model import OutreachConfig
from journeyguard.features.errors import ConfigError
from journeyguard.outreach.dispatch import (
    DispatchResult,
    backoff_delay,
    classify,
    dispatch,
    parse_retry_after,
    webhook_target,
)
from journeyguard.outreach.outbox import enqueue, messages, open_outbox, sent_events, status_counts
from journeyguard.outreach.receiver import CannedResponse, Receiver
from tests.outreach.conftest import OTHER_SECRET, SECRET

REPO = Path(__file__).resolve().parents[2]
UTC = datetime.UTC


def run(engine: Engine, receiver: Receiver, clock, **options) -> DispatchResult:
    """One dispatch run with fast test defaults."""
    settings = {
        "url": receiver.url,
        "secret": SECRET,
        "now": clock,
        "worker": "w1",
        "base_delay": 0.01,
        "rng": random.Random(7),
        "timeout": 2.0,
    }
    return dispatch(engine, **(settings | options))


def rows(engine: Engine) -> dict:
    """The messages by idempotency key."""
    with engine.connect() as connection:
        return {r.idempotency_key: r for r in connection.execute(select(messages))}


def test_a_message_is_signed_and_sent_byte_for_byte(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a"]), now=clock())
    assert run(engine, receiver, clock) == DispatchResult(delivered=1, attempted=1)
    (key, stored), (request,) = rows(engine).popitem(), receiver.requests
    assert request.body == stored.payload.encode()
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == key
    assert request.headers["webhook-timestamp"] == str(int(clock().timestamp()))
    assert receiver.received == [(key, {"customer_id": "a", "action": "call_back", "risk": 0.8})]
    assert (stored.status, stored.attempts, stored.delivered_at) == ("delivered", 1, clock())
    assert stored.lease_owner is None and stored.lease_until is None
    events = sent_events(engine, "retention")  # as_of plus no delay: the least step after it
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert events.to_dict("records") == [
        {
            "customer_id": "a",
            "timestamp": pd.Timestamp(clock()) + pd.Timedelta(microseconds=1),
            "event": "outreach_sent",
            "action": "call_back",
        }
    ]


def test_receiver_down_then_up_delivers_everything_once(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions([f"c{i}" for i in range(5)]), now=clock())
    receiver.stop()
    assert run(engine, receiver, clock) == DispatchResult(retrying=5, attempted=5)
    assert status_counts(engine) == {
        "pending": 5,
        "delivered": 0,
        "ambiguous": 0,
        "dead": 0,
        "retrying": 5,
    }
    assert all(r.last_error.startswith("not sent: ConnectError") for r in rows(engine).values())
    assert not any(r.possibly_delivered for r in rows(engine).values())
    receiver.start()  # the same port again
    clock.advance(1)
    assert run(engine, receiver, clock) == DispatchResult(delivered=5, attempted=5)
    assert receiver.attempts == 5
    assert sorted(key for key, _ in receiver.received) == sorted(rows(engine))
    assert status_counts(engine)["delivered"] == 5


def test_server_errors_back_off_exponentially_then_deliver(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.fail_next(CannedResponse(500), CannedResponse(500))
    rng, twin = random.Random(7), random.Random(7)  # the twin makes the same draws
    for attempt in (1, 2):
        sent_at = clock()
        result = run(engine, receiver, clock, base_delay=1.0, rng=rng)
        assert result == DispatchResult(retrying=1, attempted=1)
        (row,) = rows(engine).values()
        jitter = twin.uniform(0.0, 1.0 * 2 ** (attempt - 1))
        assert row.next_attempt_at == sent_at + datetime.timedelta(seconds=jitter)
        assert (row.attempts, row.last_error) == (attempt, "HTTP 500")
        assert run(engine, receiver, clock) == DispatchResult()  # not due yet
        clock.advance(2**attempt)
    assert run(engine, receiver, clock) == DispatchResult(delivered=1, attempted=1)
    assert receiver.attempts == 3 and len(set(receiver.seen_ids)) == 1
    assert len(receiver.received) == 1


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured(engine, receiver, clock, make_decisions, status, form):
    enqueue(engine, make_decisions(["a"]), now=clock())
    wait = datetime.timedelta(seconds=90)
    value = "90" if form == "seconds" else email.utils.format_datetime(clock() + wait, True)
    receiver.fail_next(CannedResponse(status, {"Retry-After": value}))
    assert run(engine, receiver, clock) == DispatchResult(retrying=1, attempted=1)
    (row,) = rows(engine).values()
    assert row.next_attempt_at == clock() + wait
    clock.advance(89)
    assert run(engine, receiver, clock).attempted == 0
    clock.advance(1)
    assert run(engine, receiver, clock) == DispatchResult(delivered=1, attempted=1)


def test_a_slow_receiver_times_out_and_the_retry_is_recorded_once(
    engine, receiver, clock, make_decisions
):
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.fail_next(CannedResponse(status=None, delay=0.6))  # answers, but too late
    assert run(engine, receiver, clock, timeout=0.2) == DispatchResult(retrying=1, attempted=1)
    (row,) = rows(engine).values()
    assert row.last_error.startswith("timeout after 0.2 s")
    clock.advance(1)
    assert run(engine, receiver, clock, timeout=0.2) == DispatchResult(delivered=1, attempted=1)
    wait_until(lambda: receiver.attempts == 2)  # the slow first request finishes too
    assert receiver.seen_ids == [row.idempotency_key] * 2
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    "fault",
    [
        CannedResponse(status=None, delay=0.6),  # accepted, answered after the timeout
        CannedResponse(status=None, hang_up=True),  # accepted, then the connection dropped
    ],
    ids=["late", "hung_up"],
)
def test_a_last_attempt_that_may_have_got_through_is_ambiguous_not_dead(
    engine, receiver, clock, make_decisions, fault
):
    """Issue 18, row 9: the receiver has the message although the sender saw no answer."""
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.fail_next(fault)
    result = run(engine, receiver, clock, timeout=0.2, max_attempts=1)
    assert result == DispatchResult(ambiguous=1, attempted=1)
    wait_until(lambda: len(receiver.received) == 1)
    (row,) = rows(engine).values()
    assert (row.status, row.possibly_delivered) == ("ambiguous", True)
    assert status_counts(engine)["ambiguous"] == 1
    assert sent_events(engine, "retention")["customer_id"].tolist() == ["a"]


def test_an_earlier_attempt_that_may_have_got_through_makes_a_later_failure_ambiguous(
    engine, receiver, clock, make_decisions
):
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.fail_next(CannedResponse(status=None, delay=0.6), CannedResponse(410))
    assert run(engine, receiver, clock, timeout=0.2).retrying == 1
    clock.advance(60)
    assert run(engine, receiver, clock, timeout=0.2) == DispatchResult(ambiguous=1, attempted=1)
    (row,) = rows(engine).values()
    assert (row.status, row.last_error) == ("ambiguous", "HTTP 410: endpoint gone")


def test_a_dispatcher_that_died_after_sending_makes_a_later_failure_ambiguous(
    engine, receiver, clock, make_decisions
):
    """The fault campaign's case: sent, received, then the dispatcher died before recording;
    the next attempt's 410 must not make the message `dead`."""
    enqueue(engine, make_decisions(["a"]), now=clock())

    def die(key: str) -> None:
        raise SystemExit(9)  # as a SIGKILL would: nothing recorded after the send

    with pytest.raises(SystemExit):
        run(engine, receiver, clock, worker="doomed", after_send=die)
    assert len(receiver.received) == 1
    clock.advance(61)  # its lease expires
    receiver.fail_next(CannedResponse(410))
    assert run(engine, receiver, clock, worker="rescuer") == DispatchResult(
        ambiguous=1, attempted=1
    )
    (row,) = rows(engine).values()
    assert (row.status, row.attempts, row.possibly_delivered) == ("ambiguous", 2, True)


def test_a_receiver_that_never_answered_makes_a_message_dead(
    engine, receiver, clock, make_decisions
):
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.stop()  # nothing listens: refused before anything was sent
    assert run(engine, receiver, clock, max_attempts=1) == DispatchResult(dead=1, attempted=1)
    (row,) = rows(engine).values()
    assert (row.status, row.possibly_delivered) == ("dead", False)


def wait_until(condition, seconds: float = 5.0) -> None:
    done = threading.Event()
    deadline = datetime.datetime.now(UTC) + datetime.timedelta(seconds=seconds)
    while not condition():
        assert datetime.datetime.now(UTC) < deadline, "condition not met in time"
        done.wait(0.02)


def test_dead_after_max_attempts_with_the_last_error(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.fail_next(CannedResponse(500), CannedResponse(502), CannedResponse(400))
    outcomes = []
    for _ in range(3):
        outcomes.append(run(engine, receiver, clock, max_attempts=3))
        clock.advance(60)
    assert outcomes[-1] == DispatchResult(dead=1, attempted=1)
    assert [o.retrying for o in outcomes[:2]] == [1, 1]
    (row,) = rows(engine).values()
    assert (row.status, row.attempts, row.last_error) == ("dead", 3, "HTTP 400")
    assert run(engine, receiver, clock, max_attempts=3) == DispatchResult()
    assert receiver.received == []


def test_gone_is_dead_at_once(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a"]), now=clock())
    receiver.fail_next(CannedResponse(410))
    assert run(engine, receiver, clock) == DispatchResult(dead=1, attempted=1)
    (row,) = rows(engine).values()
    assert (row.status, row.last_error) == ("dead", "HTTP 410: endpoint gone")
    assert status_counts(engine) == {
        "pending": 0,
        "delivered": 0,
        "ambiguous": 0,
        "dead": 1,
        "retrying": 0,
    }


def test_a_wrong_secret_is_refused(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a"]), now=clock())
    assert run(engine, receiver, clock, secret=OTHER_SECRET).retrying == 1
    assert [r.status for r in receiver.requests] == [401]
    assert receiver.received == []
    (row,) = rows(engine).values()
    assert row.last_error == "HTTP 401"


CHILD = """
import datetime, os, sys
from journeyguard.outreach.dispatch import dispatch
from journeyguard.outreach.outbox import open_outbox

database, target, secret, at = sys.argv[1:]
now = datetime.datetime.fromisoformat(at)
dispatch(open_outbox(database), url=target, secret=secret, now=lambda: now, worker="doomed",
         after_send=lambda key: os._exit(9))
"""


@pytest.mark.slow
def test_a_dispatcher_killed_after_sending_is_taken_over_with_the_same_id(
    outbox_url, engine, receiver, clock, make_decisions
):
    enqueue(engine, make_decisions(["a"]), now=clock())
    child = subprocess.run(
        [sys.executable, "-c", CHILD, outbox_url, receiver.url, SECRET, clock().isoformat()],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 9, child.stderr
    (row,) = rows(engine).values()
    assert (row.status, row.lease_owner) == ("pending", "doomed")
    assert len(receiver.received) == 1  # sent, but never marked
    assert run(engine, receiver, clock, worker="rescuer").attempted == 0  # still leased
    clock.advance(61)
    result = run(engine, receiver, clock, worker="rescuer")
    assert result == DispatchResult(delivered=1, attempted=1)
    assert receiver.seen_ids == [row.idempotency_key] * 2
    assert len(receiver.received) == 1
    (row,) = rows(engine).values()
    assert (row.status, row.attempts) == ("delivered", 2)


def test_two_dispatchers_at_once_deliver_each_message_once(
    outbox_url, engine, receiver, clock, make_decisions
):
    enqueue(engine, make_decisions([f"c{i:02}" for i in range(50)]), now=clock())
    barrier = threading.Barrier(2)
    results: dict[str, DispatchResult] = {}

    def dispatcher(worker: str) -> None:
        own = open_outbox(outbox_url)  # its own engine and connections, like a process
        barrier.wait()
        results[worker] = run(own, receiver, clock, worker=worker)
        own.dispose()

    threads = [threading.Thread(target=dispatcher, args=(w,)) for w in ("w1", "w2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.delivered for r in results.values()) == 50
    assert sum(r.attempted for r in results.values()) == 50
    assert receiver.attempts == 50
    assert len({key for key, _ in receiver.received}) == 50
    assert status_counts(engine)["delivered"] == 50


def test_limit_caps_the_attempts_of_one_run(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a", "b", "c"]), now=clock())
    assert run(engine, receiver, clock, limit=2).attempted == 2
    assert status_counts(engine)["pending"] == 1


def test_a_lease_shorter_than_the_timeout_is_refused(engine, receiver, clock):
    with pytest.raises(ValueError, match="must be longer than the HTTP timeout"):
        run(engine, receiver, clock, timeout=30.0, lease=datetime.timedelta(seconds=10))


def test_receiver_checks_signatures_and_drops_duplicates(tmp_path):
    log = tmp_path / "received.jsonl"
    at = datetime.datetime.now(UTC)
    body = '{"customer_id":"a"}'
    signed = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_1", at, body),
    }
    with Receiver(SECRET, log_path=log) as receiver:
        assert httpx.post(receiver.url, content=body).status_code == 401  # unsigned
        forged = signed | {"webhook-signature": Webhook(OTHER_SECRET).sign("msg_1", at, body)}
        assert httpx.post(receiver.url, content=body, headers=forged).status_code == 401
        assert httpx.post(receiver.url, content=body, headers=signed).status_code == 200
        assert httpx.post(receiver.url, content=body, headers=signed).status_code == 200
    assert receiver.attempts == 4
    assert receiver.received == [("msg_1", {"customer_id": "a"})]
    (line,) = log.read_text().splitlines()
    assert '"webhook_id": "msg_1"' in line


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Mon, 05 Jan 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 05 Jan 2026 11:00:00 GMT", now=now) == 0.0  # past: now
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None, now=now) is None


def test_classify_reads_the_status_code():
    at = datetime.datetime(2026, 1, 5, tzinfo=UTC)
    assert classify(204, {}, "", at=at).outcome == "delivered"
    assert classify(410, {}, "", at=at).outcome == "dead"
    assert classify(429, {"retry-after": "7"}, "", at=at).retry_after == 7.0
    assert classify(500, {"retry-after": "7"}, "oops", at=at).retry_after is None  # not honoured
    assert classify(500, {}, "oops", at=at).error == "HTTP 500: oops"


@given(st.integers(1, 80), st.floats(0.001, 10.0), st.floats(1.0, 7200.0), st.integers(0, 99))
def test_backoff_stays_within_its_exponential_cap(attempts, base, cap, seed):
    delay = backoff_delay(attempts, base_delay=base, max_delay=cap, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2.0 ** (attempts - 1))


def test_webhook_target_prefers_the_config_then_the_environment():
    environ = {
        "JOURNEYGUARD_OUTREACH_WEBHOOK_URL": "http://env.example/hook",
        "JOURNEYGUARD_OUTREACH_WEBHOOK_SECRET": OTHER_SECRET,
    }
    config = OutreachConfig(webhook_url="https://config.example/hook", webhook_secret=SECRET)
    assert webhook_target(config, environ) == ("https://config.example/hook", SECRET)
    assert webhook_target(OutreachConfig(), environ) == ("http://env.example/hook", OTHER_SECRET)


@pytest.mark.parametrize(
    ("config", "environ", "message"),
    [
        (OutreachConfig(), {}, "webhook_url or JOURNEYGUARD_OUTREACH_WEBHOOK_URL"),
        (
            OutreachConfig(webhook_url="http://x.example/"),
            {},
            "webhook_secret or JOURNEYGUARD_OUTREACH_WEBHOOK_SECRET",
        ),
        (OutreachConfig(webhook_url="ftp://x.example/", webhook_secret=SECRET), {}, "http://"),
        (
            OutreachConfig(webhook_url="http://x.example/"),
            {"JOURNEYGUARD_OUTREACH_WEBHOOK_SECRET": "whsec_"},
            "Standard Webhooks secret",
        ),
    ],
)
def test_webhook_target_names_what_is_missing(config, environ, message):
    with pytest.raises(ConfigError, match=message):
        webhook_target(config, environ)


def test_a_workers_batches_add_up_every_count_ambiguous_included() -> None:
    first = DispatchResult(delivered=2, dead=1, attempted=3)
    second = DispatchResult(retrying=1, attempted=2, ambiguous=1)
    assert first + second == DispatchResult(
        delivered=2, retrying=1, dead=1, attempted=5, ambiguous=1
    )
