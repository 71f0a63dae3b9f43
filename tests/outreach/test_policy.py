"""The outreach policy on tiny hand-made tables, and its invariants on random ones."""

from __future__ import annotations

import dataclasses
import datetime
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.config.model import ActionConfig, OutreachConfig
from journeyguard.outreach.policy import (
    DECISION_COLUMNS,
    decide,
    decision_key,
    holdout_share_of,
    idempotency_key,
    in_holdout,
    summary,
    window_start,
)

AS_OF = pd.Timestamp("2024-03-01 06:00", tz="UTC")
DAY = pd.Timedelta(days=1)
REPO = Path(__file__).resolve().parents[2]

DISCOUNT = ActionConfig(
    name="discount",
    task="churn",
    min_risk=0.6,
    cost=10.0,
    min_value=100.0,
    blocked_by_open_case=True,
    priority=2,
    message={"offer": "10% off your next order"},
)
FOLLOW_UP = ActionConfig(
    name="follow_up", task="escalation", min_risk=0.3, requires_open_case=True, priority=1
)


def outreach(*actions: ActionConfig, **limits) -> OutreachConfig:
    """Settings with the given actions; no holdout unless asked, so rules read plainly."""
    chosen = actions or (DISCOUNT, FOLLOW_UP)
    return OutreachConfig(actions={a.name: a for a in chosen}, **{"holdout": 0.0, **limits})


def scores(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """A score table as `score_log` makes it, from (customer_id, task, risk) rows."""
    frame = pd.DataFrame(rows, columns=["customer_id", "task", "risk"])
    return frame.assign(
        as_of=AS_OF,
        band="high",
        reason_1="refund denied 2 times",
        reason_2="",
        reason_3=None,
        contribution_1=0.5,
        contribution_2=0.1,
        contribution_3=0.0,
        model_version=7,
    )


def facts(rows: dict[str, tuple[float, bool]]) -> pd.DataFrame:
    """Customer facts from {customer_id: (value, open_case)}."""
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["value", "open_case"])
    return frame.rename_axis("customer_id")


def run(table, known, config, *, nearest_contact=None, opted_out=frozenset(), **options):
    return decide(
        table,
        known,
        config,
        as_of=options.pop("as_of", AS_OF),
        nearest_contact=nearest_contact or {},
        opted_out=opted_out,
        **options,
    )


def by_customer(decisions: pd.DataFrame) -> dict[str, tuple[str, str, str]]:
    return {
        row.customer_id: (row.action, row.decision, row.reason)
        for row in decisions.itertuples(index=False)
    }


def test_rules_by_hand():
    table = scores(
        [
            ("rich", "churn", 0.82),  # valuable, likely to leave: discount
            ("poor", "churn", 0.95),  # spent too little for a discount: no decision
            ("calm", "churn", 0.40),  # below every threshold: no decision
            ("open", "churn", 0.90),  # discount, but a case is open
            ("open", "escalation", 0.35),  # ... and the follow-up needs one: follow-up
            ("stuck", "churn", 0.99),  # an open case and no follow-up risk: blocked
            ("fine", "escalation", 0.90),  # no open case: no follow-up
        ]
    )
    known = facts(
        {
            "rich": (240.0, False),
            "poor": (20.0, False),
            "calm": (500.0, False),
            "open": (300.0, True),
            "stuck": (300.0, True),
            "fine": (0.0, False),
        }
    )
    decisions = run(table, known, outreach())
    assert list(decisions.columns) == list(DECISION_COLUMNS)
    assert by_customer(decisions) == {
        "open": ("follow_up", "contact", "escalation risk 35 % >= 30 %; a case is open"),
        "stuck": ("discount", "suppressed", "an open case blocks discount"),
        "rich": ("discount", "contact", "churn risk 82 % >= 60 %; spend 240.00 >= 100.00"),
    }
    # Rank order: priority first, then risk.
    assert decisions["customer_id"].tolist() == ["open", "stuck", "rich"]
    assert decisions.set_index("customer_id")["cost"].to_dict() == {
        "open": 0.0,
        "stuck": 0.0,
        "rich": 10.0,
    }
    assert summary(decisions, n_scored=6) == {
        "scored": 6,
        "selected": 3,
        "contact": 2,
        "holdout": 0,
        "suppressed": 1,
    }


