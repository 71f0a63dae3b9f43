"""Honest probabilities: a model's raw score (log-odds) mapped to a risk that the calibration
slice can support, with an interval.

Rules, in the order `fit_calibrator` applies them:
1. With `min_isotonic_rows` rows or more, isotonic regression: pool adjacent violators on the
   sorted raw scores (ties in one block), as scikit-learn does.
2. Each block's rate is shrunk towards the slice's base rate by a prior worth `prior_rows`
   rows, (positives + prior_rows * base) / (rows + prior_rows): a block of 40 rows without an
   outcome says the risk is small, not that it is nil. Where shrinking breaks the order of two
   neighbours, they are pooled again, so the map stays increasing.
3. Each block's interval is the Wilson 95 % interval of its own rows (widened to hold the risk).
4. Fewer rows: a logistic curve (Platt) on the raw score, its interval from the curve's
   standard error; the risk is kept within what a block of all the slice's rows could support.
5. Between blocks the risk and its bounds are interpolated linearly; outside the slice's range
   of raw scores they stay at the end values, so no input gives exactly 0 or 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from journeyguard.features.stats import Z_95, wilson_interval

PRIOR_ROWS = 2.0  # the weight of the base rate in each block, in rows
MIN_ISOTONIC_ROWS = 2_000
_PLATT_KNOTS = 257
_LEGACY_BOUND = 1e-4  # a calibrator pickled before bounds existed: kept this far from 0 and 1


@dataclass(frozen=True)
class Calibrator:
    """A piecewise linear map from raw score to risk, with the interval's bounds at the same
    knots; `rows` and `base_rate` describe the calibration slice it was fitted on."""

    method: str  # "isotonic" | "sigmoid"
    knots: np.ndarray  # raw scores, increasing
    risk: np.ndarray
    low: np.ndarray
    high: np.ndarray
    rows: int
    base_rate: float

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """The calibrated risk of each raw score, in (0, 1)."""
        return np.interp(np.asarray(raw, dtype=np.float64), self.knots, self.risk)

    def interval(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The low and high ends of each risk's 95 % interval."""
        raw = np.asarray(raw, dtype=np.float64)
        return np.interp(raw, self.knots, self.low), np.interp(raw, self.knots, self.high)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Loads calibrators pickled before bounds existed ({method, mapping}) as tables."""
        if "mapping" in state:
            state = _legacy(state["method"], state["mapping"])
        self.__dict__.update(state)


def fit_calibrator(
    raw: np.ndarray,
    y: np.ndarray,
    *,
    min_isotonic_rows: int = MIN_ISOTONIC_ROWS,
    prior_rows: float = PRIOR_ROWS,
) -> Calibrator:
    """The calibrator of raw scores `raw` with outcomes `y` (see the module's rules)."""
    raw, y = np.asarray(raw, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(np.unique(y)) < 2:
        raise ValueError(
            "the held-out rows for calibration hold one outcome only; the task's "
            "outcome is too rare in the training period to calibrate a model"
        )
    if len(y) >= min_isotonic_rows:
        return _isotonic(raw, y, prior_rows)
    return _platt(raw, y, prior_rows)


def _isotonic(raw: np.ndarray, y: np.ndarray, prior_rows: float) -> Calibrator:
    base = float(y.mean())
    values, which = np.unique(raw, return_inverse=True)
    rows = np.bincount(which, minlength=len(values)).astype(np.float64)
    positives = np.bincount(which, weights=y, minlength=len(values))
    blocks = _pool(values, values, positives, rows, lambda k, n: k / n)
    low_x, high_x, k, n = _pool(*blocks, lambda k, n: (k + prior_rows * base) / (n + prior_rows))
    risk = (k + prior_rows * base) / (n + prior_rows)
    low, high = wilson_interval(k, n)
    low, high = np.minimum(low, risk), np.maximum(high, risk)
    knots = np.column_stack([low_x, high_x]).ravel()
    keep = np.r_[True, np.diff(knots) > 0]  # a block of one value is one knot
    twice = lambda a: np.repeat(a, 2)[keep]  # noqa: E731
    return Calibrator("isotonic", knots[keep], twice(risk), twice(low), twice(high), len(y), base)


def _pool(
    first: np.ndarray,
    last: np.ndarray,
    positives: np.ndarray,
    rows: np.ndarray,
    rate: Callable[[float, float], float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pool adjacent violators: the blocks (first raw, last raw, positives, rows), in order,
    merged until `rate(positives, rows)` increases strictly from each block to the next."""
    stack: list[list[float]] = []  # [first, last, positives, rows]
    for block in zip(first.tolist(), last.tolist(), positives.tolist(), rows.tolist(), strict=True):
        stack.append(list(block))
        while len(stack) > 1 and rate(stack[-2][2], stack[-2][3]) >= rate(
            stack[-1][2], stack[-1][3]
        ):
            top = stack.pop()
            stack[-1][1] = top[1]
            stack[-1][2] += top[2]
            stack[-1][3] += top[3]
    table = np.array(stack, dtype=np.float64).reshape(-1, 4)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def _platt(raw: np.ndarray, y: np.ndarray, prior_rows: float) -> Calibrator:
    """Platt's curve on a grid over the raw scores seen, its 95 % interval by the delta method
    (the inverse Fisher information of slope and intercept), bounded as a block of all rows."""
    from sklearn.linear_model import LogisticRegression  # fitting only: scoring never needs it

    fit = LogisticRegression().fit(raw.reshape(-1, 1), y)
    slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    p = expit(slope * raw + intercept)
    design = np.column_stack([raw, np.ones_like(raw)])
    information = (design * (p * (1 - p))[:, None]).T @ design
    covariance = np.linalg.pinv(information)
    knots = np.unique(np.r_[np.linspace(raw.min(), raw.max(), _PLATT_KNOTS), raw.max()])
    grid = np.column_stack([knots, np.ones_like(knots)])
    logit = grid @ np.array([slope, intercept])
    se = np.sqrt(np.einsum("ij,jk,ik->i", grid, covariance, grid).clip(min=0))
    base, n = float(y.mean()), len(y)
    floor = prior_rows * base / (n + prior_rows)
    ceiling = 1 - prior_rows * (1 - base) / (n + prior_rows)
    bound = lambda v: np.clip(v, floor, ceiling)  # noqa: E731
    risk = bound(expit(logit))
    low = np.minimum(bound(expit(logit - Z_95 * se)), risk)
    high = np.maximum(bound(expit(logit + Z_95 * se)), risk)
    return Calibrator("sigmoid", knots, risk, low, high, n, base)


def _legacy(method: str, mapping: Any) -> dict[str, Any]:
    """The table of an isotonic or Platt calibrator of the old layout, bounded, without
    intervals (the old pickle kept no counts)."""
    if method == "isotonic":
        knots, risk = mapping.X_thresholds_, mapping.y_thresholds_
    else:
        knots = np.linspace(-30.0, 30.0, 601)
        risk = mapping.predict_proba(knots.reshape(-1, 1))[:, 1]
    risk = np.clip(np.asarray(risk, dtype=np.float64), _LEGACY_BOUND, 1 - _LEGACY_BOUND)
    knots = np.asarray(knots, dtype=np.float64)
    return {
        "method": method, "knots": knots, "risk": risk, "low": risk, "high": risk,
        "rows": 0, "base_rate": float("nan"),
    }  # fmt: skip
