"""The candidates of a task and the choice among them: the near-tie rule, BG/NBD features from
each snapshot's own events, and a churn run on a small simulated log end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeyguard.features.config.model import Match, SnapshotRule, TaskConfig
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.sources.simulate import simulate
from journeyguard.training import bgnbd
from journeyguard.training.bgnbd_features import NAMES, BGNBDFeatures, summary
from journeyguard.training.candidates import Candidate, choose, clustered_standard_error
from journeyguard.training.score import score_snapshots
from journeyguard.training.train import train_task

DAY = pd.Timedelta(days=1)
PURCHASE = Match(events=("purchase",))
CHURN = TaskConfig(
    "churn", "absent", Match(events=("repeat_purchase",)), 60 * DAY, SnapshotRule(every=14 * DAY)
)


def _candidate(name: str, losses: np.ndarray) -> Candidate:
    return Candidate(name, None, float(losses.mean()), losses, None)  # type: ignore[arg-type]


def test_a_simpler_candidate_within_one_standard_error_wins():
    rng = np.random.default_rng(0)
    base = rng.exponential(0.5, 400)
    clusters = np.arange(400)
    noise = rng.normal(0, 0.05, 400)
    simple = _candidate("logistic", base + noise - noise.mean())  # standard error 0.0025
    complex_ = _candidate("lightgbm", base - 0.001)
    choice = choose([complex_, simple], clusters)
    assert choice.winner is simple and "near-tie" in choice.reason


def test_a_clearly_better_candidate_wins_and_says_why():
    rng = np.random.default_rng(1)
    base = rng.exponential(0.5, 400)
    simple = _candidate("logistic", base + 0.05)
    best = _candidate("blend", base)
    choice = choose([simple, best, _candidate("lightgbm", base + 0.02)], np.arange(400))
    assert choice.winner is best
    assert "blend has the lowest validation log loss" in choice.reason
    assert "next lightgbm" in choice.reason


def test_the_standard_error_counts_a_journeys_rows_as_one():
    values = np.random.default_rng(2).normal(size=300)
    alone = clustered_standard_error(values, np.arange(300))
    assert alone == pytest.approx(values.std() / np.sqrt(300))
    tripled = np.repeat(values, 3)  # three identical snapshots per journey
    assert clustered_standard_error(tripled, np.repeat(np.arange(300), 3)) == pytest.approx(alone)
    assert clustered_standard_error(tripled, np.arange(900)) < 0.6 * alone


PURCHASES = pd.DataFrame(
    {
        "customer_id": ["a", "a", "a", "a", "b", "c", "c"],
        "timestamp": pd.to_datetime(
            [
                "2024-01-01 09:00", "2024-01-01 17:00", "2024-01-15 00:00", "2024-02-12 00:00",
                "2024-01-08 00:00", "2024-01-02 00:00", "2024-03-01 00:00",
            ],
            utc=True,
        ),
        "event": ["purchase", "purchase", "visit", "purchase", "purchase", "visit", "purchase"],
    }
)  # fmt: skip


def test_counts_are_those_of_rfm_summary_and_a_journey_without_a_purchase_counts_from_its_start():
    log = log_from_frame(PURCHASES)
    as_of = pd.Timestamp("2024-02-20", tz="UTC")
    snapshots = Snapshots.at(log, as_of)
    x, t_x, age, bought = summary(snapshots, PURCHASE)
    # a: purchase days Jan 1 (twice) and Feb 12; b: Jan 8 only; c: no purchase by Feb 20
    np.testing.assert_array_equal(bought, [True, True, False])
    np.testing.assert_allclose(x, [1, 0, 0])
    np.testing.assert_allclose(t_x, [6, 0, 0])
    np.testing.assert_allclose(age, [50 / 7, 43 / 7, 49 / 7])
    rows = PURCHASES["event"] == "purchase"
    reference = bgnbd.rfm_summary(
        PURCHASES.loc[rows, "customer_id"], PURCHASES.loc[rows, "timestamp"], as_of
    )
    np.testing.assert_allclose(reference["frequency"], x[:2])
    np.testing.assert_allclose(reference["recency"], t_x[:2])
    np.testing.assert_allclose(reference["T"], age[:2])


@pytest.fixture(scope="module")
def simulated():
    return log_from_frame(simulate(1_500, seed=11).events)


@pytest.fixture(scope="module")
def fitted_bgnbd(simulated) -> BGNBDFeatures:
    at = Snapshots.at(simulated, pd.Timestamp("2025-08-01", tz="UTC"))
    return BGNBDFeatures.fit(at, CHURN.match, CHURN.horizon)


@settings(max_examples=25, deadline=None)
@given(journey=st.integers(0, 1_499), days=st.integers(30, 300))
def test_one_journey_alone_gets_its_row_of_a_batch_and_later_events_change_nothing(
    simulated, fitted_bgnbd, journey, days
):
    as_of = pd.Timestamp("2025-01-01", tz="UTC") + days * DAY
    batch = Snapshots.at(simulated, as_of)
    if journey not in set(batch.journeys):
        return
    row = int(np.flatnonzero(batch.journeys == journey)[0])
    keep = np.zeros(simulated.n_journeys, dtype=bool)
    keep[journey] = True
    alone_log = simulated.select_journeys(keep).until(as_of)  # without its later events
    alone = Snapshots(alone_log, np.array([0]), np.array([as_of.value]))
    in_batch, by_itself = fitted_bgnbd.columns(batch), fitted_bgnbd.columns(alone)
    for name in NAMES:
        assert by_itself[name][0] == pytest.approx(in_batch[name][row], rel=1e-12), name


@pytest.fixture(scope="module")
def churn_run(simulated):  # trains every candidate (about 8 s): the tests using it are slow
    return train_task(simulated, CHURN, seed=0)


@pytest.mark.slow
def test_churn_fits_every_candidate_and_registers_the_chosen_one(churn_run):
    run = churn_run
    names = [c.name for c in run.candidates]
    assert names == ["logistic", "lightgbm", "lightgbm_bgnbd", "blend"]
    chosen = next(c for c in run.candidates if c.name == run.winner)
    assert run.metrics == chosen.test
    assert run.winner_reason and run.model.info["winner_reason"] == run.winner_reason
    assert set(run.model.info["candidates"]) == set(names)
    best = min(c.validation_log_loss for c in run.candidates)
    assert chosen.validation_log_loss == best or "near-tie" in run.winner_reason
    assert run.bgnbd_metrics is not None and run.bgnbd_metrics["param_r"] > 0
    reliability = run.model.info["reliability"]
    assert sum(b["n"] for b in reliability) == run.metrics["n"]
    assert all(b["realised_low"] <= b["realised"] <= b["realised_high"] for b in reliability)


@pytest.mark.slow
def test_training_and_scoring_features_are_the_same_numbers(churn_run, simulated):
    """No skew: the registered model builds the training run's features of the test rows."""
    run = churn_run
    test = (run.dataset.frame["split"] == "test").to_numpy()
    snapshots = run.dataset.snapshots.subset(test)
    trained = run.test_features.reset_index(drop=True)
    pd.testing.assert_frame_equal(run.model.features(snapshots), trained, check_dtype=False)
    np.testing.assert_allclose(run.model.feature_matrix(snapshots), trained.to_numpy())
    if run.model.bgnbd is not None:
        assert set(NAMES) <= set(run.model.feature_names)


@pytest.mark.slow
def test_scores_carry_an_interval_around_each_risk(churn_run, simulated):
    table = score_snapshots(Snapshots.at(simulated, simulated.last_time), churn_run.model)
    assert ((table["risk"] > 0) & (table["risk"] < 1)).all()
    assert (table["risk_low"] <= table["risk"]).all() and (
        table["risk"] <= table["risk_high"]
    ).all()
    columns = list(table.columns)
    assert columns[columns.index("risk") : columns.index("band")] == [
        "risk",
        "risk_low",
        "risk_high",
    ]
