"""Who a task is for (features.population) and what a case is (features.cases): hand-computed
logs, the simulator against plain pandas, and no look-ahead."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.cases import open_cases
from journeyguard.features.config.model import (
    Match,
    Population,
    ResolutionKpi,
    SnapshotRule,
    TaskConfig,
)
from journeyguard.features.config.reader import parse_config
from journeyguard.features.dataset import build_dataset
from journeyguard.features.errors import ConfigError
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.population import eligibility, lapsed_list
from journeyguard.features.sources.simulate import simulate

T0 = pd.Timestamp("2024-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
TICKETS = ResolutionKpi(("opened", "reopened"), ("resolved",), case_column="case_id")


def log_from(rows: list[tuple]) -> EventLog:
    """A log from (customer_id, day, event) or (customer_id, day, event, case_id) rows."""
    records = [(r[0], T0 + r[1] * DAY, r[2], r[3] if len(r) > 3 else None) for r in rows]
    frame = pd.DataFrame(records, columns=["customer_id", "timestamp", "event", "case_id"])
    return log_from_frame(frame)


def task(population: Population | None) -> TaskConfig:
    match, snapshots = Match(events=("purchase",)), SnapshotRule(every=datetime.timedelta(days=7))
    return TaskConfig("t", "absent", match, datetime.timedelta(days=30), snapshots, population)


def by_customer(snapshots: Snapshots, values: np.ndarray) -> dict[str, object]:
    return dict(zip(snapshots.customer_ids.tolist(), values.tolist(), strict=True))


ACTIVITY = log_from(
    [
        ("a", 0, "purchase"),
        ("a", 95, "login"),
        ("b", 0, "purchase"),
        ("c", 50, "purchase"),
        ("c", 99, "login"),
        ("d", 10, "login"),
        ("e", 120, "purchase"),  # after as_of: not seen
    ]
)


def test_active_within_keeps_the_recent_and_lists_the_lapsed():
    snapshots = Snapshots.at(ACTIVITY, T0 + 100 * DAY)
    found = eligibility(snapshots, task(Population(active_within=datetime.timedelta(days=30))))
    assert by_customer(snapshots, found.eligible) == {"a": True, "b": False, "c": True, "d": False}
    assert by_customer(snapshots, found.lapsed) == {"a": False, "b": True, "c": False, "d": True}
    assert by_customer(snapshots, found.reasons) == {
        "a": None,
        "b": "no activity for 100 days: lapsed",
        "c": None,
        "d": "no activity for 90 days: lapsed",
    }
    np.testing.assert_allclose(found.quiet_days, [5, 100, 1, 90])


def test_active_within_counts_only_the_named_steps():
    snapshots = Snapshots.at(ACTIVITY, T0 + 100 * DAY)
    population = Population(active_within=datetime.timedelta(days=60), events=("purchase",))
    found = eligibility(snapshots, task(population))
    assert by_customer(snapshots, found.eligible) == {"a": False, "b": False, "c": True, "d": False}
    assert by_customer(snapshots, found.reasons)["a"] == "no purchase for 100 days: lapsed"
    # Never a purchase: outside the population, but it did not lapse from it.
    assert by_customer(snapshots, found.reasons)["d"] == "no purchase yet"
    assert by_customer(snapshots, found.lapsed)["d"] is False


def test_a_task_without_a_population_is_for_every_journey_with_an_event():
    snapshots = Snapshots.at(ACTIVITY, T0 + 100 * DAY)
    found = eligibility(snapshots, task(None))
    assert found.eligible.all() and not found.lapsed.any()


def test_the_lapsed_list_is_the_lapsed_most_recently_active_first():
    listed = lapsed_list(
        ACTIVITY, task(Population(active_within=datetime.timedelta(days=30))), T0 + 100 * DAY
    )
    assert listed["customer_id"].tolist() == ["d", "b"]
    assert listed["last_active"].tolist() == [T0 + 10 * DAY, T0]
    assert listed["reason"].tolist() == [
        "no activity for 90 days: lapsed",
        "no activity for 100 days: lapsed",
    ]


CASES = log_from(
    [
        ("a", 0, "opened", "t1"),
        ("a", 1, "opened", "t2"),
        ("a", 2, "resolved", "t1"),
        ("a", 4, "resolved", "t2"),
        ("a", 6, "reopened", "t2"),
        ("b", 0, "opened", "t3"),
        ("b", 0, "resolved", "t3"),  # the same moment: closed
        ("c", 3, "opened", "t4"),  # no end step yet: open
        ("c", 5, "login"),
        ("d", 1, "resolved", "t5"),  # an end without a start opens nothing
    ]
)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (0, {"a": 1, "b": 0}),
        (1, {"a": 2, "b": 0, "d": 0}),
        (2, {"a": 1, "b": 0, "d": 0}),
        (3, {"a": 1, "b": 0, "c": 1, "d": 0}),
        (5, {"a": 0, "b": 0, "c": 1, "d": 0}),
        (6, {"a": 1, "b": 0, "c": 1, "d": 0}),
    ],
)
def test_open_cases_by_hand(day, expected):
    snapshots = Snapshots.at(CASES, T0 + day * DAY)
    assert by_customer(snapshots, open_cases(snapshots, TICKETS)) == expected


def test_the_open_case_population_and_its_reason():
    snapshots = Snapshots.at(CASES, T0 + 5 * DAY)
    found = eligibility(snapshots, task(Population(open_case=True, cases=TICKETS)))
    assert by_customer(snapshots, found.eligible) == {"a": False, "b": False, "c": True, "d": False}
    assert by_customer(snapshots, found.reasons)["a"] == "no open case"


def test_open_cases_agree_with_plain_pandas_on_the_simulator():
    events = simulate(1_500, seed=5).events
    log = log_from_frame(events)
    cases = ResolutionKpi(("ticket_opened", "ticket_reopened"), ("ticket_resolved",), "case_id")
    total_open = 0
    for as_of in np.linspace(log.first_time, log.last_time, 9).astype(np.int64)[1:]:
        snapshots = Snapshots.at(log, as_of)
        seen = events[pd.to_datetime(events["timestamp"], utc=True).astype("int64") <= as_of]
        flagged = seen[seen["event"].isin(cases.start + cases.end)].assign(
            closes=lambda frame: frame["event"].isin(cases.end)
        )
        # Per case, its latest moment decides; an end at that moment closes it.
        latest = flagged.groupby(["customer_id", "case_id"], observed=True).agg(
            time=("timestamp", "max")
        )
        last = flagged.merge(latest.reset_index(), on=["customer_id", "case_id"])
        last = last[last["timestamp"] == last["time"]]
        still_open = ~last.groupby(["customer_id", "case_id"], observed=True)["closes"].any()
        expected = still_open.groupby(level="customer_id", observed=True).sum()
        found = pd.Series(open_cases(snapshots, cases), index=snapshots.customer_ids)
        expected = expected.reindex(found.index, fill_value=0)
        assert (found.to_numpy() == expected.to_numpy()).all()
        total_open += found.sum()
    assert total_open > 0


STEPS = ("purchase", "login", "opened", "resolved")


@settings(deadline=None, max_examples=60)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from("pqr"),
            st.integers(0, 30),
            st.sampled_from(STEPS),
            st.sampled_from(["x1", "x2"]),
        ),
        min_size=1,
        max_size=40,
    ),
    day=st.integers(0, 30),
)
def test_eligibility_never_sees_the_future(rows, day):
    log = log_from(rows)
    as_of = T0 + day * DAY
    if as_of.value < log.first_time:
        return
    for population in (
        Population(active_within=datetime.timedelta(days=7)),
        Population(active_within=datetime.timedelta(days=7), events=("purchase",)),
        Population(open_case=True, cases=ResolutionKpi(("opened",), ("resolved",), "case_id")),
    ):
        now = eligibility(Snapshots.at(log, as_of), task(population))
        then = eligibility(Snapshots.at(log.until(as_of), as_of), task(population))
        np.testing.assert_array_equal(now.eligible, then.eligible)
        np.testing.assert_array_equal(now.lapsed, then.lapsed)
        assert now.reasons.tolist() == then.reasons.tolist()


def test_the_dataset_holds_only_the_population_and_counts_the_rest():
    log = log_from_frame(simulate(800, seed=2).events)
    everyone = build_dataset(log, _churn(None))
    active = build_dataset(log, _churn(Population(active_within=datetime.timedelta(days=45))))
    assert active.excluded["outside_population"] > 0
    assert len(active.frame) < len(everyone.frame)
    found = eligibility(
        active.snapshots, _churn(Population(active_within=datetime.timedelta(days=45)))
    )
    assert found.eligible.all()


def _churn(population: Population | None) -> TaskConfig:
    return TaskConfig(
        "churn",
        "absent",
        Match(events=("repeat_purchase",)),
        datetime.timedelta(days=60),
        SnapshotRule(every=datetime.timedelta(days=14)),
        population,
    )


MINIMAL = (
    '[source]\npath = "e.csv"\n[tasks.t]\nlabel = "occurs"\nmatch = { event = ["x"] }\n'
    'horizon = "7d"\nsnapshots = { every = "7d" }\n'
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "population = {}\n", r"\[tasks\.t\.population\] give one of"),
        (
            MINIMAL + 'population = { active_within = "30d", open_case = true }\n',
            r"give one of",
        ),
        (MINIMAL + 'population = { active_within = "a month" }\n', r"active_within"),
        (
            MINIMAL + 'population = { open_case = true, events = ["x"] }\n',
            r"`events` goes with `active_within`",
        ),
        (
            MINIMAL + 'population = { open_case = true }\n[kpis]\nchurn_task = "t"\n',
            r"open_case needs the definition of a case: \[kpis\] resolution",
        ),
        (
            MINIMAL + '[outreach]\nopens_case = ["x"]\n',
            r"\[outreach\.opens_case\] cases are defined once",
        ),
    ],
)
def test_bad_populations_are_rejected_with_the_file_and_key(tmp_path, text, message):
    import tomllib

    with pytest.raises(ConfigError, match=message):
        parse_config(tomllib.loads(text), tmp_path / "c.toml")


def test_an_open_case_population_takes_the_one_case_definition(tmp_path):
    import tomllib

    text = MINIMAL + "population = { open_case = true }\n"
    settings = parse_config(tomllib.loads(text), tmp_path / "c.toml")
    assert settings.task("t").population == Population(open_case=True, cases=ResolutionKpi())