def test_payload_carries_the_message_and_the_reasons():
    decisions = run(
        scores([("rich", "churn", 0.823456)]), facts({"rich": (240.0, False)}), outreach()
    )
    payload = decisions.loc[0, "payload"]
    assert payload == {
        "offer": "10% off your next order",
        "customer_id": "rich",
        "action": "discount",
        "campaign": "retention",
        "task": "churn",
        "risk": 0.8235,
        "band": "high",
        "reasons": ["refund denied 2 times"],
        "model_version": 7,
        "as_of": "2024-03-01T06:00:00+00:00",
        "window_start": "2024-03-01T00:00:00+00:00",
    }
    assert decisions.loc[0, "idempotency_key"].startswith("msg_")


def test_the_higher_risk_wins_between_actions_of_one_priority():
    a = ActionConfig(name="a", task="churn", min_risk=0.1, priority=1)
    b = ActionConfig(name="b", task="escalation", min_risk=0.1, priority=1)
    table = scores([("x", "churn", 0.3), ("x", "escalation", 0.7)])
    decisions = run(table, facts({}), outreach(a, b))
    assert decisions[["customer_id", "action", "risk"]].values.tolist() == [["x", "b", 0.7]]


def test_cooldown_suppresses_recent_contacts_only():
    table = scores([("recent", "churn", 0.9), ("long_ago", "churn", 0.9), ("new", "churn", 0.9)])
    known = facts({c: (200.0, False) for c in ("recent", "long_ago", "new")})
    contacted = {
        "recent": datetime.datetime(2024, 2, 27, 6, 0),  # naive: UTC
        "long_ago": (AS_OF - 15 * DAY).to_pydatetime(),
    }
    decisions = run(table, known, outreach(DISCOUNT), nearest_contact=contacted)
    assert by_customer(decisions) == {
        "recent": ("discount", "suppressed", "contacted 3 days ago; cooldown 14 days"),
        "long_ago": ("discount", "contact", "churn risk 90 % >= 60 %; spend 200.00 >= 100.00"),
        "new": ("discount", "contact", "churn risk 90 % >= 60 %; spend 200.00 >= 100.00"),
    }


def test_cooldown_looks_after_as_of_too():
    # A window run after a later one (a backfill): the later contact is as near as an earlier.
    table = scores([("soon_after", "churn", 0.9), ("long_after", "churn", 0.9)])
    known = facts({c: (200.0, False) for c in ("soon_after", "long_after")})
    contacted = {"soon_after": AS_OF + 6 * DAY, "long_after": AS_OF + 15 * DAY}
    decisions = run(table, known, outreach(DISCOUNT), nearest_contact=contacted)
    assert by_customer(decisions) == {
        "soon_after": (
            "discount",
            "suppressed",
            "contacted 6 days after this as_of; cooldown 14 days",
        ),
        "long_after": ("discount", "contact", "churn risk 90 % >= 60 %; spend 200.00 >= 100.00"),
    }


def test_opted_out_is_never_contacted_and_outweighs_other_reasons():
    table = scores([("gone", "churn", 0.9), ("stays", "churn", 0.8)])
    known = facts({"gone": (200.0, True), "stays": (200.0, False)})
    decisions = run(
        table,
        known,
        outreach(DISCOUNT),
        opted_out={"gone"},
        nearest_contact={"gone": AS_OF - DAY},
    )
    assert by_customer(decisions)["gone"] == ("discount", "suppressed", "opted out")
    assert by_customer(decisions)["stays"][1] == "contact"


def test_count_budget_takes_the_best_ranked_and_counts_what_was_spent():
    table = scores([(f"c{i}", "churn", 0.9 - i / 100) for i in range(6)])
    known = facts({f"c{i}": (200.0, False) for i in range(6)})
    decisions = run(table, known, outreach(DISCOUNT, budget_count=4), spent=(1, 10.0))
    contacted = decisions.loc[decisions["decision"] == "contact", "customer_id"].tolist()
    assert contacted == ["c0", "c1", "c2"]
    over = decisions[decisions["decision"] == "suppressed"]
    assert over["customer_id"].tolist() == ["c3", "c4", "c5"]
    assert set(over["reason"]) == {
        "over the daily budget (4 messages; 1 message and 10.00 already used)"
    }


def test_rank_by_value_at_risk_gives_the_budget_to_what_is_most_at_stake():
    table = scores([("risky", "churn", 0.9), ("rich", "churn", 0.7), ("both", "churn", 0.8)])
    table["value_at_risk"] = [0.9 * 10.0, 0.7 * 500.0, 0.8 * 100.0]
    known = facts({c: (200.0, False) for c in ("risky", "rich", "both")})
    by_value = dataclasses.replace(DISCOUNT, rank_by="value_at_risk")
    ranked = run(table, known, outreach(by_value, budget_count=2))
    assert ranked["customer_id"].tolist() == ["rich", "both", "risky"]
    assert ranked["decision"].tolist() == ["contact", "contact", "suppressed"]
    # The same scores ranked by risk, and by value at risk where none is known: by risk.
    assert run(table, known, outreach(DISCOUNT))["customer_id"].tolist() == [
        "risky",
        "both",
        "rich",
    ]
    unknown = table.assign(value_at_risk=float("nan"))
    assert run(unknown, known, outreach(by_value))["customer_id"].tolist() == [
        "risky",
        "both",
        "rich",
    ]


