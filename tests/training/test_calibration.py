"""Honest calibration: never exactly 0 or 1, bounded by what the calibration rows support, with
an interval around each risk."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from journeyguard.training.calibration import Calibrator, fit_calibrator


def _outcomes(n: int, seed: int, separable: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=n)
    if separable:  # plain isotonic regression maps these to exactly 0 and 1
        return raw, (raw > 0.5).astype(int)
    return raw, (rng.random(n) < 1 / (1 + np.exp(-2 * raw))).astype(int)


CALIBRATORS = {
    "isotonic": fit_calibrator(*_outcomes(3_000, 1)),
    "isotonic, separable": fit_calibrator(*_outcomes(3_000, 2, separable=True)),
    "sigmoid": fit_calibrator(*_outcomes(500, 3)),
    "sigmoid, separable": fit_calibrator(*_outcomes(500, 4, separable=True)),
}


def test_without_a_prior_it_is_scikit_learns_isotonic_regression():
    raw, outcome = _outcomes(3_000, 5)
    calibrator = fit_calibrator(raw, outcome, prior_rows=0)
    assert calibrator.method == "isotonic"
    reference = IsotonicRegression(out_of_bounds="clip").fit(raw, outcome)
    scores = np.r_[np.random.default_rng(6).normal(scale=3, size=2_000), raw[:100], -100.0, 100.0]
    np.testing.assert_allclose(
        calibrator.predict(scores), reference.predict(scores), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("name", list(CALIBRATORS))
@given(raw=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=50))
def test_no_risk_is_exactly_0_or_1_and_each_lies_in_its_interval(name, raw):
    calibrator = CALIBRATORS[name]
    scores = np.array(raw)
    risk = calibrator.predict(scores)
    low, high = calibrator.interval(scores)
    assert ((risk > 0) & (risk < 1)).all()
    assert ((low >= 0) & (low <= risk) & (risk <= high) & (high <= 1)).all()


@pytest.mark.parametrize("name", list(CALIBRATORS))
def test_risk_never_falls_as_the_raw_score_rises(name):
    risk = CALIBRATORS[name].predict(np.linspace(-50, 50, 10_001))
    assert (np.diff(risk) >= 0).all()


def test_a_block_without_outcomes_is_shrunk_towards_the_base_rate_by_its_rows():
    # 2,000 rows at raw 0 (none positive), 2,000 at raw 1 (half positive): base rate 1/4.
    raw = np.r_[np.zeros(2_000), np.ones(2_000)]
    outcome = np.r_[np.zeros(2_000), np.tile([0, 1], 1_000)]
    calibrator = fit_calibrator(raw, outcome, prior_rows=2)
    assert calibrator.predict(np.array([0.0]))[0] == pytest.approx(2 * 0.25 / 2_002)
    assert calibrator.predict(np.array([1.0]))[0] == pytest.approx((1_000 + 0.5) / 2_002)
    low, high = calibrator.interval(np.array([0.0]))
    # Wilson's interval of 0 of 2,000
    assert low[0] == pytest.approx(0, abs=1e-12) and 0.001 < high[0] < 0.003


def test_fewer_rows_give_wider_intervals():
    wide = fit_calibrator(*_outcomes(2_000, 7))
    narrow = fit_calibrator(*_outcomes(40_000, 7))
    scores = np.linspace(-1, 1, 21)
    width = lambda c: np.subtract(*c.interval(scores)[::-1]).mean()  # noqa: E731
    assert width(wide) > 2 * width(narrow)


def test_one_outcome_only_is_an_error_that_says_so():
    with pytest.raises(ValueError, match="one outcome only"):
        fit_calibrator(np.arange(10.0), np.zeros(10))


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_a_calibrator_pickled_before_bounds_existed_loads_bounded(method):
    raw, outcome = _outcomes(3_000, 8, separable=True)
    if method == "isotonic":
        mapping = IsotonicRegression(out_of_bounds="clip").fit(raw, outcome)
    else:
        mapping = LogisticRegression().fit(raw.reshape(-1, 1), outcome)
    old = Calibrator.__new__(Calibrator)
    old.__setstate__({"method": method, "mapping": mapping})  # what unpickling does
    loaded = pickle.loads(pickle.dumps(old))
    risk = loaded.predict(np.array([-1e9, -1.0, 0.6, 1e9]))
    assert ((risk > 0) & (risk < 1)).all() and (np.diff(risk) >= 0).all()
    np.testing.assert_array_equal(loaded.interval(np.array([0.6]))[0], loaded.predict([0.6]))
