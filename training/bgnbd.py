"""The BG/NBD model of repeat buying (Fader, Hardie and Lee 2005, "Counting your customers the
easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2), 275-284).

While alive, a customer buys as a Poisson process of rate lambda ~ Gamma(r, alpha); after each
repeat purchase it drops out for good with probability p ~ Beta(a, b). A customer is summarised
by x (repeat purchases), t_x (time of the last purchase) and T (length of observation), both
measured from the first purchase. Equation numbers below are those of the paper; the
numerically stable log form follows Fader, Hardie and Lee's note "Implementing the BG/NBD
model for customer base analysis in Excel" (2005).

All functions are pure and vectorised over customers; nothing reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

DAY_NS = 86_400_000_000_000
WEEK = np.timedelta64(7, "D")
ParamsT = TypeVar("ParamsT")


@dataclass(frozen=True)
class BGNBDParams:
    """Population parameters: lambda ~ Gamma(shape r, rate alpha), p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


def _utc_ns(values: object) -> np.ndarray:
    """Timestamps (datetime64, tz-aware or naive UTC, or int64 ns since the epoch) as int64 ns."""
    stamps = pd.to_datetime(pd.Series(values).reset_index(drop=True), utc=True)
    return stamps.dt.tz_convert(None).to_numpy("datetime64[ns]").view(np.int64)


def rfm_summary(
    customer_ids: Sequence[object] | np.ndarray | pd.Series,
    times: Sequence[object] | np.ndarray | pd.Series,
    as_of: object,
    *,
    period: np.timedelta64 = WEEK,
) -> pd.DataFrame:
    """One row per customer with a purchase at or before `as_of`, indexed by `customer_id`
    (sorted), with columns `frequency` (x), `recency` (t_x) and `T`.

    The lifetimes convention: timestamps are floored to UTC days and purchases on the same day
    count once, so x is the number of distinct purchase days after the first one, t_x is the
    last purchase day minus the first and T is the day of `as_of` minus the first purchase day,
    both in units of `period`. Purchases after `as_of` are ignored.
    """
    days = purchase_days(customer_ids, times, as_of)
    per = days.groupby("customer_id", sort=True)["day"].agg(["min", "max", "size"])
    as_of_day = int(_utc_ns([as_of])[0]) // DAY_NS
    days_per_period = (period / np.timedelta64(1, "ns")) / DAY_NS
    return pd.DataFrame(
        {
            "frequency": (per["size"] - 1).astype(np.int64),
            "recency": (per["max"] - per["min"]).astype(float) / days_per_period,
            "T": (as_of_day - per["min"]).astype(float) / days_per_period,
        },
        index=per.index,
    )


def purchase_days(
    customer_ids: Sequence[object] | np.ndarray | pd.Series,
    times: Sequence[object] | np.ndarray | pd.Series,
    as_of: object,
    values: Sequence[float] | np.ndarray | pd.Series | None = None,
) -> pd.DataFrame:
    """The purchases at or before `as_of` merged into one row per customer and UTC day: columns
    `customer_id`, `day` (days since the epoch) and, where `values` are given, `value`, their sum
    over the day. This is the unit that BG/NBD counts, so any per-purchase statistic (the
    Gamma-Gamma spend, say) is taken over the same purchases as x."""
    ids = pd.Index(customer_ids, name="customer_id")
    ns = _utc_ns(times)
    if len(ids) != len(ns):
        raise ValueError(f"customer_ids and times differ in length: {len(ids)} != {len(ns)}")
    keep = ns <= int(_utc_ns([as_of])[0])
    days = pd.DataFrame({"customer_id": ids[keep], "day": ns[keep] // DAY_NS})
    if values is None:
        return days.drop_duplicates()
    spend = np.asarray(values, dtype=float)
    if len(spend) != len(ns):
        raise ValueError(f"values and times differ in length: {len(spend)} != {len(ns)}")
    days["value"] = spend[keep]
    return days.groupby(["customer_id", "day"], sort=True, as_index=False)["value"].sum()


def _arrays(*values: object) -> list[np.ndarray]:
    return list(np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values)))


def log_likelihood(params: BGNBDParams, x: object, t_x: object, T: object) -> np.ndarray:
    """Per-customer log-likelihood ln L(r, alpha, a, b | x, t_x, T), equation (6):

    L = B(a, b+x)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+T)^(r+x))
        + [x > 0] B(a+1, b+x-1)/B(a, b) * Gamma(r+x) alpha^r / (Gamma(r) (alpha+t_x)^(r+x)).

    The common factor Gamma(r+x) alpha^r / Gamma(r) is taken out and the two remaining terms
    (Hardie's A2·A3 and A2·A4) are combined by log-sum-exp, so large x and T do not overflow.
    """
    x, t_x, T = _arrays(x, t_x, T)
    return _Likelihood(x.ravel(), t_x.ravel(), T.ravel())(params).reshape(x.shape)


