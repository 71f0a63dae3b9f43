"""The journey simulator: determinism, schema, the story's shape and the planted effects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.eventlog.frames import log_from_frame, log_to_frame, read_log
from journeyguard.features.sources.simulate import STEPS, Simulation, simulate, write_simulation

COLUMNS = {
    "customer_id": "str",
    "timestamp": "datetime64[ns, UTC]",
    "event": "str",
    "case_id": "str",
    "channel": "str",
    "value": "float64",
    "score": "float64",
    "segment": "str",
    "country": "str",
}
TICKET_STEPS = {
    "ticket_opened",
    "ticket_reassigned",
    "ticket_reopened",
    "escalated",
    "ticket_resolved",
}
PURCHASES = {"order_placed", "repeat_purchase"}


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate(20_000, seed=11)


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def _first_cycle(events: pd.DataFrame) -> pd.DataFrame:
    """The rows before each customer's first repeat purchase."""
    cycle = events["event"].eq("repeat_purchase").groupby(events["customer_id"]).cumsum()
    return events[cycle.eq(0).to_numpy()]


def _churn_after_first_cycle(sim: Simulation, step: str) -> tuple[float, float]:
    """Share that churned right after their first cycle: with `step` in it, and without."""
    first = _first_cycle(sim.events)
    had = sim.customers["customer_id"].isin(first.loc[first["event"].eq(step), "customer_id"])
    churned = sim.customers["churned"] & sim.customers["n_cycles"].eq(1)
    assert had.sum() > 100 and (~had).sum() > 100, "too few customers to compare"
    return float(churned[had].mean()), float(churned[~had].mean())


def test_same_seed_same_output_and_different_seed_differs() -> None:
    a, b, c = simulate(3_000, seed=5), simulate(3_000, seed=5), simulate(3_000, seed=6)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.customers, b.customers)
    assert a.truth == b.truth
    assert not a.events.equals(c.events)
    assert a.truth != c.truth


def test_truth_is_json_and_names_its_effects(sim: Simulation) -> None:
    truth = json.loads(json.dumps(sim.truth))
    assert truth == sim.truth
    assert truth["seed"] == 11 and truth["n_customers"] == 20_000
    effects = truth["churn"]["effects"]
    assert {"delivery_delayed", "refund_denied", "ticket_reassigned>ticket_reassigned"} <= set(
        effects
    )
    assert "csat_submitted<=2" in effects and effects["onboarding_completed"] < 0
    assert truth["stats"]["n_events"] == len(sim.events)
    clean = _sigmoid(truth["churn"]["base_logit"])
    assert 0.05 < clean < 0.15
    for delay in truth["delays_hours"].values():
        assert 0 < delay["median"] < delay["p90"]


