"""The BG/NBD model of repeat buying (Fader, Hardie and Lee 2005, "Counting your customers the
easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2), 275-284).

While alive, a customer buys as a Poisson process of rate lambda ~ Gamma(r, alpha); after each
repeat purchase it drops out for good with probability p ~ Beta(a, b). A customer is summarised
by x (repeat purchases), t_x (time of the last purchase) and T (length of observation), both
measured from the first purchase. Equation numbers below are those of the paper; the
numerically stable log form follows Fader, Hardie and Lee's note "Implementing the BG/NBD
model for customer base analysis in Excel" (2005).

`fit` is a maximum a posteriori estimate with one weak prior, a + b ~ Exponential(mean
10,000), on the concentration of the dropout Beta. Where customers' dropout probabilities
barely differ (in `journeyguard simulate` they do not differ at all) the likelihood has no
maximum: it keeps rising as a and b grow with a / (a + b) fixed, toward a point mass, and a
plain search stops wherever rounding stops it (a + b from 1e3 to 1e42 on one log). The
likelihood there approaches its supremum as -c / (a + b), so the prior stops it at
a + b = sqrt(c * 10,000), where the data could not tell a larger value apart. Bayesian
BG/NBD does the same: PyMC-Marketing's BetaGeoModel puts a Pareto(1, 1) prior on
kappa_dropout = a + b; its 2 ln(a + b) would move CDNOW's published a = 0.793 by 11 %, the
exponential moves it by 2e-5. lifetimes' `penalizer_coef` (`penalizer` here) shrinks all
four parameters, alpha in time units included, and stays 0 by default.

All functions are pure and vectorised over customers; nothing reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

DAY_NS = 86_400_000_000_000
WEEK = np.timedelta64(7, "D")
ParamsT = TypeVar("ParamsT")
ParamsContraT = TypeVar("ParamsContraT", contravariant=True)
# The prior mean of the dropout Beta's concentration a + b: see the module docstring.
DROPOUT_CONCENTRATION = 10_000.0
_POLISH_STEPS = 4  # Newton converges in one or two from L-BFGS-B's point
_POLISH_H = 1e-6  # difference step in the log-parameters
_EULER_MAX_EXPONENT = 700.0  # e^-700 is near the smallest normal float, e^-708


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
    days_per_period = days_per(period)
    return pd.DataFrame(
        {
            "frequency": (per["size"] - 1).astype(np.int64),
            "recency": (per["max"] - per["min"]).astype(float) / days_per_period,
            "T": (as_of_day - per["min"]).astype(float) / days_per_period,
        },
        index=per.index,
    )


def days_per(period: np.timedelta64) -> float:
    """The days in one `period`, which divide day counts into recency and T."""
    return (period / np.timedelta64(1, "ns")) / DAY_NS


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
    evaluates tens of times. A term of one column alone is computed once per distinct value
    of it and gathered: a summary has few (whole purchase counts, whole days in weeks), so the
    special functions cost next to nothing. Every customer's value is the same float as
    computed row by row, so a search over it takes the same steps."""

    def __init__(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> None:
        self.x, self.x_at = np.unique(x, return_inverse=True)
        self.t_x, self.t_x_at = np.unique(t_x, return_inverse=True)
        self.T, self.T_at = np.unique(T, return_inverse=True)

    def __call__(self, params: BGNBDParams) -> np.ndarray:
        common, log_a3, log_a4, _, _ = self._terms(params)
        return common[self.x_at] + np.logaddexp(log_a3, log_a4)

    def _terms(self, params: BGNBDParams) -> tuple[np.ndarray, ...]:
        """ln of the common factor per distinct x; per customer ln A3, ln A4 (-inf where x = 0),
        ln(alpha + T) and ln(alpha + t_x)."""
        r, alpha, a, b = params.r, params.alpha, params.a, params.b
        x, at = self.x, self.x_at
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
        r_x = (r + x)[at]
        log_alpha_T = np.log(alpha + self.T)[self.T_at]
        log_alpha_t_x = np.log(alpha + self.t_x)[self.t_x_at]
        log_a3 = betaln(a, b + x)[at] - r_x * log_alpha_T
        repeat = x > 0
        xs = np.where(repeat, x, 1.0)  # keeps betaln finite where the A4 term is dropped
        b4 = np.where(repeat, betaln(a + 1, b + xs - 1), -np.inf)[at]
        log_a4 = b4 - r_x * log_alpha_t_x
        return common, log_a3, log_a4, log_alpha_T, log_alpha_t_x

    def total(self, params: BGNBDParams, weight: np.ndarray) -> tuple[float, np.ndarray]:
        """sum(weight * ln L) and its gradient in (r, alpha, a, b).

        With w4 = A4 / (A3 + A4), a customer's posterior weight on "dropped out after t_x", each
        derivative is the common factor's, plus the A3 term's, plus w4 times A4's difference
        from A3; the digamma parts of that difference reduce to 1/a and -1/(b+x-1), so digamma
        is evaluated once per distinct x only.
        """
        r, alpha, a, b = params.r, params.alpha, params.a, params.b
        x, at = self.x, self.x_at
        common, log_a3, log_a4, log_alpha_T, log_alpha_t_x = self._terms(params)
        lse = np.logaddexp(log_a3, log_a4)
        w4 = weight * np.exp(log_a4 - lse)  # 0 where x = 0
        per_x = np.bincount(at, weight, minlength=len(x))
        r_x = (r + x)[at]
        inv_alpha_T = (1.0 / (alpha + self.T))[self.T_at]
        inv_alpha_t_x = (1.0 / (alpha + self.t_x))[self.t_x_at]
        psi_abx = digamma(a + b + x)
        xs = np.where(x > 0, x, 1.0)
        gradient = np.array(
            [
                per_x @ (digamma(r + x) - digamma(r) + np.log(alpha))
                - _dot(weight, log_alpha_T)
                - _dot(w4, log_alpha_t_x - log_alpha_T),
                per_x.sum() * r / alpha
                - _dot(weight * r_x, inv_alpha_T)
                - _dot(w4 * r_x, inv_alpha_t_x - inv_alpha_T),
                per_x @ (digamma(a + b) - psi_abx) + w4.sum() / a,
                per_x @ (digamma(a + b) - digamma(b) + digamma(b + x) - psi_abx)
                - _dot(w4, (1.0 / (b + xs - 1))[at]),
            ]
        )
        return float(per_x @ common) + _dot(weight, lse), gradient


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    """sum(u * v) by numpy's pairwise summation: BLAS's ddot splits long vectors across its
    threads, so its last bits (and a flat fit's end point) would depend on their number."""
    return float(np.sum(u * v))


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


def _hyp2f1(A: object, B: object, C: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Gauss 2F1(A, B; C; z) for 0 <= z < 1: scipy's, with its power series as the fallback
    where scipy returns inf/NaN (it does for integer A when C - A - B is an integer, z > 0.9)."""
    A, B, C, z = _arrays(A, B, C, z)
    value = _once_per_distinct(hyp2f1, A, B, C, z)
    bad = ~np.isfinite(value)
    if bad.any():
        a, b, c, zz = A[bad], B[bad], C[bad], z[bad]
        total, term = np.ones_like(zz), np.ones_like(zz)
        for n in range(1_000_000):
            term = term * (a + n) * (b + n) / ((c + n) * (n + 1)) * zz
            total += term
            if np.all(np.abs(term) <= 1e-17 * np.abs(total)) or not np.all(np.isfinite(total)):
                break  # converged, or overflowed (the caller has another form)
        value[bad] = total
    return value


def _once_per_distinct(function: Callable[..., np.ndarray], *columns: np.ndarray) -> np.ndarray:
    """`function` of arrays of one shape, evaluated once per distinct row of them: customers
    share most (whole purchase counts, whole days), and a special function costs microseconds
    per value."""
    flat = [column.ravel() for column in columns]
    order, new = _runs(flat)
    starts = order[new]
    result = np.empty(len(order))
    result[order] = np.asarray(function(*(column[starts] for column in flat)), dtype=float)[
        np.cumsum(new) - 1
    ]
    return result.reshape(columns[0].shape)


def expected_purchases(
    params: BGNBDParams, t: object, x: object, t_x: object, T: object
) -> np.ndarray:
    """E[Y(t) | x, t_x, T], the expected repeat purchases in the next t periods, equation (10):

    (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)]
    divided by 1 + [x > 0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x), with z = t/(alpha+T+t).

    Euler's transformation turns the power times 2F1 into
    (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z), whose upper parameters do not grow with x, so
    the series stays well conditioned for large x. For large a that 2F1 grows as (1-z)^(1-a):
    where (1-z)^(a-1) is below e^-700 (subnormal, then 0) the product has lost its digits, and
    the untransformed form is used, whose series then converges like ((1 - a/(a+b)) z)^n.
    Requires a != 1 (a removable singularity).
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t, x, t_x, T = _arrays(t, x, t_x, T)
    c = a + b + x - 1
    log_1mz = -np.log1p(t / (alpha + T))
    z = -np.expm1(log_1mz)
    with np.errstate(over="ignore", invalid="ignore"):  # the overflow is caught just below
        power = np.exp((a - 1) * log_1mz)
        bracket = np.array(1.0 - power * _hyp2f1(a + b - 1 - r, a - 1, c, z))
    lost = ~np.isfinite(bracket) | ((a - 1) * log_1mz < -_EULER_MAX_EXPONENT)
    if lost.any():
        r_x, log_1mz_lost = r + x[lost], log_1mz[lost]
        series = _hyp2f1(r_x, b + x[lost], c[lost], z[lost])
        bracket[lost] = -np.expm1(r_x * log_1mz_lost + np.log(series))
    return c / (a - 1) * bracket * expit(-_log_odds_dead(params, x, t_x, T))


class _Totalled(Protocol[ParamsContraT]):
    """A likelihood of fixed rows: the weighted sum of ln L and its gradient in the parameters."""

    def total(self, params: ParamsContraT, weight: np.ndarray) -> tuple[float, np.ndarray]: ...


LogPrior = Callable[[np.ndarray], tuple[float, np.ndarray]]  # ln density and its gradient


def _maximum_likelihood(
    params_type: Callable[..., ParamsT],
    likelihood_of: Callable[..., _Totalled[ParamsT]],
    columns: Sequence[np.ndarray],
    *,
    initial: Sequence[float],
    penalizer: float,
    log_prior: LogPrior | None = None,
) -> ParamsT:
    """The positive parameters that minimise the mean of -ln L, minus `log_prior` (a log
    density over the parameter vector, counted once, not per row) over the number of rows, plus
    `penalizer` * their sum of squares; searched with L-BFGS-B and the analytic gradient over
    their logarithms, which keeps them positive. `likelihood_of(*columns)` gives the weighted
    ln L and its gradient. Identical rows of `columns` are merged into weights first: that only
    speeds it up, and makes the result independent of row order. Deterministic."""
    from scipy.optimize import minimize  # fitting only: a process that scores never needs it

    rows, counts = _distinct_rows(columns)
    likelihood, weight = likelihood_of(*rows), counts.astype(float)
    n = weight.sum()

    def objective(log_p: np.ndarray) -> tuple[float, np.ndarray]:
        # A step outside the domain overflows or gives NaN: handled below, not warned about.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            p = np.exp(log_p)
            total, gradient = likelihood.total(params_type(*p), weight)
            if log_prior is not None:
                prior, prior_gradient = log_prior(p)
                total, gradient = total + prior, gradient + prior_gradient
            value = -total / n + penalizer * float(p @ p)
            gradient = p * (2 * penalizer * p - gradient / n)  # d/d ln p = p d/dp
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            return 1e300, np.zeros_like(p)  # outside the domain: the line search steps back
        return value, gradient

    result = minimize(
        objective,
        np.log(np.asarray(initial, dtype=float)),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 1e-16, "gtol": 1e-11},
    )
    log_p = _newton_polish(lambda log_p: objective(log_p)[1], result.x)
    if not np.all(np.isfinite(log_p)):
        raise RuntimeError(f"{params_type.__name__} fit failed: {result.message}")
    return params_type(*(float(v) for v in np.exp(log_p)))


