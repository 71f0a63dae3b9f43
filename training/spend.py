"""The Gamma-Gamma model of spend per purchase (Fader, Hardie and Lee 2005, "RFM and CLV: using
iso-value curves for customer base analysis", Journal of Marketing Research 42(4), 415-430; Fader
and Hardie 2013, "The Gamma-Gamma model of monetary value").

A customer's purchase values are Gamma(shape p, rate nu), independently of each other and of when
the purchases happen; nu varies across customers as Gamma(shape q, rate gamma). A customer is
summarised by x, the repeat purchases as BG/NBD counts them, and m, the mean value of those x
purchases: the first purchase is left out, as in the paper. Because spend is independent of the
purchase process, the value expected over a horizon is the BG/NBD count times the expected spend
per purchase (`customer_value`).

All functions are pure and vectorised over customers; nothing reads the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from journeyguard.training.bgnbd import (
    DAY_NS,
    WEEK,
    BGNBDParams,
    _arrays,
    _dot,
    _maximum_likelihood,
    days_per,
    expected_purchases,
    purchase_days,
    rfm_summary,
)


@dataclass(frozen=True)
class GammaGammaParams:
    """Population parameters: a purchase's value ~ Gamma(shape p, rate nu) given the customer's
    nu, and nu ~ Gamma(shape q, rate gamma) across customers; `gamma` is the paper's γ."""  # noqa: RUF002

    p: float
    q: float
    gamma: float


def spend_summary(
    customer_ids: Sequence[object] | np.ndarray | pd.Series,
    times: Sequence[object] | np.ndarray | pd.Series,
    values: Sequence[float] | np.ndarray | pd.Series,
    as_of: object,
    *,
    period: np.timedelta64 = WEEK,
) -> pd.DataFrame:
    """`bgnbd.rfm_summary` (`frequency`, `recency`, `T`) with a fourth column, `monetary`: the
    mean value of the customer's repeat purchases as of `as_of`.

    As lifetimes' `summary_data_from_transaction_data(..., monetary_value_col=...)` does it: the
    purchases of one UTC day are merged into one, their values summed, so `monetary` averages
    over exactly the `frequency` purchases that BG/NBD counts; the first day is left out, and
    customers without a repeat purchase get 0 (the model ignores their `monetary`).
    """
    rfm = rfm_summary(customer_ids, times, as_of, period=period)
    days = purchase_days(customer_ids, times, as_of, values)
    repeats = days[days["customer_id"].duplicated()]  # rows are sorted by customer, then day
    mean = repeats.groupby("customer_id", sort=True)["value"].mean()
    return rfm.assign(monetary=mean.reindex(rfm.index, fill_value=0.0))


@dataclass(frozen=True)
class SpendSummary:
    """`spend_summary`'s columns as arrays, one entry per customer with a purchase, customers
    as integer codes in ascending order."""

    customers: np.ndarray  # int64 codes
    frequency: np.ndarray  # int64
    recency: np.ndarray
    T: np.ndarray
    monetary: np.ndarray


