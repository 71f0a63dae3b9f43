"""The outbox on SQLite and PostgreSQL: idempotent enqueue, the budget and cooldown queries,
aware UTC times, and named leases that two racing owners cannot both take."""

from __future__ import annotations

import datetime
import threading
import uuid

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from journeyguard.outreach.outbox import (
    LeaseLost,
    acquire_lease,
    decisions_frame,
    enqueue,
    messages,
    nearest_contacts,
    open_outbox,
    payload_text,
    release_lease,
    sent_events,
    spent,
    status_counts,
)
from journeyguard.outreach.policy import decide
from tests.outreach.test_policy import DISCOUNT
from tests.outreach.test_policy import facts as policy_facts
from tests.outreach.test_policy import outreach as policy_outreach
from tests.outreach.test_policy import scores as policy_scores

UTC = datetime.UTC
DAY = datetime.timedelta(days=1)


def race(count: int, work) -> list:
    """Runs `work(i)` in `count` threads released at the same instant; their results in order."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_enqueue_stores_every_decision_and_a_message_per_contact(engine, make_decisions, clock):
    frame = pd.concat(
        [make_decisions(["a", "b"]), make_decisions(["c"], decision="holdout")], ignore_index=True
    )
    assert enqueue(engine, frame, now=clock()) == 2
    stored = decisions_frame(engine)
    assert list(stored["customer_id"]) == ["a", "b", "c"]
    assert list(stored["decision"]) == ["contact", "contact", "holdout"]
    with engine.connect() as connection:
        rows = connection.execute(select(messages).order_by(messages.c.customer_id)).all()
    assert [r.customer_id for r in rows] == ["a", "b"]
    assert [r.payload for r in rows] == [payload_text(p) for p in frame["payload"][:2]]
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows} == {("pending", 0, clock())}
    assert status_counts(engine) == {
        "pending": 2,
        "delivered": 0,
        "ambiguous": 0,
        "dead": 0,
        "retrying": 0,
    }


def test_enqueue_twice_for_one_window_queues_nothing_new(engine, make_decisions, clock):
    frame = make_decisions(["a", "b", "c"])
    assert enqueue(engine, frame, now=clock()) == 3
    assert enqueue(engine, frame, now=clock.advance(60)) == 0
    assert len(decisions_frame(engine)) == 3
    assert status_counts(engine)["pending"] == 3


def test_times_come_back_as_aware_utc(engine, make_decisions, clock):
    rome = clock().astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    enqueue(engine, make_decisions(["a"], as_of=rome), now=clock())
    stored = decisions_frame(engine)
    assert str(stored["as_of"].dtype) == "datetime64[ns, UTC]"
    assert stored["as_of"][0] == pd.Timestamp(clock())
    assert stored["created_at"][0] == pd.Timestamp(clock())
    (when,) = nearest_contacts(engine, "retention", clock() + DAY, clock() + DAY).values()
    assert when == clock()
    assert when.tzinfo is not None and when.utcoffset() == datetime.timedelta(0)


def test_enqueue_refuses_a_bad_frame_and_writes_nothing(engine, make_decisions, clock):
    frame = make_decisions(["a", "b"])
    frame.loc[1, "payload"] = None
    with pytest.raises(ValueError, match="needs an idempotency_key and a payload"):
        enqueue(engine, frame, now=clock())
    with pytest.raises(ValueError, match="unknown decisions"):
        enqueue(engine, make_decisions(["a"], decision="maybe"), now=clock())
    with pytest.raises(ValueError, match="missing columns"):
        enqueue(engine, make_decisions(["a"]).drop(columns="reason"), now=clock())
    with pytest.raises(ValueError, match="naive"):
        enqueue(engine, make_decisions(["a"]), now=clock().replace(tzinfo=None))
    assert decisions_frame(engine).empty
    assert status_counts(engine)["pending"] == 0


def test_nearest_contacts_look_both_ways_and_skip_the_own_window(engine, make_decisions, clock):
    day1, day2, day3 = clock(), clock() + DAY, clock() + 2 * DAY
    enqueue(engine, make_decisions(["a", "b"], as_of=day1), now=day1)
    enqueue(engine, make_decisions(["a"], as_of=day3), now=day3)
    enqueue(engine, make_decisions(["c"], as_of=day2, decision="holdout"), now=day2)
    enqueue(engine, make_decisions(["b"], as_of=day2, campaign="winback"), now=day2)

    def nearest(as_of: datetime.datetime) -> dict:
        return nearest_contacts(engine, "retention", as_of, window_of(as_of))

    assert nearest(day3 + DAY) == {"a": day3, "b": day1}
    assert nearest(day2) == {"a": day1, "b": day1}  # equally near: the earlier one
    assert nearest(day1) == {"a": day3}  # its own window left out, a later one seen
    assert nearest(day1 - DAY) == {"a": day1, "b": day1}


def test_a_window_run_after_a_later_one_keeps_the_cooldown(engine, make_decisions, clock):
    """Issue 18, row 8: the later window's contacts suppress the earlier window's customers."""
    later = clock() + 6 * DAY
    enqueue(engine, make_decisions(["a", "b"], as_of=later), now=later)
    earlier = pd.Timestamp(clock())
    table = policy_scores([("a", "churn", 0.9), ("c", "churn", 0.9)]).assign(as_of=earlier)
    decisions = decide(
        table,
        policy_facts({"a": (200.0, False), "c": (200.0, False)}),
        policy_outreach(DISCOUNT),
        as_of=earlier,
        nearest_contact=nearest_contacts(engine, "retention", clock(), window_of(clock())),
        opted_out=frozenset(),
    )
    decided = dict(zip(decisions["customer_id"], decisions["decision"], strict=True))
    assert decided == {"a": "suppressed", "c": "contact"}


def window_of(moment: datetime.datetime) -> datetime.datetime:
    """The window start `make_decisions` gives a decision at `moment` (days)."""
    return pd.Timestamp(moment).floor("D").to_pydatetime()


def test_spent_counts_the_contacts_of_the_window(engine, make_decisions, clock):
    enqueue(engine, make_decisions(["a", "b"], cost=2.5), now=clock())
    enqueue(engine, make_decisions(["c"], decision="suppressed"), now=clock())
    enqueue(engine, make_decisions(["d"], as_of=clock() + DAY), now=clock())
    window = pd.Timestamp(clock()).floor("D").to_pydatetime()
    assert spent(engine, "retention", window) == (2, 5.0)
    assert spent(engine, "winback", window) == (0, 0.0)


def test_no_sent_events_yet_is_an_empty_frame_with_the_columns(engine, make_decisions, clock):
    enqueue(engine, make_decisions(["a"], decision="holdout"), now=clock())
    events = sent_events(engine, "retention")
    assert list(events.columns) == ["customer_id", "timestamp", "event", "action"]
    assert events.empty and str(events["timestamp"].dtype) == "datetime64[ns, UTC]"


def test_sent_events_are_the_contact_decisions_at_as_of_plus_the_delivery_delay(
    engine, make_decisions, clock
):
    """On the log's clock: a decision made as of a month ago and delivered 90 s after it was
    stored is an event a month ago plus 90 s. Every contact decision of the campaign is an
    event, delivered or not (intention to treat): b's message is not delivered (yet)."""
    month_ago = clock() - 30 * DAY
    enqueue(engine, make_decisions(["a", "b"], as_of=month_ago), now=clock())
    enqueue(engine, make_decisions(["c"], as_of=month_ago, campaign="winback"), now=clock())
    enqueue(engine, make_decisions(["d"], as_of=month_ago, decision="holdout"), now=clock())
    delivered = clock() + datetime.timedelta(seconds=90)
    with engine.begin() as connection:
        connection.execute(
            messages.update()
            .where(messages.c.customer_id.in_(["a", "c"]))
            .values(status="delivered", delivered_at=delivered)
        )
    events = sent_events(engine, "retention")
    assert list(events.columns) == ["customer_id", "timestamp", "event", "action"]
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert events.to_dict("records") == [
        {
            "customer_id": "a",
            "timestamp": pd.Timestamp(month_ago) + pd.Timedelta(seconds=90),
            "event": "outreach_sent",
            "action": "call_back",
        },
        {
            "customer_id": "b",
            "timestamp": pd.Timestamp(month_ago) + pd.Timedelta(microseconds=1),
            "event": "outreach_sent",
            "action": "call_back",
        },
    ]


