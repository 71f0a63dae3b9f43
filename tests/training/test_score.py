"""Risk bands against the base rate, for rare and for common outcomes."""

from __future__ import annotations

import numpy as np

from journeyguard.training.score import bands


def test_bands_for_a_rare_outcome_are_multiples_of_the_base_rate():
    risk = np.array([0.01, 0.035, 0.04, 0.06, 0.5])
    assert bands(risk, 0.03).tolist() == ["low", "low", "medium", "high", "high"]


def test_bands_for_a_common_outcome_stay_below_certainty():
    risk = np.array([0.5, 0.8, 0.85, 0.9, 0.99])
    assert bands(risk, 0.8).tolist() == ["low", "low", "medium", "high", "high"]


def test_degenerate_base_rates_do_not_break_the_bands():
    risk = np.array([0.0, 0.5, 1.0])
    assert bands(risk, 0.0).tolist() == ["low", "high", "high"]
    assert bands(risk, 1.0).tolist() == ["low", "low", "high"]
