"""Point-in-time labels on a hand-computed log, and critical path analysis on the simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.analysis.critical import critical_path_analysis
from journeyguard.features.config.model import Match, SnapshotRule, TaskConfig
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.labels import label_at, task_snapshots, time_split
from journeyguard.features.sources.simulate import simulate
from journeyguard.features.stats import newcombe_interval

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2024-01-10", tz="UTC")


def task(label: str, horizon_days: int = 5, prefix: int | None = None) -> TaskConfig:
    snapshots = SnapshotRule(prefix=prefix) if prefix else SnapshotRule(every=pd.Timedelta(days=7))
    return TaskConfig("t", label, Match(events=("escalated",)), horizon_days * DAY, snapshots)


def log_from(rows: list[tuple[str, float, str]]) -> EventLog:
    frame = pd.DataFrame(
        [(j, T0 + d * DAY, e) for j, d, e in rows], columns=["customer_id", "timestamp", "event"]
    )
    return log_from_frame(frame)


# Days relative to as_of = T0; the data ends at day 30 (journey z).
TINY = log_from(
    [
        ("a", -3, "open"),
        ("a", 2, "escalated"),  # inside the window: positive
        ("b", -3, "open"),
        ("b", 6, "escalated"),  # after the horizon: negative
        ("c", -3, "open"),
        ("c", 0, "escalated"),  # at as_of: already happened
        ("d", -1, "open"),
        ("d", 5, "escalated"),  # exactly at as_of + horizon: positive
        ("e", 1, "open"),
        ("e", 2, "escalated"),  # starts after as_of: not seen
        ("z", -9, "open"),
        ("z", 30, "close"),
    ]
)


def by_journey(outcomes, log: EventLog, field: str) -> dict[str, bool]:
    values = getattr(outcomes, field)
    return {log.journey_ids[j]: bool(v) for j, v in zip(outcomes.journeys, values, strict=True)}


def test_occurs_labels_by_hand():
    outcomes = label_at(TINY, task("occurs"), T0)
    assert by_journey(outcomes, TINY, "positive") == {
        "a": True,
        "b": False,
        "c": False,
        "d": True,
        "z": False,
    }
    assert by_journey(outcomes, TINY, "already_happened")["c"] is True
    assert by_journey(outcomes, TINY, "labelled") == {
        "a": True,
        "b": True,
        "c": False,
        "d": True,
        "z": True,
    }


def test_absent_labels_are_the_complement_and_never_already_happened():
    outcomes = label_at(TINY, task("absent"), T0)
    assert by_journey(outcomes, TINY, "positive") == {
        "a": False,
        "b": True,
        "c": True,
        "d": False,
        "z": True,
    }
    assert not outcomes.already_happened.any()


def test_horizon_past_the_end_of_the_data_is_censored_not_negative():
    outcomes = label_at(TINY, task("occurs", horizon_days=25), T0)
    assert not outcomes.censored.any()
    outcomes = label_at(TINY, task("occurs", horizon_days=21), T0 + 10 * DAY)
    assert outcomes.censored.all() and not outcomes.labelled.any()


def test_newcombe_interval_matches_his_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II, example (a): 56/70 - 48/80,
    # method 10 gives 0.0524 to 0.3339.
    low, high = newcombe_interval(np.array([56]), np.array([70]), np.array([48]), np.array([80]))
    assert (round(low[0], 4), round(high[0], 4)) == (0.0524, 0.3339)


@pytest.fixture(scope="module")
def simulation():
    return simulate(20_000, seed=11)


def planted(truth: dict, task_name: str) -> set[str]:
    """The steps the simulator made raise the task's risk, from its written truth."""
    effects = truth[task_name]["effects"]
    names = set()
    for key, effect in effects.items():
        if effect > 0:
            names |= {part.split("<=")[0] for part in key.split(">")}
    return names & set(truth["steps"])


