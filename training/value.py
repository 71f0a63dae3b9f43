"""What is at stake: each customer's expected spend over a task's horizon, from the purchases in
the log, so that a risk list can rank by `value_at_risk = risk x value`.

Purchases are the events with a positive `value`. BG/NBD (how many purchases) and Gamma-Gamma
(how much each) are fitted on the purchases up to `as_of` only; a customer with no purchase yet
has x = 0 and T = the weeks since their first event, as `train` treats them for BG/NBD. Where the
log has no values, or too few repeat buyers to fit, every value is NaN and the reason is kept:
ranking then falls back to risk.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.columns import NS_PER_DAY, VALUE
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots
from journeyguard.training import bgnbd, spend

MIN_REPEAT_BUYERS = 20  # fewer cannot pin down a spend distribution across customers


@dataclass(frozen=True)
class CustomerValues:
    """Expected spend over the horizon per snapshot's customer (NaN where unknown, and why)."""

    value: np.ndarray
    reason: str | None = None


@dataclass(frozen=True)
class ValueModels:
    """BG/NBD (how many purchases) and Gamma-Gamma (how much each), fitted as of one time."""

    rates: bgnbd.BGNBDParams
    amounts: spend.GammaGammaParams


def customer_values(
    snapshots: Snapshots,
    horizon: datetime.timedelta,
    as_of: pd.Timestamp,
    models: ValueModels | str | None = None,
) -> CustomerValues:
    """The expected spend of each snapshot's customer over `horizon` after `as_of`, from the
    purchases of the log at or before `as_of`. `models` (or why there are none) default to
    those fitted on the snapshots' log; a part of a larger log (a Spark partition) passes the
    whole log's (`value_models`)."""
    unknown = np.full(len(snapshots), np.nan)
    as_of_ns = pd.Timestamp(as_of).value
    models = models if models is not None else value_models(snapshots.log, as_of_ns)
    if isinstance(models, str):
        return CustomerValues(unknown, models)
    frequency, recency, T, monetary = _of_snapshots(_summary(snapshots.log, as_of_ns), snapshots)
    value = spend.customer_value(
        models.rates,
        models.amounts,
        frequency,
        recency,
        T,
        monetary,
        horizon / datetime.timedelta(weeks=1),
    )
    return CustomerValues(value)


@functools.lru_cache(maxsize=1)  # the tasks scored at one as_of share one fit (seconds)
def value_models(log: EventLog, as_of_ns: int) -> ValueModels | str:
    """Both value models fitted on the purchases of `log` as of `as_of_ns`, or why there are
    none."""
    summary = _summary(log, as_of_ns)
    if summary is None:
        return "the log has no purchase values"
    if int((summary.frequency > 0).sum()) < MIN_REPEAT_BUYERS:
        return f"fewer than {MIN_REPEAT_BUYERS} repeat buyers"
    try:
        rates = bgnbd.fit(summary.frequency, summary.recency, summary.T)
        amounts_model = spend.fit(summary.frequency, summary.monetary)
    except ValueError as error:
        return f"the value models could not be fitted: {error}"
    return ValueModels(rates, amounts_model)


def _of_snapshots(
    summary: spend.SpendSummary | None, snapshots: Snapshots
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each snapshot's customer's frequency, recency, T and monetary; a customer without a
    purchase yet (a part of the log may have none) has 0, 0, the weeks since its first event
    and 0."""
    n = snapshots.log.n_journeys
    bought, frequency, recency, T, monetary = np.zeros(n, dtype=bool), *np.zeros((4, n))
    if summary is not None:  # its customers are the log's journey codes
        at = summary.customers
        bought[at], frequency[at], recency[at] = True, summary.frequency, summary.recency
        T[at], monetary[at] = summary.T, summary.monetary
    at = snapshots.journeys
    weeks_known = (snapshots.as_of - snapshots.log.times[snapshots.starts]) / (7 * NS_PER_DAY)
    return frequency[at], recency[at], np.where(bought[at], T[at], weeks_known), monetary[at]


@functools.lru_cache(maxsize=2)
def _summary(log: EventLog, as_of_ns: int) -> spend.SpendSummary | None:
    """The purchase summary (frequency, recency, T, monetary) per journey code as of
    `as_of_ns`: purchases are the events with a positive value at or before then."""
    column = log.column(VALUE)
    if column is None or isinstance(column, Coded):
        return None
    bought = (column > 0) & (log.times <= as_of_ns)  # NaN is not > 0
    if not bought.any():
        return None
    codes, times = log.journey_codes[bought], log.times[bought]
    return spend.spend_summary_arrays(codes, times, column[bought], as_of_ns)
