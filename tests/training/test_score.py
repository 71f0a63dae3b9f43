"""Risk bands against the base rate, for rare and for common outcomes."""

from __future__ import annotations

import pandas as pd

from training.score import band


def test_bands_for_a_rare_outcome_are_multiples_of_the_base_rate():
    risk = pd.Series([0.01, 0.035, 0.04, 0.06, 0.5])
    assert band(risk, 0.03).tolist() == ["low", "low", "medium", "high", "high"]


def test_bands_for_a_common_outcome_stay_below_certainty():
    risk = pd.Series([0.5, 0.8, 0.85, 0.9, 0.99])
    assert band(risk, 0.8).tolist() == ["low", "low", "medium", "high", "high"]


def test_degenerate_base_rates_do_not_break_the_bands():
    risk = pd.Series([0.0, 0.5, 1.0])
    assert band(risk, 0.0).tolist() == ["low", "high", "high"]
    assert band(risk, 1.0).tolist() == ["low", "low", "high"]