def spend_summary_arrays(
    customers: np.ndarray,
    ns: np.ndarray,
    values: np.ndarray,
    as_of_ns: int,
    *,
    period: np.timedelta64 = WEEK,
) -> SpendSummary:
    """`spend_summary` of purchases given as a log holds them: `customers` as integer codes
    (>= 0), `ns` as int64 ns since the epoch (UTC), `values` without NaN. The same numbers, from
    one pass of numpy over the purchases instead of strings, datetimes and pandas groupbys.

    A day's values and a customer's repeat days' values are added by `np.add.reduceat` in the
    purchases' order, as pandas 3.1 adds groups already in order (pandas-dev/pandas#65103), and
    a log's purchases are in order (by customer, then time): the same bits as `spend_summary`
    of them. Pandas before 3.1, and any pandas for rows out of order, adds with Kahan's
    compensation, which can differ in the last bit where three or more values are added.
    """
    keep = ns <= as_of_ns
    customers = np.asarray(customers[keep], dtype=np.int64)
    days, spend = ns[keep] // DAY_NS, np.asarray(values[keep], dtype=np.float64)
    if not len(days):
        none, empty = np.zeros(0, dtype=np.int64), np.zeros(0)
        return SpendSummary(none, none, empty, empty, empty)
    if not _in_order(customers, days):
        order = np.lexsort((days, customers))  # stable: a day's values keep their order
        customers, days, spend = customers[order], days[order], spend[order]
    # One row per customer and day: the unit BG/NBD counts.
    opens = np.flatnonzero(_changes(customers) | _changes(days))
    customer, day, day_value = customers[opens], days[opens], np.add.reduceat(spend, opens)
    first = np.flatnonzero(_changes(customer))
    last = np.append(first[1:], len(customer)) - 1
    frequency = (last - first).astype(np.int64)  # the days after the first
    return SpendSummary(
        customers=customer[first],
        frequency=frequency,
        recency=(day[last] - day[first]).astype(float) / days_per(period),
        T=(as_of_ns // DAY_NS - day[first]).astype(float) / days_per(period),
        monetary=_repeat_means(day_value, first, frequency),
    )


def _in_order(customers: np.ndarray, days: np.ndarray) -> bool:
    """Whether the rows are sorted by customer, then day."""
    later = customers[1:] > customers[:-1]
    return bool(np.all(later | ((customers[1:] == customers[:-1]) & (days[1:] >= days[:-1]))))


def _changes(values: np.ndarray) -> np.ndarray:
    """Whether each row differs from the one before (the first row does)."""
    changed = np.ones(len(values), dtype=bool)
    changed[1:] = values[1:] != values[:-1]
    return changed


def _repeat_means(day_value: np.ndarray, first: np.ndarray, frequency: np.ndarray) -> np.ndarray:
    """Per customer, the mean value of its days after the first (its rows `first + 1` to
    `first + frequency`), 0 where it has none: the mean spend_summary takes."""
    repeat = np.ones(len(day_value), dtype=bool)
    repeat[first] = False
    again = frequency > 0
    monetary = np.zeros(len(first))
    if again.any():
        # each customer's first repeat row among the repeat rows
        starts = (np.cumsum(frequency) - frequency)[again]
        sums = np.add.reduceat(day_value[repeat], starts)
        monetary[again] = sums / frequency[again].astype(np.float64)
    return monetary


def log_likelihood(params: GammaGammaParams, frequency: object, monetary: object) -> np.ndarray:
    """Per-customer ln f(m | p, q, gamma, x) for repeat buyers (x > 0): given nu, the mean of x
    values is Gamma(p x, x nu); integrating nu out,

    f = Gamma(p x + q) / (Gamma(p x) Gamma(q))
        * gamma^q x^(p x) m^(p x - 1) / (gamma + x m)^(p x + q).
    """
    x, m = _arrays(frequency, monetary)
    return _Likelihood(x.ravel(), m.ravel())(params).reshape(x.shape)


class _Likelihood:
    """`log_likelihood` of fixed customers as a function of the parameters, as `fit` evaluates
    it: the special functions once per distinct purchase count (there are few), the logarithms
    of x and m once; each customer's value is the same float as computed row by row."""

    def __init__(self, x: np.ndarray, m: np.ndarray) -> None:
        self.x, self.x_at = np.unique(x, return_inverse=True)
        self.log_x, self.log_m, self.x_m = np.log(x), np.log(m), x * m

    def __call__(self, params: GammaGammaParams) -> np.ndarray:
        p, q, gamma = params.p, params.q, params.gamma
        pxs = p * self.x
        px = pxs[self.x_at]
        return (
            (gammaln(pxs + q) - gammaln(pxs) - gammaln(q) + q * np.log(gamma))[self.x_at]
            + px * self.log_x
            + (px - 1) * self.log_m
            - (px + q) * np.log(gamma + self.x_m)
        )

    def total(self, params: GammaGammaParams, weight: np.ndarray) -> tuple[float, np.ndarray]:
        """sum(weight * ln f) and its gradient in (p, q, gamma); digamma once per distinct x."""
        p, q, gamma = params.p, params.q, params.gamma
        pxs = p * self.x
        per_x = np.bincount(self.x_at, weight, minlength=len(self.x))
        log_gamma_x_m = np.log(gamma + self.x_m)
        psi_pxq = digamma(pxs + q)
        x = self.x[self.x_at]
        gradient = np.array(
            [
                float(per_x @ (self.x * (psi_pxq - digamma(pxs))))
                + _dot(weight * x, self.log_x + self.log_m - log_gamma_x_m),
                float(per_x @ (psi_pxq - digamma(q) + np.log(gamma))) - _dot(weight, log_gamma_x_m),
                per_x.sum() * q / gamma - _dot(weight, (p * x + q) / (gamma + self.x_m)),
            ]
        )
        return _dot(weight, self(params)), gradient


def population_mean(params: GammaGammaParams) -> float:
    """E[value of a purchase] = gamma p / (q - 1), which exists only for q > 1."""
    if params.q <= 1:
        raise ValueError(
            f"the mean spend is infinite for q <= 1 (q = {params.q}): nu has too much mass near 0"
        )
    return params.gamma * params.p / (params.q - 1)


def expected_average_spend(
    params: GammaGammaParams, frequency: object, monetary: object
) -> np.ndarray:
    """E[M | x, m], the expected value of the customer's next purchases:

    (q - 1)/(p x + q - 1) * gamma p/(q - 1) + p x/(p x + q - 1) * m,

    a weighted mean of the population mean and the customer's own mean m, whose weight grows
    with x. For x = 0 it is the population mean and m is ignored (it may be 0 or NaN there).
    """
    prior = population_mean(params)
    x, m = _arrays(frequency, monetary)
    weight = params.p * x / (params.p * x + params.q - 1)
    return (1 - weight) * prior + np.where(x > 0, weight * m, 0.0)


def customer_value(
    bgnbd_params: BGNBDParams,
    spend_params: GammaGammaParams,
    frequency: object,
    recency: object,
    T: object,
    monetary: object,
    horizon_periods: object,
) -> np.ndarray:
    """The value each customer is expected to spend in the next `horizon_periods` (in the
    periods of `recency` and `T`): BG/NBD's expected repeat purchases times the Gamma-Gamma
    expected spend per purchase, a product because the model makes the two independent.

    Not discounted: it is money as it will be spent over the horizon, not the paper's
    discounted CLV, so compare customers over the same horizon and keep it short where the
    time value of money matters.
    """
    count = expected_purchases(bgnbd_params, horizon_periods, frequency, recency, T)
    return count * expected_average_spend(spend_params, frequency, monetary)


def fit(
    frequency: object,
    monetary: object,
    *,
    initial: tuple[float, float, float] = (1.0, 1.0, 1.0),
    penalizer: float = 0.0,
) -> GammaGammaParams:
    """Maximum-likelihood estimates of (p, q, gamma) from the repeat buyers (x > 0) among the
    customers given; the others carry no information on spend and are left out.

    Minimises the mean negative log-likelihood (plus `penalizer` * the sum of squared
    parameters, 0 by default) over the log-parameters with L-BFGS-B, as `bgnbd.fit` does;
    identical (x, m) rows are merged into weights first, so row order does not matter.
    Deterministic. gamma is in money units, so the penalty's effect depends on the currency: with
    a mean spend of about 30, 0.01 already pushes q toward 1, where the mean spend blows up.

    Raises ValueError where there is no repeat buyer, a repeat buyer's mean spend is not
    positive, or the estimate has q <= 1 (no finite mean spend to predict with).
    """
    x, m = _arrays(frequency, monetary)
    if np.any(x < 0) or not np.all(np.isfinite(x)):
        raise ValueError("frequency must be finite and >= 0")
    repeat = x > 0
    if not repeat.any():
        raise ValueError("fit needs at least one repeat buyer (frequency > 0)")
    bad = repeat & ~(np.isfinite(m) & (m > 0))
    if bad.any():
        raise ValueError(
            f"the mean spend of every repeat buyer must be finite and > 0; {bad.sum()} are not, "
            f"e.g. {m[bad][:3].tolist()} (refunds netted to nothing? drop or fix those rows)"
        )
    params = _maximum_likelihood(
        GammaGammaParams,
        _Likelihood,
        (x[repeat], m[repeat]),
        initial=initial,
        penalizer=penalizer,
    )
    if params.q <= 1:
        # the penalty pulls gamma, in money units, toward 0 and q with it
        hint = f" or lower the penalizer ({penalizer})" if penalizer > 0 else ""
        raise ValueError(
            f"the fitted q is {params.q:.3g} <= 1: spend is so heavy-tailed that its mean is "
            f"infinite and the expected spend undefined; check for outlying values{hint}"
        )
    return params
