"""Training on the simulator: the model finds the planted causes and ranks planted high-risk
journeys first; the same seed gives the same metrics."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.config.model import Match, SnapshotRule, TaskConfig
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.sources.simulate import simulate
from journeyguard.training.score import score_log
from journeyguard.training.train import train_task

pytestmark = pytest.mark.slow  # trains on 8,000 simulated customers, and twice on 2,000

DAY = pd.Timedelta(days=1)
ESCALATION = TaskConfig(
    "escalation", "occurs", Match(events=("escalated",)), 14 * DAY, SnapshotRule(prefix=8)
)


@pytest.fixture(scope="module")
def simulated():
    simulation = simulate(8_000, seed=21)
    return simulation, log_from_frame(simulation.events)


@pytest.fixture(scope="module")
def escalation_run(simulated):
    return train_task(simulated[1], ESCALATION, seed=0)


def test_same_seed_same_metrics():
    log = log_from_frame(simulate(2_000, seed=22).events)
    first, again = (train_task(log, ESCALATION, seed=0) for _ in range(2))
    assert again.metrics == first.metrics
    assert again.fingerprint == first.fingerprint
    assert again.winner == first.winner
    np.testing.assert_array_equal(again.predictions["score"], first.predictions["score"])


def test_planted_high_risk_journeys_rank_first_with_planted_reasons(simulated, escalation_run):
    simulation, log = simulated
    risk = score_log(
        log, escalation_run.model, pd.Timestamp("2025-10-01", tz="UTC"), escalation_run.task
    )
    truth = simulation.customers.set_index("customer_id")
    planted = (truth["had_pingpong"] | truth["had_reopen"]).reindex(risk["customer_id"])
    top = planted.to_numpy()[: len(risk) // 10]
    rest = planted.to_numpy()[len(risk) // 10 :]
    assert top.mean() > 2 * rest.mean()  # planted escalation causes are far commoner on top
    reasons = Counter(
        r
        for column in ("reason_1", "reason_2", "reason_3")
        for r in risk[column].head(200).dropna()
    )
    text = " ".join(reasons)
    assert "ticket reassigned" in text or "ticket reopened" in text, reasons.most_common(10)


def test_metrics_and_baselines_are_on_the_same_test_rows(escalation_run):
    run = escalation_run
    assert run.metrics["n"] == run.baseline_metrics["n"] == len(run.predictions)
    assert run.bgnbd_metrics is None  # BG/NBD is for churn (absent) tasks
    assert set(run.by_prefix.columns) >= {"events", "n", "roc_auc", "roc_auc_baseline"}