class _Likelihood:
    """`log_likelihood` of fixed customers as a function of the parameters, which `fit`
    evaluates hundreds of times. A term of one column alone is computed once per distinct value
    of it and gathered: a summary has few (whole purchase counts, whole days in weeks), so the
    special functions cost next to nothing. Every customer's value is the same float as
    computed row by row, so a search over it takes the same steps."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
        self.x, self.x_at = np.unique(x, return_inverse=True)
        self.t_x, self.t_x_at = np.unique(t_x, return_inverse=True)
        self.T, self.T_at = np.unique(T, return_inverse=True)

    def __call__(self, params: BGNBDParams) -> np.ndarray:
        r, alpha, a, b = params.r, params.alpha, params.a, params.b
        x, at = self.x, self.x_at
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        r_x = (r + x)[at]
        log_a3 = betaln(a, b + x)[at] - r_x * np.log(alpha + self.T)[self.T_at]
        repeat = x > 0
        xs = np.where(repeat, x, 1.0)  # keeps betaln finite where the A4 term is dropped
        b4 = np.where(repeat, betaln(a + 1, b + xs - 1), -np.inf)[at]
        log_a4 = b4 - r_x * np.log(alpha + self.t_x)[self.t_x_at]  # -inf where x = 0
        return common[at] + np.logaddexp(log_a3, log_a4)


def _log_odds_dead(
    params: BGNBDParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """ln of [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x), -inf where x = 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    xs = np.where(x > 0, x, 1.0)
    z = np.log(a) - np.log(b + xs - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(x > 0, z, -np.inf)


def probability_alive(params: BGNBDParams, x: object, t_x: object, T: object) -> np.ndarray:
    """P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)),
    from the note "Computing P(alive) using the BG/NBD model" (Fader, Hardie and Lee 2008).
    It is 1 for x = 0: nobody drops out before a first repeat purchase."""
    x, t_x, T = _arrays(x, t_x, T)
    return expit(-_log_odds_dead(params, x, t_x, T))


def _hyp2f1(A: float, B: float, C: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Gauss 2F1(A, B; C; z) for 0 <= z < 1: scipy's, with its power series as the fallback
    where scipy returns inf/NaN (it does for integer A when C - A - B is an integer, z > 0.9)."""
    value = np.array(hyp2f1(A, B, C, z), dtype=float)
    bad = ~np.isfinite(value)
    if bad.any():
        c, zz = C[bad], z[bad]
        total, term = np.ones_like(zz), np.ones_like(zz)
        for n in range(1_000_000):
            term = term * (A + n) * (B + n) / ((c + n) * (n + 1)) * zz
            total += term
            if np.all(np.abs(term) <= 1e-17 * np.abs(total)):
                break
        value[bad] = total
    return value


def expected_purchases(
    params: BGNBDParams, t: object, x: object, t_x: object, T: object
) -> np.ndarray:
    """E[Y(t) | x, t_x, T], the expected repeat purchases in the next t periods, equation (10):

    (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
    divided by 1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x), with z = t/(alpha+T+t).

    Euler's transformation turns the power times 2F1 into
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose upper parameters do not grow with x, so
    the series stays well conditioned for large x. Requires a != 1 (a removable singularity).
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t, x, t_x, T = _arrays(t, x, t_x, T)
    c = a + b + x - 1
    log_1mz = -np.log1p(t / (alpha + T))
    z = -np.expm1(log_1mz)
    bracket = 1.0 - np.exp((a - 1) * log_1mz) * _hyp2f1(a + b - 1 - r, a - 1, c, z)
    return c / (a - 1) * bracket * expit(-_log_odds_dead(params, x, t_x, T))


def _maximum_likelihood(
    params_type: Callable[..., ParamsT],
    likelihood_of: Callable[..., Callable[[ParamsT], np.ndarray]],
    columns: Sequence[np.ndarray],
    *,
    initial: Sequence[float],
    penalizer: float,
) -> ParamsT:
    """The positive parameters that minimise the mean of -ln L plus `penalizer` * their sum of
    squares, searched with L-BFGS-B over their logarithms, which keeps them positive;
    `likelihood_of(*columns)(params)` is ln L per row. Identical rows of `columns` are merged
    into weights first: that only speeds it up, and makes the result independent of row order.
    Deterministic."""
    rows, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
    likelihood, weight = likelihood_of(*rows.T), counts.astype(float)

    def objective(log_p: np.ndarray) -> float:
        p = np.exp(log_p)
        ll = likelihood(params_type(*p))
        value = -float(np.dot(weight, ll)) / weight.sum() + penalizer * float(np.dot(p, p))
        return value if np.isfinite(value) else 1e300

    result = minimize(
        objective,
        np.log(np.asarray(initial, dtype=float)),
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 1e-14, "gtol": 1e-9},
    )
    if not np.all(np.isfinite(result.x)):
        raise RuntimeError(f"{params_type.__name__} fit failed: {result.message}")
    return params_type(*(float(v) for v in np.exp(result.x)))


def fit(
    x: object,
    t_x: object,
    T: object,
    *,
    initial: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    penalizer: float = 0.0,
) -> BGNBDParams:
    """Maximum-likelihood estimates of (r, alpha, a, b) from equation (6).

    Minimises the mean negative log-likelihood (plus `penalizer` * the sum of squared
    parameters, 0 by default) over the log-parameters with L-BFGS-B; identical (x, t_x, T)
    rows are merged into weights first, which only speeds it up. Deterministic.
    """
    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("fit needs at least one customer")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T) or np.any((x == 0) & (t_x != 0)):
        raise ValueError("need x >= 0, 0 <= t_x <= T, and t_x = 0 where x = 0")
    return _maximum_likelihood(
        BGNBDParams, _Likelihood, (x, t_x, T), initial=initial, penalizer=penalizer
    )
