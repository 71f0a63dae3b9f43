"""Uplift training: the split, the choice on validation, and on the simulator's planted
campaign, the uplift ranking finding the customers the discount helps where risk does not."""

from __future__ import annotations

import datetime
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.experiments import arms_from_log, experiment_rows
from journeyguard.features.population import eligibility
from journeyguard.features.sources.simulate import Campaign, simulate
from journeyguard.training.uplift import choose, split_rows, train_uplift
from journeyguard.training.uplift_metrics import gain_captured

CONFIG = """
[source]
path = "events.parquet"

[source.attributes]
columns = ["segment", "country"]

[tasks.churn]
label = "absent"
match = { event = ["repeat_purchase"] }
horizon = "60d"
snapshots = { every = "14d" }
population = { active_within = "90d" }

[experiments.discount]
treatment = { event = ["discount_sent"] }
control = { event = ["discount_holdout"] }
outcome = "churn"
goal = "reduce"
"""


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """5,000 simulated customers, a discount campaign with half held out (a small log needs a
    large control group to learn from)."""
    folder: Path = tmp_path_factory.mktemp("campaign")
    simulation = simulate(5_000, seed=7, campaign=Campaign(holdout=0.5))
    (folder / "jg.toml").write_text(CONFIG)
    settings = load_config(folder / "jg.toml")
    log = log_from_frame(simulation.events)
    experiment = settings.experiment("discount")
    rows = experiment_rows(log, experiment, settings.task("churn"), arms_from_log(log, experiment))
    return settings, simulation, rows


def test_the_time_split_trains_only_on_windows_closed_before_the_test_part(campaign):
    settings, _, rows = campaign
    timed = replace(settings.experiment("discount"), split="time")
    week = replace(settings.task("churn"), horizon=datetime.timedelta(days=7))
    split = split_rows(rows, timed, week)
    test_from = rows.moments[split == "test"].min()
    assert (rows.moments[split == "train"] + 7 * 86_400 * 10**9 < test_from).all()
    assert {"train", "gap", "test"} == set(split)
    # The campaign's eight weeks are shorter than churn's 60 days: nothing could train.
    assert "train" not in set(split_rows(rows, timed, settings.task("churn")))


def test_a_simpler_learner_wins_a_near_tie_on_validation():
    rng = np.random.default_rng(0)
    good, treated = rng.random(2_000) < 0.3, rng.random(2_000) < 0.5
    score = rng.random(2_000)
    reshuffled = np.where(rng.random(2_000) < 0.1, rng.random(2_000), score)  # a tenth moved
    scores = {"two_model_lightgbm": score, "two_model_logistic": reshuffled}
    # LightGBM's Qini is higher (0.0033 against 0.0031), by far less than its noise.
    winner, reason = choose(scores, good, treated, seed=0)
    assert winner == "two_model_logistic" and "near-tie" in reason
    far = {"two_model_lightgbm": np.where(treated, good, 1 - good), "two_model_logistic": score}
    assert choose(far, good, treated, seed=0)[0] == "two_model_lightgbm"


@pytest.mark.slow
def test_the_uplift_ranking_recovers_the_planted_responders_and_risk_does_not(campaign):
    settings, simulation, rows = campaign
    run = train_uplift(rows, settings.experiment("discount"), settings.task("churn"), seed=0)
    test = run.test
    truth = simulation.customers.set_index("customer_id")["planted_gain"]
    gain = truth.loc[rows.customer_ids[test]].to_numpy()
    # Compared where the risk model would rank: customers in the churn task's population.
    ranked = eligibility(rows.snapshots.subset(test), settings.task("churn")).eligible
    uplift = run.predictions["uplift"].to_numpy()
    by_uplift = gain_captured(uplift[ranked], gain[ranked], share=0.2)
    by_risk = gain_captured(run.risk[ranked], gain[ranked], share=0.2)
    assert by_uplift > 0.4 and by_uplift > by_risk + 0.3
    assert run.metrics["qini"] > run.metrics["risk_qini"]
    assert run.deciles["effect"].iloc[:3].mean() > run.deciles["effect"].iloc[-3:].mean()


def test_the_uplift_ranking_finds_the_ping_pong_tickets_a_follow_up_helps(tmp_path):
    (tmp_path / "jg.toml").write_text(FOLLOW_UP_CONFIG)
    settings = load_config(tmp_path / "jg.toml")
    simulation = simulate(8_000, seed=3, campaign=Campaign(holdout=0.5, follow_ups=True))
    log = log_from_frame(simulation.events)
    experiment, task = settings.experiment("follow_up"), settings.task("escalation")
    rows = experiment_rows(log, experiment, task, arms_from_log(log, experiment))
    run = train_uplift(rows, experiment, task, seed=0)
    truth = simulation.customers.set_index("customer_id")
    gain = truth.loc[rows.customer_ids[run.test], "follow_up_gain"].to_numpy()
    assert (gain[gain != 0] > 0).all()  # only ping-pong tickets are helped, none harmed
    uplift = run.predictions["uplift"].to_numpy()
    assert gain_captured(uplift, gain, share=0.2) > 0.6  # random ranking: about 0.2


FOLLOW_UP_CONFIG = """
[source]
path = "events.parquet"

[tasks.escalation]
label = "occurs"
match = { event = ["escalated"] }
horizon = "14d"
snapshots = { every = "1d" }

[experiments.follow_up]
treatment = { event = ["follow_up_sent"] }
control = { event = ["follow_up_holdout"] }
outcome = "escalation"
"""