def test_schema(sim: Simulation) -> None:
    events = sim.events
    assert list(events.columns) == list(COLUMNS)
    assert {column: str(dtype) for column, dtype in events.dtypes.items()} == COLUMNS
    assert str(events["timestamp"].dt.tz) == "UTC"
    assert events["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert events["case_id"].dropna().str.fullmatch(r"T\d{7}").all()
    assert set(events["event"]) == set(STEPS)
    assert set(events["segment"]) == {"consumer", "business"}
    assert events["country"].nunique() > 2


def test_sorted_with_unique_times_per_customer(sim: Simulation) -> None:
    ids = sim.events["customer_id"].to_numpy(dtype=object)
    times = sim.events["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    same = ids[1:] == ids[:-1]
    assert (ids[1:] >= ids[:-1]).all()
    # Strictly increasing within a customer: sorted, and no two events share a timestamp.
    assert (times[1:][same] > times[:-1][same]).all()
    assert not sim.events.duplicated(["customer_id", "timestamp"]).any()


def test_values_scores_cases_and_channels_where_they_belong(sim: Simulation) -> None:
    events = sim.events
    valued = events["event"].isin(PURCHASES | {"refund_approved"})
    assert events["value"].notna().eq(valued).all()
    assert (events.loc[valued, "value"] > 0).all()
    csat = events.loc[events["event"].eq("csat_submitted"), "score"]
    nps = events.loc[events["event"].eq("nps_submitted"), "score"]
    assert csat.between(1, 5).all() and nps.between(0, 10).all()
    assert (csat % 1 == 0).all() and (nps % 1 == 0).all()
    assert events["score"].notna().sum() == len(csat) + len(nps)
    ticket = events["event"].isin(TICKET_STEPS)
    assert events["case_id"].notna().eq(ticket).all()
    assert events.loc[ticket, "channel"].str.startswith("team_").all()
    contacts = set(events.loc[~ticket, "channel"].dropna())
    assert contacts == {"web", "email", "phone", "chat"}
    # A ticket belongs to one customer and opens first.
    by_case = events[ticket].groupby("case_id")
    assert by_case["customer_id"].nunique().eq(1).all()
    assert by_case["event"].first().eq("ticket_opened").all()


def test_window_and_cycles(sim: Simulation) -> None:
    events, customers = sim.events, sim.customers
    start, end = pd.Timestamp(sim.truth["start"]), pd.Timestamp(sim.truth["end"])
    assert events["timestamp"].min() >= start and events["timestamp"].max() < end
    by_customer = events.groupby("customer_id", sort=False)
    assert by_customer["event"].first().eq("order_placed").all()
    assert events["event"].eq("order_placed").sum() == len(customers) == by_customer.ngroups
    # Every cycle opens with a purchase that is then shipped before anything else happens.
    purchase = events["event"].isin(PURCHASES).to_numpy()
    follows = (
        events["event"].shift(-1).where(events["customer_id"].shift(-1).eq(events["customer_id"]))
    )
    assert follows[purchase].dropna().eq("order_shipped").all()
    cycles = events[purchase].groupby("customer_id").size()
    assert customers.set_index("customer_id")["n_cycles"].equals(cycles.rename("n_cycles"))


def test_customers_table_is_consistent(sim: Simulation) -> None:
    customers, events = sim.customers, sim.events
    assert customers["customer_id"].is_unique and customers["customer_id"].is_monotonic_increasing
    assert (customers["churned"] != customers["censored"]).all()
    assert customers["churned_at"].notna().eq(customers["churned"]).all()
    last = events.groupby("customer_id")["timestamp"].last()
    churned = customers[customers["churned"]].set_index("customer_id")
    assert churned["churned_at"].eq(last[churned.index]).all()
    assert 0.2 < customers["churned"].mean() < 0.8
    had_delay = events.loc[events["event"].eq("delivery_delayed"), "customer_id"].unique()
    assert set(customers.loc[customers["had_delay"], "customer_id"]) == set(had_delay)
    assert np.isfinite(customers["max_planted_churn_logit"]).all()


@pytest.mark.parametrize("step", ["delivery_delayed", "refund_denied"])
def test_planted_churn_effect_is_visible(sim: Simulation, step: str) -> None:
    with_step, without = _churn_after_first_cycle(sim, step)
    assert with_step / without > 1.3
    # Loosely what the truth implies: other causes and censoring blur it, so at least half.
    observed = _logit(with_step) - _logit(without)
    assert observed > 0.5 * sim.truth["churn"]["effects"][step]


def test_completed_onboarding_lowers_churn(sim: Simulation) -> None:
    with_step, without = _churn_after_first_cycle(sim, "onboarding_completed")
    assert with_step < without
    assert sim.truth["churn"]["effects"]["onboarding_completed"] < 0


def test_pingpong_tickets_escalate_more(sim: Simulation) -> None:
    tickets = sim.events[sim.events["case_id"].notna()]
    by_case = tickets["case_id"]
    moves = tickets["event"].eq("ticket_reassigned").groupby(by_case).sum()
    escalated = tickets["event"].eq("escalated").groupby(by_case).any()
    pingpong, none = escalated[moves >= 2].mean(), escalated[moves == 0].mean()
    assert pingpong / none > 1.3
    truth = sim.truth["escalation"]
    implied = _sigmoid(
        truth["base_logit"] + truth["effects"]["ticket_reassigned>ticket_reassigned"]
    )
    assert _logit(pingpong) - _logit(none) > 0.5 * (_logit(implied) - truth["base_logit"])
    assert (
        sim.customers["had_pingpong"].sum()
        == tickets.loc[tickets["case_id"].isin(moves.index[moves >= 2]), "customer_id"].nunique()
    )


@pytest.mark.slow
def test_write_simulation_round_trips(tmp_path) -> None:
    simulation = simulate(2_000, seed=3)
    paths = write_simulation(simulation, tmp_path / "out" / "sim.parquet")
    assert paths == {
        "events": tmp_path / "out" / "sim.parquet",
        "truth": tmp_path / "out" / "sim.truth.json",
        "customers": tmp_path / "out" / "sim.customers.parquet",
    }
    assert all(path.is_file() for path in paths.values())
    written = read_log(paths["events"])  # the canonical form, read back fast
    pd.testing.assert_frame_equal(
        log_to_frame(written), log_to_frame(log_from_frame(simulation.events))
    )
    assert written.n_events == len(simulation.events)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["customers"]), simulation.customers)
    assert json.loads(paths["truth"].read_text(encoding="utf-8")) == simulation.truth


def test_rejects_empty_simulation() -> None:
    with pytest.raises(ValueError, match="n_customers"):
        simulate(0, seed=1)