def test_planted_churn_steps_top_the_ranking(simulation):
    log = log_from_frame(simulation.events)
    churn = TaskConfig(
        "churn",
        "absent",
        Match(events=("repeat_purchase",)),
        60 * DAY,
        SnapshotRule(every=14 * DAY),
    )
    result = critical_path_analysis(log, churn)
    top = result["steps"]["item"].head(4).tolist()
    assert set(top) <= planted(simulation.truth, "churn"), top
    assert result["steps"]["item"].iloc[0] == "refund_denied"  # the largest planted effect
    divergence = {row["step"] for row in result["paths"]["divergence"]}
    assert "delivery_delayed" in divergence  # where churned journeys part from retained ones
    difference = result["steps"].set_index("item")["difference"]
    assert difference["onboarding_completed"] < 0  # planted as protective


def test_planted_escalation_causes_top_the_ranking(simulation):
    log = log_from_frame(simulation.events)
    escalation = TaskConfig(
        "escalation", "occurs", Match(events=("escalated",)), 14 * DAY, SnapshotRule(prefix=8)
    )
    result = critical_path_analysis(log, escalation)
    assert set(result["steps"]["item"].head(2)) == {"ticket_reopened", "ticket_reassigned"}
    assert result["transitions"]["item"].iloc[0] == "ticket_reassigned → ticket_reassigned"
    assert "ticket_reassigned … ticket_reassigned" in set(result["sequences"]["item"].head(3))
    assert result["excluded"]["already_happened"] > 0


@pytest.mark.slow
def test_analysis_sees_nothing_after_as_of_but_the_horizon(simulation):
    """Events after as_of + horizon, and exposures after as_of, cannot change the analysis."""
    events = simulation.events
    churn = TaskConfig(
        "churn",
        "absent",
        Match(events=("repeat_purchase",)),
        60 * DAY,
        SnapshotRule(every=14 * DAY),
    )
    as_of = pd.Timestamp("2025-08-01", tz="UTC")
    base = critical_path_analysis(log_from_frame(events), churn, as_of)
    late = events[events["timestamp"] > as_of + 60 * DAY]
    customers = events["customer_id"].drop_duplicates().sample(500, random_state=1)
    extra = pd.DataFrame(
        {
            "customer_id": customers,
            "timestamp": as_of + 61 * DAY + pd.Timedelta(minutes=1),
            "event": "repeat_purchase",
        }
    )
    exposure_after = pd.DataFrame(
        {
            "customer_id": customers,
            "timestamp": as_of + pd.Timedelta(hours=1),
            "event": "refund_denied",
        }
    )
    changed = pd.concat([events.drop(index=late.index), extra])
    again = critical_path_analysis(log_from_frame(changed), churn, as_of)
    pd.testing.assert_frame_equal(base["steps"], again["steps"])
    assert (base["journeys"], base["positives"]) == (again["journeys"], again["positives"])
    # A refund denied after as_of is part of the outcome window, never an exposure.
    shifted = pd.concat([events, exposure_after])
    third = critical_path_analysis(log_from_frame(shifted), churn, as_of)
    pd.testing.assert_frame_equal(base["steps"], third["steps"])


def test_prefix_snapshots_follow_each_of_the_first_events():
    log = log_from(
        [("a", 0, "open"), ("a", 1, "x"), ("a", 1, "y"), ("a", 3, "z"), ("b", 2, "open")]
    )
    snapshots = task_snapshots(log, task("occurs", prefix=3))
    seen = sorted(
        zip(snapshots.customer_ids, (snapshots.as_of - T0.value) // DAY.value, strict=True)
    )
    # a's 2nd and 3rd events share a time: one snapshot there, not two identical ones.
    assert seen == [("a", 0), ("a", 1), ("b", 2)]


def test_calendar_snapshots_see_every_journey_begun_by_each_grid_time():
    log = log_from([("a", 0, "open"), ("a", 20, "x"), ("b", 9, "open"), ("b", 30, "y")])
    snapshots = task_snapshots(log, task("absent"))  # every 7 days from the first day
    grid = sorted(set((snapshots.as_of - T0.value) // DAY.value))
    assert grid == [7, 14, 21, 28]
    at_7 = snapshots.customer_ids[(snapshots.as_of - T0.value) // DAY.value == 7]
    assert list(at_7) == ["a"]


def test_time_split_trains_only_on_windows_closed_before_the_test_period():
    as_of = np.array([T0.value + d * DAY.value for d in (0, 4, 5, 10, 12)])
    split = time_split(as_of, task("occurs", horizon_days=5), T0 + 10 * DAY)
    assert split.tolist() == ["train", "train", "gap", "test", "test"]
