"""What the outreach policy needs to know about each customer besides its risk, at `as_of`.

`customer_facts` reads the event log as it stood at `as_of` (events after it never count) and
gives one row per customer: the money spent so far (`value`) and whether a support case is still
open (`features.cases`, the definition the KPIs and a task's population share). Pure and
vectorised: no clock, no loops over customers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from journeyguard.features.cases import open_cases
from journeyguard.features.config.model import ResolutionKpi
from journeyguard.features.eventlog.columns import CUSTOMER_ID, NUMBER_LIMIT, VALUE
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots

FACT_COLUMNS = ("value", "open_case")


def customer_facts(log: EventLog, as_of: pd.Timestamp, cases: ResolutionKpi | None) -> pd.DataFrame:
    """One row per customer with an event at or before `as_of`, indexed by customer_id:
    `value` (the total of the log's `value` column so far, 0 without one) and `open_case`
    (a case of theirs is open then, by the one definition of `features.cases`; never without
    a definition of cases)."""
    snapshots = Snapshots.at(log, as_of)
    seen = log.times <= pd.Timestamp(as_of).value
    still_open = (
        open_cases(snapshots, cases) > 0
        if cases is not None
        else np.zeros(len(snapshots), dtype=bool)
    )
    return pd.DataFrame(
        {"value": spend_until(log, seen)[snapshots.journeys], "open_case": still_open},
        index=pd.Index(snapshots.customer_ids.astype(str), name=CUSTOMER_ID),
    )


def spend_until(log: EventLog, seen: np.ndarray) -> np.ndarray:
    """Per journey, the total `value` of its events seen (missing values count as 0).

    Summed within each journey (not as differences of one running total over the whole log),
    so a customer's total is exact to the cent however large the log: `min_value` thresholds
    compare against it.
    """
    column = log.column(VALUE)
    if column is None or isinstance(column, Coded) or log.n_events == 0:
        return np.zeros(log.n_journeys, dtype=np.float64)
    # Clipped as the loader bounds them, so a log of any origin never totals inf.
    bounded = np.clip(np.nan_to_num(column, nan=0.0), -NUMBER_LIMIT, NUMBER_LIMIT)
    amounts = np.where(seen, bounded, 0.0)
    return np.add.reduceat(amounts, log.offsets[:-1])