def test_money_budget_counts_what_was_spent_and_is_a_prefix_of_the_ranking():
    cheap = ActionConfig(name="cheap", task="escalation", min_risk=0.1, cost=1.0, priority=3)
    table = scores([("a", "churn", 0.9), ("b", "churn", 0.8), ("c", "escalation", 0.9)])
    known = facts({"a": (200.0, False), "b": (200.0, False), "c": (0.0, False)})
    decisions = run(table, known, outreach(DISCOUNT, cheap, budget_money=25.0), spent=(0, 6.0))
    # 19.00 left: a fits; b does not, and c, though cheap enough, must not jump the queue.
    assert {c: by_customer(decisions)[c][1] for c in "abc"} == {
        "a": "contact",
        "b": "suppressed",
        "c": "suppressed",
    }
    assert by_customer(decisions)["b"][2] == (
        "over the daily budget (25.00 in money; 6.00 already used)"
    )
    assert decisions["cost"].sum() == 10.0


def test_holdout_takes_a_budget_place_but_costs_nothing():
    ids = [f"c{i}" for i in range(200)]
    table = scores([(c, "churn", 0.9 - i / 1000) for i, c in enumerate(ids)])
    known = facts(dict.fromkeys(ids, (200.0, False)))
    config = outreach(DISCOUNT, budget_count=50, holdout=0.2)
    decisions = run(table, known, config)
    chosen = decisions[decisions["decision"].isin(["contact", "holdout"])]
    assert chosen["customer_id"].tolist() == ids[:50]  # one ranked prefix for both groups
    control = chosen["decision"] == "holdout"
    assert control.to_numpy().tolist() == in_holdout(ids[:50], "retention", 0.2).tolist()
    assert 0 < control.sum() < 50
    assert (chosen.loc[control, "cost"] == 0.0).all()
    assert chosen.loc[control, "idempotency_key"].isna().all()
    assert chosen.loc[control, "payload"].isna().all()
    assert set(chosen.loc[control, "reason"]) == {"control group: 20 % of customers, not contacted"}


def test_holdout_is_close_to_its_share_and_stable_across_row_order():
    ids = [f"customer-{i}" for i in range(10_000)]
    members = in_holdout(ids, "retention", 0.10)
    assert abs(members.mean() - 0.10) < 0.015  # five standard errors
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled = in_holdout([ids[i] for i in order], "retention", 0.10)
    assert (shuffled == members[order]).all()
    shares = holdout_share_of(ids, "retention")
    assert ((shares >= 0) & (shares < 1)).all()
    assert (holdout_share_of(ids, "winback") != shares).mean() > 0.99  # campaigns differ


def test_holdout_is_stable_across_processes():
    code = (
        "from journeyguard.outreach.policy import holdout_share_of;"
        "print(repr(holdout_share_of(['a', 'b', '42'], 'retention').tolist()))"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=environment, capture_output=True, text=True
    )
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip() == repr(holdout_share_of(["a", "b", "42"], "retention").tolist())


def test_window_start_is_on_the_epoch_grid():
    assert window_start(AS_OF, DAY) == pd.Timestamp("2024-03-01", tz="UTC")
    paris = pd.Timestamp("2024-03-01 00:30", tz="Europe/Paris")  # 23:30 UTC the day before
    assert window_start(paris, DAY) == pd.Timestamp("2024-02-29", tz="UTC")
    assert window_start(AS_OF, pd.Timedelta(hours=4)) == pd.Timestamp("2024-03-01 04:00", tz="UTC")
    week = window_start(AS_OF, 7 * DAY)
    assert week.value % (7 * DAY).value == 0 and week <= AS_OF < week + 7 * DAY
    with pytest.raises(ValueError, match="positive"):
        window_start(AS_OF, pd.Timedelta(0))