def _distinct_rows(columns: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of `columns`, as columns, in lexicographic order, and how often each
    occurs: the rows, order and counts of `np.unique(np.column_stack(columns), axis=0,
    return_counts=True)` from one lexsort (np.unique sorts a structured view of the rows, which
    costs several times more)."""
    order, new = _runs(columns)
    starts = np.flatnonzero(new)
    distinct = [np.asarray(column)[order[starts]] for column in columns]
    return distinct, np.diff(np.append(starts, len(order)))


def _runs(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The lexicographic order of the rows of `columns`, and where in it each run of equal
    rows starts (NaN equals nothing, so each NaN row is a run of its own)."""
    order = np.lexsort(columns[::-1])  # lexsort's last key is the primary one
    new = np.zeros(len(order), dtype=bool)
    new[:1] = True  # the first row opens a run (an empty input has none)
    for column in columns:
        ordered = np.asarray(column)[order]
        new[1:] |= ordered[1:] != ordered[:-1]
    return order, new


def _newton_polish(gradient_of: Callable[[np.ndarray], np.ndarray], at: np.ndarray) -> np.ndarray:
    """Newton steps on the gradient alone from L-BFGS-B's end point.

    L-BFGS-B's line search compares objective values, so along a flat direction it stops
    where the decrease left is below their rounding (about 1e-14 of the mean ln L): the end
    point then depends on the summation order to ~1e-5. The gradient is accurate to far
    smaller, so solving gradient = 0 pins the point down. The Hessian is forward differences
    of the gradient; a step is kept only while it shrinks the gradient, and none where the
    Hessian is not positive definite (no minimum near: L-BFGS-B's point stays).
    """
    gradient = gradient_of(at)
    for _ in range(_POLISH_STEPS):
        columns = [gradient_of(at + _POLISH_H * unit) - gradient for unit in np.eye(len(at))]
        hessian = np.array(columns) / _POLISH_H
        try:
            lower = np.linalg.cholesky((hessian + hessian.T) / 2)
        except np.linalg.LinAlgError:
            break
        step = np.linalg.solve(lower.T, np.linalg.solve(lower, gradient))
        next_gradient = gradient_of(at - step)
        if not np.linalg.norm(next_gradient) < np.linalg.norm(gradient):
            break  # at the gradient's rounding floor already
        at, gradient = at - step, next_gradient
    return at


def _concentration_prior(p: np.ndarray) -> tuple[float, np.ndarray]:
    """ln density of a + b ~ Exponential(mean DROPOUT_CONCENTRATION), up to a constant."""
    return -(p[2] + p[3]) / DROPOUT_CONCENTRATION, np.array([0.0, 0.0, -1.0, -1.0]) / (
        DROPOUT_CONCENTRATION
    )


def fit(
    x: object,
    t_x: object,
    T: object,
    *,
    initial: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    penalizer: float = 0.0,
) -> BGNBDParams:
    """Maximum a posteriori estimates of (r, alpha, a, b): equation (6) with the weak prior on
    a + b of the module docstring.

    Minimises the mean negative log-posterior (plus `penalizer` * the sum of squared
    parameters, 0 by default) over the log-parameters with L-BFGS-B and the analytic gradient;
    identical (x, t_x, T) rows are merged into weights first, which only speeds it up.
    Deterministic: the same bits whatever the BLAS thread count, and within about 1e-7 (along
    a + b) when the objective's last bits change.
    """
    x, t_x, T = _arrays(x, t_x, T)
    if x.size == 0:
        raise ValueError("fit needs at least one customer")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T) or np.any((x == 0) & (t_x != 0)):
        raise ValueError("need x >= 0, 0 <= t_x <= T, and t_x = 0 where x = 0")
    return _maximum_likelihood(
        BGNBDParams,
        _Likelihood,
        (x, t_x, T),
        initial=initial,
        penalizer=penalizer,
        log_prior=_concentration_prior,
    )
