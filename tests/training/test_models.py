"""The calibrated model's parts."""

from __future__ import annotations

import numpy as np

from journeyguard.training.models import fit_calibrator


def test_isotonic_calibration_equals_scikit_learn_inside_and_outside_its_range():
    rng = np.random.default_rng(5)
    raw = rng.normal(size=3_000)
    outcome = (rng.random(3_000) < 1 / (1 + np.exp(-raw))).astype(int)
    calibrator = fit_calibrator(raw, outcome)
    assert calibrator.method == "isotonic"
    scores = np.r_[rng.normal(scale=3, size=2_000), raw[:100], -100.0, 100.0]
    np.testing.assert_allclose(
        calibrator.predict(scores), calibrator.mapping.predict(scores), rtol=0, atol=1e-12
    )