def test_keys_are_deterministic_and_name_their_inputs():
    table = scores([(f"c{i}", "churn", 0.7 + i / 100) for i in range(20)])
    known = facts({f"c{i}": (200.0, False) for i in range(20)})
    config = outreach(DISCOUNT, holdout=0.3)
    first = run(table, known, config)
    again = run(table.sample(frac=1.0, random_state=1), known.iloc[::-1], config)
    pd.testing.assert_frame_equal(first, again)
    later_that_day = run(table, known, config, as_of=AS_OF + pd.Timedelta(hours=5))
    assert later_that_day["decision_key"].tolist() == first["decision_key"].tolist()
    assert first["decision_key"].is_unique
    contact_keys = first["idempotency_key"].dropna()
    assert contact_keys.is_unique and len(contact_keys) == (first["decision"] == "contact").sum()
    start = window_start(AS_OF, DAY)
    for row in first.itertuples(index=False):
        assert row.decision_key == decision_key("retention", row.customer_id, start)
        if row.decision == "contact":
            expected = idempotency_key("retention", row.customer_id, row.action, start)
            assert row.idempotency_key == expected
    assert idempotency_key("r", "c", "discount", start) != idempotency_key("r", "c", "other", start)
    assert decision_key("r", "c", start) != decision_key("r", "c", start + DAY)
    assert decision_key("a:b", "c", start) != decision_key("a", "b:c", start)


def test_no_actions_or_no_scores_give_an_empty_table_of_the_right_shape():
    empty = run(scores([]), facts({}), outreach())
    assert list(empty.columns) == list(DECISION_COLUMNS) and empty.empty
    none = run(scores([("x", "churn", 0.9)]), facts({}), OutreachConfig())
    assert none.empty
    assert summary(none, n_scored=1)["scored"] == 1


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="twice"):
        run(scores([("x", "churn", 0.9), ("x", "churn", 0.8)]), facts({}), outreach())
    with pytest.raises(ValueError, match="open_case"):
        run(scores([]), pd.DataFrame({"value": []}), outreach())


# Property tests: random customers, scores, facts and settings.

TASKS = ("churn", "escalation")


@st.composite
def policy_inputs(draw):
    n = draw(st.integers(0, 25))
    ids = [f"c{i}" for i in range(n)]
    rows = [(c, t, draw(st.floats(0, 1))) for c in ids for t in TASKS if draw(st.booleans())]
    known = {
        c: (draw(st.sampled_from([0.0, 50.0, 100.0, 250.5])), draw(st.booleans()))
        for c in ids
        if draw(st.booleans())
    }
    actions = [
        ActionConfig(
            name=f"a{k}",
            task=draw(st.sampled_from(TASKS)),
            min_risk=draw(st.floats(0, 1)),
            cost=draw(st.sampled_from([0.0, 0.1, 2.5, 10.0])),
            min_value=draw(st.sampled_from([None, 0.0, 100.0])),
            requires_open_case=draw(st.booleans()),
            blocked_by_open_case=draw(st.booleans()),
            priority=draw(st.integers(1, 3)),
        )
        for k in range(draw(st.integers(1, 3)))
    ]
    config = outreach(
        *actions,
        holdout=draw(st.sampled_from([0.0, 0.1, 0.5])),
        budget_count=draw(st.none() | st.integers(1, 10)),
        budget_money=draw(st.none() | st.sampled_from([0.0, 5.0, 20.3, 100.0])),
    )
    contacted = {c: AS_OF - draw(st.integers(0, 30)) * DAY for c in ids if draw(st.booleans())}
    opted_out = frozenset(c for c in ids if draw(st.integers(0, 4)) == 0)
    spent = (draw(st.integers(0, 3)), draw(st.sampled_from([0.0, 2.5, 30.0])))
    return scores(rows), facts(known), config, contacted, opted_out, spent


def qualifying_customers(table: pd.DataFrame, known: pd.DataFrame, config) -> set[str]:
    """Brute force: customers that qualify for at least one action."""
    found = set()
    for row in table.itertuples(index=False):
        value, open_case = known.loc[row.customer_id] if row.customer_id in known.index else (0, 0)
        for action in config.actions.values():
            if (
                row.task == action.task
                and row.risk >= action.min_risk
                and (action.min_value is None or value >= action.min_value)
                and (open_case or not action.requires_open_case)
            ):
                found.add(row.customer_id)
    return found