@pytest.mark.parametrize("status", ["ambiguous", "dead"])
def test_an_undelivered_contact_stays_a_contact_in_the_written_back_events(
    engine, make_decisions, clock, status
):
    """Issue 18, row 9: a message the receiver may have (ambiguous), or never got (dead),
    leaves its customer in the contacted group (intention to treat)."""
    enqueue(engine, make_decisions(["a"]), now=clock())
    with engine.begin() as connection:
        connection.execute(messages.update().values(status=status))
    assert sent_events(engine, "retention")["customer_id"].tolist() == ["a"]


def test_an_outbox_of_an_older_version_gains_the_new_column(outbox_url, make_decisions, clock):
    engine = open_outbox(outbox_url)
    enqueue(engine, make_decisions(["a"]), now=clock())
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE messages DROP COLUMN possibly_delivered")
    engine.dispose()
    engine = open_outbox(outbox_url)  # as the new version opens the old outbox
    with engine.connect() as connection:
        flags = connection.execute(select(messages.c.possibly_delivered)).scalars().all()
    engine.dispose()
    assert flags == [False]


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(st.integers(0, 9), max_size=10), min_size=1, max_size=4))
def test_overlapping_enqueues_queue_each_contact_once(engine, make_decisions, clock, batches):
    campaign = uuid.uuid4().hex  # the database outlives one example
    queued = sum(
        enqueue(engine, make_decisions([f"c{i}" for i in set(b)], campaign=campaign), now=clock())
        for b in batches
    )
    distinct = len(set().union(*batches))
    assert queued == distinct
    assert len(decisions_frame(engine, campaign)) == distinct


