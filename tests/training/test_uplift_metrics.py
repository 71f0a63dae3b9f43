"""Qini, deciles and the average effect on tiny hand-computed rankings."""

from __future__ import annotations

import numpy as np
import pytest

from journeyguard.training.uplift_metrics import (
    average_effect,
    gain_captured,
    qini_coefficient,
    qini_values,
    uplift_by_decile,
)

# Four treated, four control; the treated good outcomes rank first by the "right" score.
GOOD = np.array([1, 1, 0, 0, 0, 0, 1, 1])
TREATED = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)


def test_qini_values_count_the_good_outcomes_the_action_added():
    # Ranked as given: after the 4 treated (2 good) Q = 2; the first two control rows have no
    # good outcome; the third has one, scaled by 4 treated / 3 control; the fourth another.
    score = -np.arange(8.0)
    expected = [0, 1, 2, 2, 2, 2, 2, 2 - 4 / 3, 0]
    assert qini_values(GOOD, TREATED, score) == pytest.approx(expected)


def test_a_ranking_that_puts_the_helped_first_beats_its_reverse_and_random_is_zero():
    helped_first = np.array([8, 7, 2, 1, 6, 5, 4, 3], dtype=float)
    right = qini_coefficient(GOOD, TREATED, helped_first)
    wrong = qini_coefficient(GOOD, TREATED, -helped_first)
    assert right > 0 > wrong
    rng = np.random.default_rng(0)
    good, treated = rng.random(20_000) < 0.3, rng.random(20_000) < 0.5
    assert abs(qini_coefficient(good, treated, rng.random(20_000))) < 0.005


def test_average_effect_and_its_interval():
    effect = average_effect(GOOD, TREATED)
    assert effect["treated_rate"] == 0.5 and effect["control_rate"] == 0.5
    assert effect["effect"] == 0.0
    assert effect["effect_low"] < 0 < effect["effect_high"]
    assert (effect["treated_n"], effect["control_n"]) == (4, 4)


def test_deciles_realise_the_effect_of_each_tenth_of_the_ranking():
    rng = np.random.default_rng(1)
    n = 10_000
    helped = rng.random(n) < 0.5
    treated = rng.random(n) < 0.5
    good = rng.random(n) < np.where(treated & helped, 0.6, 0.2)
    table = uplift_by_decile(good, treated, helped + rng.random(n) * 0.1)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["effect"].iloc[:5].min() > 0.3  # the helped half: +40 points
    assert table["effect"].iloc[5:].abs().max() < 0.06
    assert table["treated_n"].sum() + table["control_n"].sum() == n


def test_gain_captured_is_a_share_of_what_the_best_ranking_captures():
    truth = np.array([0.5, 0.0, 0.0, 0.3, -0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert gain_captured(truth, truth, share=0.2) == 1.0
    assert gain_captured(np.arange(10.0), truth, share=0.2) == pytest.approx(0.0)
    assert gain_captured(-np.arange(10.0), truth, share=0.2) == pytest.approx(0.5 / 0.8)