@pytest.mark.slow
@settings(deadline=None, max_examples=100)
@given(policy_inputs())
def test_policy_invariants(inputs):
    table, known, config, contacted, opted_out, spent = inputs
    decisions = run(
        table, known, config, nearest_contact=contacted, opted_out=opted_out, spent=spent
    )
    assert decisions["customer_id"].is_unique
    assert set(decisions["customer_id"]) == qualifying_customers(table, known, config)
    assert decisions["decision_key"].is_unique
    reached = decisions["decision"].isin(["contact", "holdout"])
    contact = decisions[decisions["decision"] == "contact"]
    if config.budget_count is not None:
        assert spent[0] + reached.sum() <= max(config.budget_count, spent[0])
    if config.budget_money is not None:
        assert spent[1] + contact["cost"].sum() <= max(config.budget_money, spent[1]) + 1e-9
    assert not set(contact["customer_id"]) & opted_out
    assert all(
        AS_OF - contacted[c] >= config.cooldown for c in contact["customer_id"] if c in contacted
    )
    assert (decisions.loc[decisions["decision"] != "contact", "cost"] == 0).all()
    assert (decisions["idempotency_key"].notna() == (decisions["decision"] == "contact")).all()
    over_budget = decisions["reason"].str.startswith("over the daily budget").to_numpy()
    if over_budget.any() and reached.any():  # the budget is a prefix of the ranking
        assert np.flatnonzero(reached.to_numpy()).max() < np.flatnonzero(over_budget).min()


def test_rank_by_uplift_gives_the_budget_to_whom_the_action_helps_and_says_how_much():
    table = scores([("doomed", "churn", 0.95), ("helped", "churn", 0.7), ("fine", "churn", 0.65)])
    known = facts({c: (200.0, False) for c in ("doomed", "helped", "fine")})
    by_gain = dataclasses.replace(DISCOUNT, rank_by="uplift")
    gains = {"discount": pd.Series({"doomed": 0.0, "helped": 0.12, "fine": 0.01})}
    decisions = run(table, known, outreach(by_gain, budget_count=1), gains=gains)
    assert decisions["customer_id"].tolist() == ["helped", "fine", "doomed"]
    assert decisions["decision"].tolist() == ["contact", "suppressed", "suppressed"]
    assert decisions["reason"].iloc[0] == (
        "churn risk 70 % >= 60 %; spend 200.00 >= 100.00; "
        "expected gain +12.0 points of the good outcome"
    )


def test_rank_by_uplift_value_weighs_the_gain_by_what_the_customer_is_worth_less_the_cost():
    table = scores([("small", "churn", 0.8), ("large", "churn", 0.8)])
    table["expected_value"] = [100.0, float("nan")]  # unknown: the spend so far counts
    known = facts({"small": (150.0, False), "large": (1_000.0, False)})
    by_value = dataclasses.replace(DISCOUNT, rank_by="uplift_value")
    gains = {"discount": pd.Series({"small": 0.2, "large": 0.05})}
    decisions = run(table, known, outreach(by_value), gains=gains)
    assert decisions["customer_id"].tolist() == ["large", "small"]  # 40.00 before 10.00
    assert (
        decisions["reason"]
        .iloc[0]
        .endswith(
            "expected gain 40.00 (+5.0 points of the good outcome x value 1000.00 - cost 10.00)"
        )
    )


def test_without_an_uplift_champion_an_action_ranks_by_risk_and_says_so():
    table = scores([("a", "churn", 0.9), ("b", "churn", 0.7)])
    known = facts({"a": (200.0, False), "b": (200.0, False)})
    by_gain = dataclasses.replace(DISCOUNT, rank_by="uplift")
    decisions = run(table, known, outreach(by_gain))
    assert decisions["customer_id"].tolist() == ["a", "b"]
    assert (
        decisions["reason"]
        .str.endswith("; ranked by risk: discount has no uplift champion yet")
        .all()
    )


def test_an_action_ranked_by_gain_draws_its_control_group_from_everyone_eligible():
    ids = [f"c{i}" for i in range(300)]
    table = scores([(c, "churn", 0.9) for c in ids])
    known = facts(dict.fromkeys(ids, (200.0, False)))
    gains = {"discount": pd.Series({c: 1.0 - i / 1000 for i, c in enumerate(ids)})}
    by_gain = dataclasses.replace(DISCOUNT, rank_by="uplift")
    decisions = run(table, known, outreach(by_gain, budget_count=20, holdout=0.2), gains=gains)
    control = decisions.loc[decisions["decision"] == "holdout", "customer_id"]
    # The control group is the campaign's hash over all 300, not over the top 20 only.
    expected = [c for c, held in zip(ids, in_holdout(ids, "retention", 0.2), strict=True) if held]
    assert sorted(control) == sorted(expected) and len(control) > 20
    contacted = decisions.loc[decisions["decision"] == "contact", "customer_id"].tolist()
    assert contacted == [c for c in ids if c not in set(expected)][:20]
    assert "spans the whole ranking" in decisions.loc[control.index[0], "reason"]
