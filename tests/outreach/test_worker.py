"""Dispatcher workers (`journeyguard outreach dispatch`), on SQLite and PostgreSQL, against a real
loopback receiver: a worker sends what is due and what falls due later until stopped, and worker
processes running at once deliver each message exactly once."""

from __future__ import annotations

import datetime
import subprocess
import sys
import threading
import time
from pathlib import Path

from journeyguard.features.config.model import OutreachConfig
from journeyguard.outreach.dispatch import DispatchResult
from journeyguard.outreach.outbox import enqueue, status_counts
from journeyguard.outreach.worker import run_worker
from tests.outreach.conftest import SECRET

CONFIG = """
[source]
path = "events.parquet"  # never read by a dispatcher

[outreach]
database = '{database}'
webhook_url = '{url}'
webhook_secret = '{secret}'
"""


def outreach(receiver) -> OutreachConfig:
    return OutreachConfig(webhook_url=receiver.url, webhook_secret=SECRET)


def test_once_sends_what_is_due_and_returns(engine, receiver, clock, make_decisions):
    enqueue(engine, make_decisions(["a", "b", "c"]), now=clock())
    totals = run_worker(outreach(receiver), engine, now=clock, stop=threading.Event(), once=True)
    assert totals == DispatchResult(delivered=3, attempted=3)
    assert sorted(payload["customer_id"] for _, payload in receiver.received) == ["a", "b", "c"]


def test_a_running_worker_sends_new_messages_until_stopped(engine, receiver, clock, make_decisions):
    stop, result = threading.Event(), {}
    idle = datetime.timedelta(milliseconds=50)

    def work() -> None:
        result["totals"] = run_worker(outreach(receiver), engine, now=clock, stop=stop, idle=idle)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        enqueue(engine, make_decisions(["late"]), now=clock())  # while the worker waits
        deadline = time.monotonic() + 10
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert not worker.is_alive()
    assert [payload["customer_id"] for _, payload in receiver.received] == ["late"]
    assert result["totals"].delivered == 1


def test_worker_processes_at_once_deliver_each_message_once(
    outbox_url, engine, receiver, clock, make_decisions, tmp_path: Path
):
    customers = [f"c{i:03}" for i in range(60)]
    enqueue(engine, make_decisions(customers), now=clock())
    config = tmp_path / "jg.toml"
    config.write_text(CONFIG.format(database=outbox_url, url=receiver.url, secret=SECRET))
    command = [
        str(Path(sys.executable).with_name("journeyguard")),
        "outreach",
        "dispatch",
        "--config",
        str(config),
        "--once",
    ]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert receiver.attempts == len(customers)  # none sent twice
    assert sorted(payload["customer_id"] for _, payload in receiver.received) == customers
    assert status_counts(engine)["delivered"] == len(customers)
