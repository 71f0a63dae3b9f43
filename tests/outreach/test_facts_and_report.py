"""Customer facts at a point in time, and the effect report, on tiny hand-computed logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.config.model import Match, ResolutionKpi, SnapshotRule, TaskConfig
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.simulate import simulate
from journeyguard.features.stats import newcombe_interval
from journeyguard.outreach.experiments import arms_from_decisions
from journeyguard.outreach.facts import customer_facts
from journeyguard.outreach.report import REPORT_COLUMNS, effect_report, measured, uplift_evidence

T0 = pd.Timestamp("2024-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
OPENS = ("ticket_opened", "ticket_reopened", "refund_requested")
CLOSES = ("ticket_resolved", "refund_approved", "refund_denied")
CASES = ResolutionKpi(OPENS, CLOSES, case_column=None)  # a customer's cases as one


def log_from(rows: list[tuple]) -> EventLog:
    """A log from (customer_id, day, event) or (customer_id, day, event, value) rows."""
    records = [(r[0], T0 + r[1] * DAY, r[2], r[3] if len(r) > 3 else None) for r in rows]
    frame = pd.DataFrame(records, columns=["customer_id", "timestamp", "event", "value"])
    return log_from_frame(frame)


FACTS_LOG = log_from(
    [
        ("a", 0, "order_placed", 100.0),
        ("a", 2, "ticket_opened"),
        ("a", 4, "ticket_resolved"),
        ("a", 5, "repeat_purchase", 50.0),
        ("a", 8, "ticket_reopened"),  # open again at day 10
        ("a", 12, "ticket_resolved"),  # after as_of: does not count
        ("a", 20, "repeat_purchase", 30.0),  # after as_of: does not count
        ("b", 0, "order_placed", 20.5),
        ("b", 1, "ticket_opened"),
        ("b", 1, "ticket_resolved"),  # the same moment: closed
        ("b", 3, "refund_requested"),
        ("b", 3, "refund_approved"),  # the same moment, sorted first: still closed
        ("c", 11, "order_placed", 70.0),  # begins after as_of: no row
        ("d", 1, "delivered"),  # no value, no case
        ("e", 3, "ticket_opened"),
        ("e", 9, "refund_requested"),
        ("f", 6, "refund_requested"),
        ("f", 10, "refund_denied"),  # at as_of: counts
    ]
)


def test_customer_facts_by_hand():
    found = customer_facts(FACTS_LOG, T0 + 10 * DAY, CASES)
    expected = pd.DataFrame(
        {
            "value": [150.0, 20.5, 0.0, 0.0, 0.0],
            "open_case": [True, False, False, True, False],
        },
        index=pd.Index(["a", "b", "d", "e", "f"], name="customer_id"),
    )
    pd.testing.assert_frame_equal(found, expected, check_index_type=False)


def test_customer_facts_follow_the_case_over_time():
    def customer_a(day: float) -> tuple[float, bool]:
        row = customer_facts(FACTS_LOG, T0 + day * DAY, CASES).loc["a"]
        return float(row["value"]), bool(row["open_case"])

    assert customer_a(1) == (100.0, False)
    assert customer_a(3) == (100.0, True)
    assert customer_a(5) == (150.0, False)
    assert customer_a(9) == (150.0, True)
    assert customer_a(30) == (180.0, False)


def test_customer_facts_without_a_value_column():
    frame = pd.DataFrame(
        {"customer_id": ["x"], "timestamp": [T0], "event": ["ticket_opened"]},
    )
    found = customer_facts(log_from_frame(frame), T0, CASES)
    assert found.to_dict("index") == {"x": {"value": 0.0, "open_case": True}}
    assert customer_facts(log_from_frame(frame), T0 - DAY, CASES).empty


def test_a_total_of_huge_values_stays_finite():
    # A log not from the loader (which rejects them) may hold 1e308s: they sum to inf otherwise.
    log = log_from([("a", day, "repeat_purchase", 1e308) for day in (0, 1, 2)])
    facts = customer_facts(log, T0 + 5 * DAY, None)
    assert np.isfinite(facts["value"]).all()


def test_customer_facts_agree_with_plain_pandas_on_the_simulator():
    events = simulate(2_000, seed=3).events
    log = log_from_frame(events)
    as_of = pd.Timestamp((log.first_time + log.last_time) // 2, tz="UTC")
    found = customer_facts(log, as_of, CASES)
    seen = events[pd.to_datetime(events["timestamp"], utc=True) <= as_of]
    spend = seen.groupby("customer_id", observed=True)["value"].sum()
    np.testing.assert_allclose(found["value"], spend.reindex(found.index).fillna(0.0))
    cases = seen[seen["event"].isin(OPENS + CLOSES)].assign(
        closes=lambda frame: frame["event"].isin(CLOSES)
    )
    latest = (
        cases.sort_values(["customer_id", "timestamp", "closes"]).groupby("customer_id").tail(1)
    )
    still_open = ~latest.set_index("customer_id")["closes"]
    expected = still_open.reindex(found.index, fill_value=False).astype(bool)
    assert (found["open_case"] == expected).all()
    assert found["open_case"].any()


STEPS = ("order_placed", "ticket_opened", "ticket_resolved", "refund_requested", "delivered")


@settings(deadline=None, max_examples=60)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from("pqrs"),
            st.integers(0, 20),
            st.sampled_from(STEPS),
            st.none() | st.sampled_from([5.0, 12.25, 100.0]),
        ),
        min_size=1,
        max_size=40,
    ),
    day=st.integers(0, 20),
)
def test_customer_facts_never_see_the_future(rows, day):
    log = log_from(rows)
    as_of = T0 + day * DAY
    pd.testing.assert_frame_equal(
        customer_facts(log, as_of, CASES),
        customer_facts(log.until(as_of), as_of, CASES),
    )


# The effect report.

CHURN = TaskConfig(
    "churn", "absent", Match(events=("repeat_purchase",)), 30 * DAY, SnapshotRule(every=14 * DAY)
)
ESCALATION = TaskConfig(
    "escalation", "occurs", Match(events=("escalated",)), 14 * DAY, SnapshotRule(prefix=8)
)
TASKS = {"churn": CHURN, "escalation": ESCALATION}

CONTACTED = [f"k{i}" for i in range(10)]  # k8 and k9 churn: 2 of 10
CONTROL = [f"h{i}" for i in range(10)]  # h4 to h9 churn: 6 of 10
REPORT_LOG = log_from(
    [(c, -5, "order_placed", 80.0) for c in CONTACTED + CONTROL]
    + [(c, 10, "repeat_purchase", 40.0) for c in CONTACTED[:8] + CONTROL[:4]]
    + [
        ("w", 15, "order_placed", 60.0),  # decided on day 20: its horizon runs past the data
        ("e1", -3, "escalated"),  # already escalated when decided: excluded
        ("e2", -2, "ticket_opened"),
        ("e2", 3, "escalated"),  # contacted, escalated all the same
        ("e3", -2, "ticket_opened"),  # held out, did not escalate
        ("z", 45, "delivered"),  # the data end on day 45
    ]
)


def decision(customer: str, action: str, task: str, made: str, day: float) -> dict:
    return {
        "customer_id": customer,
        "action": action,
        "task": task,
        "decision": made,
        "as_of": T0 + day * DAY,
    }


DECISIONS = pd.DataFrame(
    [decision(c, "discount", "churn", "contact", 0) for c in CONTACTED]
    + [decision(c, "discount", "churn", "holdout", 0) for c in CONTROL]
    + [
        decision("h9", "discount", "churn", "holdout", 1),  # held out again: counted once
        decision("h0", "discount", "churn", "holdout", 2),
        decision("ghost", "discount", "churn", "contact", 0),  # not in the log: missing
        decision("s1", "discount", "churn", "suppressed", 0),  # never reached: ignored
        decision("w", "discount", "churn", "contact", 20),
        decision("e1", "follow_up", "escalation", "contact", 0),
        decision("e2", "follow_up", "escalation", "contact", 0),
        decision("e3", "follow_up", "escalation", "holdout", 0),
    ]
)


def test_effect_report_by_hand():
    report = effect_report(DECISIONS, REPORT_LOG, TASKS, as_of=T0 + 60 * DAY)
    assert list(report.columns) == list(REPORT_COLUMNS)
    discount, follow_up = (row for _, row in report.iterrows())
    assert discount[["action", "task", "contacted_n", "holdout_n"]].tolist() == [
        "discount",
        "churn",
        10,
        10,
    ]
    assert discount["contacted_rate"] == pytest.approx(0.2)
    assert discount["holdout_rate"] == pytest.approx(0.6)
    assert discount["difference"] == pytest.approx(-0.4)
    low, high = newcombe_interval(np.array([2]), np.array([10]), np.array([6]), np.array([10]))
    assert discount["difference_low"] == pytest.approx(low[0])
    assert discount["difference_high"] == pytest.approx(high[0])
    assert discount["difference_low"] < -0.4 < discount["difference_high"]
    # w waits: the data end on day 45, before its horizon closes on day 50.
    assert discount[["waiting", "missing", "excluded"]].tolist() == [1, 1, 0]

    assert follow_up[["action", "contacted_n", "holdout_n", "excluded"]].tolist() == [
        "follow_up",
        1,
        1,
        1,
    ]
    assert (follow_up["contacted_rate"], follow_up["holdout_rate"]) == (1.0, 0.0)


def test_decisions_whose_horizon_is_open_are_waiting():
    stored = DECISIONS.assign(as_of=DECISIONS["as_of"].map(lambda t: t.isoformat()))  # as text
    report = effect_report(stored, REPORT_LOG, TASKS, as_of=T0 + 20 * DAY)
    discount = report.set_index("action").loc["discount"]
    assert discount["waiting"] == 10 + 10 + 1 + 1  # everyone, the unknown customer included
    assert (discount["contacted_n"], discount["holdout_n"]) == (0, 0)
    assert np.isnan(discount["contacted_rate"]) and np.isnan(discount["difference"])
    assert np.isnan(discount["difference_low"])
    follow_up = report.set_index("action").loc["follow_up"]
    assert (follow_up["contacted_n"], follow_up["waiting"]) == (1, 0)


def test_effect_report_names_what_it_lacks():
    with pytest.raises(ValueError, match="not in the config"):
        effect_report(DECISIONS, REPORT_LOG, {"churn": CHURN}, as_of=T0 + 60 * DAY)
    with pytest.raises(ValueError, match="decision"):
        effect_report(DECISIONS.drop(columns="decision"), REPORT_LOG, TASKS, as_of=T0)
    empty = effect_report(DECISIONS.iloc[:0], REPORT_LOG, TASKS, as_of=T0)
    assert empty.empty and list(empty.columns) == list(REPORT_COLUMNS)


def test_measured_customers_match_the_effect_report_and_carry_their_risk():
    with_risk = DECISIONS.assign(risk=np.linspace(0.9, 0.1, len(DECISIONS)))
    tables = measured(with_risk, REPORT_LOG, TASKS, as_of=T0 + 60 * DAY)
    report = effect_report(with_risk, REPORT_LOG, TASKS, as_of=T0 + 60 * DAY).set_index("action")
    for action, rows in tables.items():
        assert rows["contacted"].sum() == report.loc[action, "contacted_n"]
        assert (~rows["contacted"]).sum() == report.loc[action, "holdout_n"]
        positive = rows.loc[rows["contacted"], "positive"].mean()
        assert positive == pytest.approx(report.loc[action, "contacted_rate"])
    discount = tables["discount"]
    assert discount["risk"].between(0.1, 0.9).all()


def test_uplift_evidence_ranks_the_same_customers_by_uplift_and_by_risk():
    discount = measured(DECISIONS.assign(risk=0.5), REPORT_LOG, TASKS, as_of=T0 + 60 * DAY)[
        "discount"
    ]
    # Churn (the task's outcome) is what the discount should reduce: contacted ones who stayed
    # (no churn) rank first by an uplift that knows it.
    knows = np.where(discount["contacted"] & ~discount["positive"], 1.0, 0.0)
    evidence = uplift_evidence(discount, knows, goal="reduce")
    assert evidence["rows"] == 20
    assert evidence["realised"]["effect"] == pytest.approx(0.4)  # 80 % stay against 40 %
    assert evidence["qini"] > evidence["risk_qini"]
    assert len(evidence["deciles"]) == len(evidence["risk_deciles"]) == 10


def test_the_outbox_decisions_of_an_action_are_an_experiment_of_first_decisions():
    arms = arms_from_decisions(DECISIONS, "discount")
    first = dict(zip(arms.customer_ids, zip(arms.treated, arms.moments, strict=True), strict=True))
    assert "s1" not in first  # suppressed: in neither arm
    assert "e1" not in first  # another action's
    assert first["k0"][0] and not first["h0"][0]
    assert first["h0"][1] == (T0 + 0 * DAY).value  # held out on day 0 and day 2: the first
    assert len(arms.customer_ids) == len(set(arms.customer_ids))
    with pytest.raises(ValueError, match="no contact or holdout decision of the action 'x'"):
        arms_from_decisions(DECISIONS, "x")
