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
    summary = _summary(snapshots.log, as_of_ns)
    if summary is None:  # a part of the log without purchases: nobody here has bought yet
        summary = pd.DataFrame(columns=["frequency", "recency", "T", "monetary"], dtype=float)
    log = snapshots.log
    row = summary.reindex(pd.Index(snapshots.customer_ids.astype(str)))
    first = log.times[snapshots.starts]
    weeks_known = (snapshots.as_of - first) / (7 * NS_PER_DAY)
    value = spend.customer_value(
        models.rates,
        models.amounts,
        row["frequency"].fillna(0).to_numpy(),
        row["recency"].fillna(0).to_numpy(),
        row["T"].fillna(pd.Series(weeks_known, index=row.index)).to_numpy(),
        row["monetary"].fillna(0).to_numpy(),
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
    if int((summary["frequency"] > 0).sum()) < MIN_REPEAT_BUYERS:
        return f"fewer than {MIN_REPEAT_BUYERS} repeat buyers"
    try:
        rates = bgnbd.fit(summary["frequency"], summary["recency"], summary["T"])
        amounts_model = spend.fit(summary["frequency"], summary["monetary"])
    except ValueError as error:
        return f"the value models could not be fitted: {error}"
    return ValueModels(rates, amounts_model)


@functools.lru_cache(maxsize=2)
def _summary(log: EventLog, as_of_ns: int) -> pd.DataFrame | None:
    """The purchase summary (frequency, recency, T, monetary) per customer as of `as_of_ns`."""
    purchases = _purchases(log, as_of_ns)
    if purchases is None:
        return None
    ids, times, amounts = purchases
    return spend.spend_summary(ids, times, amounts, pd.Timestamp(as_of_ns, tz="UTC"))


def _purchases(log: EventLog, as_of_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The customer, time and value of every purchase (a positive value) at or before then."""
    column = log.column(VALUE)
    if column is None or isinstance(column, Coded):
        return None
    bought = (np.nan_to_num(column, nan=0.0) > 0) & (log.times <= as_of_ns)
    if not bought.any():
        return None
    ids = log.journey_ids[log.journey_codes[bought]].astype(str)
    return ids, log.times[bought], column[bought]
