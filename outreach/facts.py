"""What the outreach policy needs to know about each customer besides its risk, at `as_of`.

`customer_facts` reads the event log as it stood at `as_of` (events after it never count) and
gives one row per customer: the money spent so far (`value`) and whether a support case is still
open. Pure and vectorised: no clock, no loops over customers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.columns import CUSTOMER_ID, VALUE
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots

FACT_COLUMNS = ("value", "open_case")


def customer_facts(
    log: EventLog,
    as_of: pd.Timestamp,
    opens_case: tuple[str, ...],
    closes_case: tuple[str, ...],
) -> pd.DataFrame:
    """One row per customer with an event at or before `as_of`, indexed by customer_id:
    `value` (the total of the log's `value` column so far, 0 without one) and `open_case`
    (the latest opening or closing event so far opens a case).

    A case opened and closed at the same moment counts as closed, whatever the event names:
    the order of simultaneous events says nothing about which came first.
    """
    snapshots = Snapshots.at(log, as_of)
    seen = log.times <= pd.Timestamp(as_of).value
    opening = seen & np.isin(log.step_codes, _codes(log, opens_case))
    closing = seen & np.isin(log.step_codes, _codes(log, closes_case))
    return pd.DataFrame(
        {
            "value": spend_until(log, seen)[snapshots.journeys],
            "open_case": _case_open(log, snapshots, opening, closing),
        },
        index=pd.Index(snapshots.customer_ids.astype(str), name=CUSTOMER_ID),
    )


def _codes(log: EventLog, steps: tuple[str, ...]) -> np.ndarray:
    """The step codes of the named steps; names absent from the log match nothing."""
    return np.flatnonzero(np.isin(log.steps, list(steps)))


def spend_until(log: EventLog, seen: np.ndarray) -> np.ndarray:
    """Per journey, the total `value` of its events seen (missing values count as 0).

    Summed within each journey (not as differences of one running total over the whole log),
    so a customer's total is exact to the cent however large the log: `min_value` thresholds
    compare against it.
    """
    column = log.column(VALUE)
    if column is None or isinstance(column, Coded) or log.n_events == 0:
        return np.zeros(log.n_journeys, dtype=np.float64)
    amounts = np.where(seen, np.nan_to_num(column, nan=0.0), 0.0)
    return np.add.reduceat(amounts, log.offsets[:-1])


def _case_open(
    log: EventLog, snapshots: Snapshots, opening: np.ndarray, closing: np.ndarray
) -> np.ndarray:
    """Whether each snapshot's latest case event opens a case and no closing event shares its
    moment."""
    starts, stops = snapshots.starts, snapshots.stops
    last_case = _last_flagged(opening | closing, starts, stops)
    last_close = _last_flagged(closing, starts, stops)
    case_time = log.times[np.maximum(last_case, 0)]
    closed_then = (last_close >= 0) & (log.times[np.maximum(last_close, 0)] == case_time)
    return (last_case >= 0) & ~closed_then


def _last_flagged(flags: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Per range [start, stop) of events, the index of its last flagged event; -1 when none."""
    indices = np.where(flags, np.arange(len(flags)), -1)
    latest = np.maximum.accumulate(indices) if len(indices) else indices
    last = latest[np.maximum(stops - 1, 0)]
    return np.where((stops > starts) & (last >= starts), last, -1)