def test_two_processes_opening_a_new_outbox_at_once_both_succeed(outbox_url):
    engines = race(2, lambda _: open_outbox(outbox_url))
    with engines[0].connect() as connection:
        assert connection.execute(select(func.count()).select_from(messages)).scalar() == 0
    for engine in engines:
        engine.dispose()


def test_only_one_of_racing_owners_takes_a_lease(engine, clock):
    ttl = datetime.timedelta(seconds=30)
    wins = race(6, lambda i: acquire_lease(engine, "cycle", f"owner{i}", now=clock(), ttl=ttl))
    assert wins.count(True) == 1
    holder = f"owner{wins.index(True)}"
    other = "owner9"
    assert acquire_lease(engine, "cycle", holder, now=clock.advance(10), ttl=ttl)  # renewal
    assert not acquire_lease(engine, "cycle", other, now=clock.advance(29), ttl=ttl)
    assert acquire_lease(engine, "cycle", other, now=clock.advance(2), ttl=ttl)  # expired
    assert not acquire_lease(engine, "cycle", holder, now=clock(), ttl=ttl)
    assert acquire_lease(engine, "other-job", holder, now=clock(), ttl=ttl)  # names independent


def test_expired_lease_goes_to_exactly_one_of_racing_owners(engine, clock):
    ttl = datetime.timedelta(seconds=30)
    assert acquire_lease(engine, "cycle", "crashed", now=clock(), ttl=ttl)
    later = clock.advance(31)
    wins = race(6, lambda i: acquire_lease(engine, "cycle", f"owner{i}", now=later, ttl=ttl))
    assert wins.count(True) == 1


def test_enqueue_under_a_lease_stores_only_while_it_is_held(engine, make_decisions, clock):
    frame = make_decisions(["a"])
    with pytest.raises(LeaseLost, match="nobody"):
        enqueue(engine, frame, now=clock(), lease=("cycle", "me"))
    assert acquire_lease(engine, "cycle", "me", now=clock(), ttl=DAY)
    clock.advance(DAY.total_seconds() + 1)  # expired: another may have taken over meanwhile
    with pytest.raises(LeaseLost, match="me until"):
        enqueue(engine, frame, now=clock(), lease=("cycle", "me"))
    assert acquire_lease(engine, "cycle", "other", now=clock(), ttl=DAY)
    with pytest.raises(LeaseLost, match="other until"):
        enqueue(engine, frame, now=clock(), lease=("cycle", "me"))
    assert decisions_frame(engine).empty and status_counts(engine)["pending"] == 0
    assert enqueue(engine, frame, now=clock(), lease=("cycle", "other")) == 1


def test_release_lets_another_owner_in_at_once(engine, clock):
    ttl = datetime.timedelta(minutes=5)
    assert acquire_lease(engine, "cycle", "a", now=clock(), ttl=ttl)
    release_lease(engine, "cycle", "b")  # not b's to release
    assert not acquire_lease(engine, "cycle", "b", now=clock(), ttl=ttl)
    release_lease(engine, "cycle", "a")
    assert acquire_lease(engine, "cycle", "b", now=clock(), ttl=ttl)
