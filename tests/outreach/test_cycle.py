"""One outreach cycle end to end: real champions in a temporary MLflow store, a real outbox
(SQLite, and PostgreSQL where the server is there) and a real receiver on loopback.

The champions are the session's trained workspace (tests/workspace.py: 3,000 simulated
customers, churn and escalation), also used by the scheduler and CLI tests; tests that need
only the log use `untrained`, and do not wait for the training.
"""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select, update

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.frames import log_to_frame, read_log
from journeyguard.features.sources.log import load_log
from journeyguard.outreach.cli import effect
from journeyguard.outreach.cycle import LEASE_NAME, opted_out_ids, run_once, utc_now
from journeyguard.outreach.lease import break_lease, lease_state
from journeyguard.outreach.outbox import acquire_lease, decisions_frame, messages, open_outbox
from journeyguard.outreach.outbox import outbox_url as database_of
from journeyguard.outreach.policy import in_holdout
from journeyguard.outreach.receiver import CannedResponse, Receiver
from tests.outreach.conftest import SECRET, Clock
from tests.outreach.workspace import BUDGET_COUNT, BUDGET_MONEY, Workspace
from tests.workspace import (
    AS_OF,
)

HOUR = datetime.timedelta(hours=1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tracking(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    return workspace.tracking_uri


@dataclass(frozen=True)
class Cycles:
    """Two cycles of one window against one receiver, and what each left behind."""

    settings: Config
    first: dict
    second: dict
    requests_after_first: int
    receiver: Receiver
    decisions: pd.DataFrame


@pytest.fixture(scope="module")
def cycles(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cycles]:
    settings = load_config(workspace.config(tmp_path_factory.mktemp("cycles")))
    clock = Clock()
    with pytest.MonkeyPatch.context() as patch, Receiver(SECRET) as receiver:
        patch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
        first = run_once(settings, as_of=AS_OF, now=clock, url=receiver.url, secret=SECRET)
        after_first = receiver.attempts
        second = run_once(settings, as_of=AS_OF, now=clock, url=receiver.url, secret=SECRET)
        engine = open_outbox(database_of(settings))
        decisions = decisions_frame(engine, "retention")
        engine.dispose()
        yield Cycles(settings, first, second, after_first, receiver, decisions)


def test_a_cycle_delivers_signed_messages_and_its_counts_add_up(cycles: Cycles) -> None:
    first = cycles.first
    assert first["skipped"] is None
    assert first["as_of"] == AS_OF.isoformat() and first["window_start"] == AS_OF.isoformat()
    assert first["scored"] > 1000 and first["contact"] > 0 and first["holdout"] > 0
    assert first["selected"] == first["contact"] + first["holdout"] + first["suppressed"]
    assert first["enqueued"] == first["contact"] == first["delivered"]
    assert (first["retrying"], first["dead"], first["pending"], first["already_decided"]) == (
        0,
        0,
        0,
        0,
    )
    # The receiver answers 401 to a bad signature: every request passed verification.
    requests = cycles.receiver.requests[: cycles.requests_after_first]
    assert [r.status for r in requests] == [200] * first["delivered"]
    payloads = [payload for _, payload in cycles.receiver.received]
    assert len(payloads) == first["delivered"]
    assert {p["action"] for p in payloads} <= {"discount", "follow_up"}
    for payload in payloads:
        assert payload["as_of"] == AS_OF.isoformat() and payload["reasons"]
        assert payload["model_version"] == 1 and payload["campaign"] == "retention"
        if payload["action"] == "discount":
            assert payload["offer"] == "10% off your next order" and payload["risk"] >= 0.6


def test_a_second_cycle_of_the_window_sends_nothing(cycles: Cycles) -> None:
    first, second = cycles.first, cycles.second
    assert second["already_decided"] == first["selected"]
    assert (second["selected"], second["enqueued"], second["delivered"]) == (0, 0, 0)
    assert cycles.receiver.attempts == cycles.requests_after_first
    assert len(cycles.decisions) == first["selected"]


def test_delivered_messages_become_outreach_sent_events_of_the_log(cycles: Cycles) -> None:
    log = load_log(cycles.settings)
    events = log_to_frame(log)
    sent = events[events["event"] == "outreach_sent"]
    contacted = cycles.decisions[cycles.decisions["decision"] == "contact"]
    assert sorted(sent["customer_id"].astype(str)) == sorted(contacted["customer_id"])
    assert set(sent["action"].astype(str)) == set(contacted["action"])
    # On the log's clock, just after the decision: the test clock stands still.
    assert (sent["timestamp"] == AS_OF + pd.Timedelta(microseconds=1)).all()
    source = read_log(cycles.settings.source.path)
    assert log.n_events == source.n_events + len(sent)
    assert log.last_time == source.last_time  # the sends of 2025-09-01 are inside the log


def test_a_log_without_outreach_events_is_the_source_unchanged(
    untrained: Workspace, tmp_path: Path
) -> None:
    settings = load_config(untrained.config(tmp_path))
    assert not settings.workspace.outreach_events.exists()
    log, source = load_log(settings), read_log(untrained.events)
    assert "action" not in log.columns and "outreach_sent" not in set(log.steps)
    assert np.array_equal(log.times, source.times) and log.n_journeys == source.n_journeys


def test_holdout_customers_are_never_sent(cycles: Cycles) -> None:
    decisions = cycles.decisions
    holdout = decisions.loc[decisions["decision"] == "holdout", "customer_id"]
    contacted = decisions.loc[decisions["decision"] == "contact", "customer_id"]
    received = {payload["customer_id"] for _, payload in cycles.receiver.received}
    assert len(holdout) and not received & set(holdout)
    assert received == set(contacted)
    assert in_holdout(holdout, "retention", 0.25).all()
    assert not in_holdout(contacted, "retention", 0.25).any()


def test_the_budget_is_respected(cycles: Cycles) -> None:
    decisions = cycles.decisions
    contacted = decisions[decisions["decision"] == "contact"]
    placed = decisions[decisions["decision"].isin(["contact", "holdout"])]
    assert len(placed) <= BUDGET_COUNT
    assert contacted["cost"].sum() <= BUDGET_MONEY
    over = decisions["reason"].str.startswith("over the daily budget")
    assert over.any()  # the budget, not the candidates, was the limit


def test_the_report_has_a_row_per_action(cycles: Cycles, workspace: Workspace) -> None:
    log = read_log(workspace.events)
    result = effect(cycles.settings, pd.Timestamp(log.last_time, tz="UTC"))
    assert result["decisions"]["contact"] == cycles.first["contact"]
    assert result["messages"]["delivered"] == cycles.first["delivered"]
    placed = cycles.decisions[cycles.decisions["decision"].isin(["contact", "holdout"])]
    assert [row["action"] for row in result["actions"]] == sorted(set(placed["action"]))
    for row in result["actions"]:
        group = placed[placed["action"] == row["action"]]
        measured = row["contacted_n"] + row["holdout_n"]
        assert measured + row["waiting"] + row["missing"] + row["excluded"] == len(group)
        assert row["waiting"] == 0  # the horizons after 2025-09-01 closed within the log
    assert any(row["contacted_n"] > 0 and row["holdout_n"] > 0 for row in result["actions"])


def test_opted_out_customers_are_suppressed_and_not_sent(
    cycles: Cycles, workspace: Workspace, tracking: str, tmp_path: Path
) -> None:
    contacted = cycles.decisions.loc[cycles.decisions["decision"] == "contact", "customer_id"]
    out = sorted(contacted)[:3]
    pd.DataFrame({"customer_id": out, "note": "asked"}).to_csv(tmp_path / "out.csv", index=False)
    settings = load_config(workspace.config(tmp_path, extra="opted_out = 'out.csv'"))
    with Receiver(SECRET) as receiver:
        result = run_once(settings, as_of=AS_OF, now=Clock(), url=receiver.url, secret=SECRET)
    engine = open_outbox(database_of(settings))
    decisions = decisions_frame(engine).set_index("customer_id")
    engine.dispose()
    assert (decisions.loc[out, "decision"] == "suppressed").all()
    assert (decisions.loc[out, "reason"] == "opted out").all()
    assert not {payload["customer_id"] for _, payload in receiver.received} & set(out)
    assert result["delivered"] == len(receiver.received) > 0


def test_opted_out_file_errors_name_the_file_and_column(
    untrained: Workspace, tmp_path: Path
) -> None:
    missing = load_config(untrained.config(tmp_path, extra="opted_out = 'none.csv'"))
    with pytest.raises(ConfigError, match=r"opted_out: no file .*none\.csv"):
        opted_out_ids(missing)
    (tmp_path / "ids.csv").write_text("id\nC1\n")
    wrong = load_config(untrained.config(tmp_path, extra="opted_out = 'ids.csv'"))
    with pytest.raises(ConfigError, match=r"no 'customer_id' column; its columns: \['id'\]"):
        opted_out_ids(wrong)
    (tmp_path / "ids.csv").write_text("customer_id\n C1 \n\nC2\n")
    assert opted_out_ids(wrong) == {"C1", "C2"}


def test_an_action_without_a_champion_is_a_config_error(
    workspace: Workspace, tracking: str, tmp_path: Path
) -> None:
    actions = '[outreach.actions.call]\ntask = "refund"\nmin_risk = 0.5\n'
    settings = load_config(workspace.config(tmp_path, actions=actions))
    with pytest.raises(ConfigError, match=r"task 'refund'.*journeyguard train --config .* --task"):
        run_once(settings, as_of=AS_OF, now=Clock(), url="http://127.0.0.1:9/", secret=SECRET)
    engine = open_outbox(database_of(settings))
    assert acquire_lease(engine, LEASE_NAME, "next", now=Clock()(), ttl=HOUR)
    engine.dispose()  # the failed cycle gave its lease back


def test_a_held_lease_skips_the_cycle(untrained: Workspace, tmp_path: Path) -> None:
    settings = load_config(untrained.config(tmp_path))
    clock = Clock()
    engine = open_outbox(database_of(settings))
    assert acquire_lease(engine, LEASE_NAME, "elsewhere", now=clock(), ttl=HOUR)
    engine.dispose()
    with Receiver(SECRET) as receiver:
        result = run_once(settings, as_of=AS_OF, now=clock, url=receiver.url, secret=SECRET)
    assert result["skipped"].startswith("another cycle holds the lease (elsewhere until")
    assert (result["enqueued"], result["delivered"], receiver.attempts) == (0, 0, 0)


def test_racing_cycles_send_each_message_once(
    workspace: Workspace, tracking: str, tmp_path: Path, outbox_url: str
) -> None:
    settings = load_config(workspace.config(tmp_path, extra=f"database = '{outbox_url}'"))
    start = threading.Barrier(2)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def cycle(name: str, receiver: Receiver) -> None:
        try:
            start.wait()
            results[name] = run_once(
                settings, as_of=AS_OF, now=Clock(), url=receiver.url, secret=SECRET, worker=name
            )
        except BaseException as error:  # re-raised in the test's thread below
            errors.append(error)

    with Receiver(SECRET) as receiver:
        threads = [threading.Thread(target=cycle, args=(n, receiver)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    contact = max(result["contact"] for result in results.values())
    assert contact > 0
    assert sum(result["enqueued"] for result in results.values()) == contact
    assert sum(result["delivered"] for result in results.values()) == contact
    assert len(receiver.received) == receiver.attempts == contact
    assert len(set(receiver.seen_ids)) == contact


def test_retries_due_soon_are_sent_within_the_cycle_later_ones_by_the_next(
    workspace: Workspace, tracking: str, tmp_path: Path
) -> None:
    settings = load_config(workspace.config(tmp_path))
    clock = Clock()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    with Receiver(SECRET) as receiver:
        receiver.fail_next(
            CannedResponse(503, {"retry-after": "30"}),
            CannedResponse(503, {"retry-after": "3600"}),  # beyond the cycle's wait
            CannedResponse(500),
        )
        options = {"url": receiver.url, "secret": SECRET, "sleep": sleep}
        first = run_once(settings, as_of=AS_OF, now=clock, **options)
        # An hour later (the receiver checks signature times, so the outbox's clock moves
        # instead): the message waiting for its Retry-After is due.
        engine = open_outbox(database_of(settings))
        with engine.begin() as connection:
            pending = messages.c.status == "pending"
            connection.execute(update(messages).where(pending).values(next_attempt_at=clock()))
        engine.dispose()
        second = run_once(settings, as_of=AS_OF, now=clock, **options)
    assert first["delivered"] == first["contact"] - 1
    assert (first["retrying"], first["pending"], first["dead"]) == (1, 1, 0)
    assert len(waits) == 2 and 29 <= sum(waits) <= 30
    assert (second["enqueued"], second["delivered"], second["pending"]) == (0, 1, 0)
    assert len(receiver.received) == first["contact"] == receiver.attempts - 3


KILLED_CYCLE = """
import sys
import pandas as pd
from journeyguard.features.config.reader import load_config
from journeyguard.outreach.cycle import run_once, utc_now
path, url, secret, as_of = sys.argv[1:]
run_once(load_config(path), as_of=pd.Timestamp(as_of), now=utc_now, url=url, secret=secret)
"""


def test_after_a_cycle_is_killed_its_stale_lease_is_broken_and_the_rerun_sends(
    workspace: Workspace, tracking: str, tmp_path: Path
) -> None:
    """Issue 18, row 7: kill -9 in the middle of sending used to skip every rerun for an hour."""
    settings = load_config(workspace.config(tmp_path))
    engine = open_outbox(database_of(settings))
    claimed = select(messages.c.idempotency_key).where(messages.c.lease_owner.is_not(None))
    with Receiver(SECRET) as receiver:
        receiver.fail_next(CannedResponse(503, delay=3.0))  # holds the cycle in its first send
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_CYCLE, str(settings.path), receiver.url, SECRET,
             AS_OF.isoformat()],
            cwd=REPO,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while not _one(engine, claimed) and child.poll() is None:
                assert time.monotonic() < deadline, "the cycle never started sending"
                time.sleep(0.05)
            (in_flight,) = _all(engine, claimed)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        state = lease_state(engine, LEASE_NAME, utc_now())
        assert state.stale and state.holder_runs is False and not state.expired
        break_lease(engine, LEASE_NAME, utc_now(), force=False)
        rerun = run_once(settings, as_of=AS_OF, now=utc_now, url=receiver.url, secret=SECRET)
    assert rerun["skipped"] is None and rerun["enqueued"] == 0
    decided = decisions_frame(engine, "retention")
    contact = int((decided["decision"] == "contact").sum())
    # All but the message the killed cycle had claimed: its claim holds for a minute more.
    assert rerun["delivered"] == contact - 1 and rerun["pending"] == 1
    assert in_flight not in {key for key, _ in receiver.received}
    assert len(receiver.received) == len(set(receiver.seen_ids) - {in_flight}) == contact - 1
    engine.dispose()


def _one(engine, query):
    with engine.connect() as connection:
        return connection.execute(query).first()


def _all(engine, query):
    with engine.connect() as connection:
        return connection.execute(query).scalars().all()


def test_a_cycle_over_a_warehouse_export_uses_the_store_and_decides_the_same(
    cycles: Cycles, workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The same log exported as a warehouse does (plain text, rows shuffled) is ingested into
    the store by the cycle's first load, and the cycle decides exactly as over the canonical
    file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(workspace.events)
    plain = pa.table(
        {
            name: column.cast(column.type.value_type)
            if pa.types.is_dictionary(column.type)
            else column
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    )
    export = tmp_path / "export.parquet"
    pq.write_table(plain.take(np.random.default_rng(0).permutation(plain.num_rows)), export)
    config = workspace.config(tmp_path / "out")
    config.write_text(config.read_text().replace(str(workspace.events), str(export)))
    settings = load_config(config)
    with pytest.MonkeyPatch.context() as patch, Receiver(SECRET) as receiver:
        patch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
        first = run_once(settings, as_of=AS_OF, now=Clock(), url=receiver.url, secret=SECRET)
    assert "ingested into" in capsys.readouterr().err
    counts = ("scored", "selected", "contact", "holdout", "suppressed", "delivered")
    assert {k: first[k] for k in counts} == {k: cycles.first[k] for k in counts}
    engine = open_outbox(database_of(settings))
    decisions = decisions_frame(engine, "retention")
    engine.dispose()
    columns = ["customer_id", "action", "decision"]
    ordered = decisions[columns].sort_values(columns).reset_index(drop=True)
    expected = cycles.decisions[columns].sort_values(columns).reset_index(drop=True)
    pd.testing.assert_frame_equal(ordered, expected)
    load_log(settings)
    assert "source unchanged" in capsys.readouterr().err
