"""BG/NBD quantities as features of snapshots, for the `absent` tasks (churn).

A snapshot's purchases are its journey's events at or before its `as_of` that the task's
`match` selects. They are counted as `bgnbd.rfm_summary` counts them (UTC days, purchases of
one day count once, weeks): x repeat purchase days, t_x from the first purchase to the last,
T from the first purchase to `as_of`; a journey without a purchase yet has x = t_x = 0 and T
from its first event. The population parameters are fitted once, on the purchases of the fit
slice's journeys up to the end of training; every snapshot then gets its own numbers from its
own events, by the same code in training, batch scoring and the service.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.config.model import Match
from journeyguard.features.eventlog.columns import NS_PER_DAY
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.labels import matching_events
from journeyguard.training import bgnbd

PREFIX = "bgnbd__"
NAMES = [
    f"{PREFIX}{name}"
    for name in ("expected_purchases", "p_alive", "frequency", "recency_weeks", "age_weeks")
]
_DAYS_PER_WEEK = 7


@dataclass(frozen=True)
class BGNBDFeatures:
    """Fitted BG/NBD parameters and what a purchase is; `columns` gives any snapshots' values."""

    params: bgnbd.BGNBDParams
    match: Match
    horizon_weeks: float

    @classmethod
    def fit(cls, snapshots: Snapshots, match: Match, horizon: pd.Timedelta) -> BGNBDFeatures:
        """Parameters from the purchases the snapshots see (one per fit journey, at the end of
        training); ValueError when none of them bought twice (nothing to fit)."""
        x, t_x, age, bought = summary(snapshots, match)
        if not (x[bought] > 0).any():
            raise ValueError("no journey of the fit slice has a repeat purchase")
        params = bgnbd.fit(x[bought], t_x[bought], age[bought])
        return cls(params, match, horizon / pd.Timedelta(days=_DAYS_PER_WEEK))

    def columns(self, snapshots: Snapshots) -> dict[str, np.ndarray]:
        """`NAMES` -> one float64 value per snapshot."""
        x, t_x, age, _ = summary(snapshots, self.match)
        expected = bgnbd.expected_purchases(self.params, self.horizon_weeks, x, t_x, age)
        alive = bgnbd.probability_alive(self.params, x, t_x, age)
        return dict(zip(NAMES, (expected, alive, x, t_x, age), strict=True))


def summary(
    snapshots: Snapshots, match: Match
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per snapshot: x, t_x and T in weeks, and whether it has a purchase yet."""
    log, starts, stops = snapshots.log, snapshots.starts, snapshots.stops
    purchase = purchases(log, match)
    day = log.times // NS_PER_DAY
    index = np.flatnonzero(purchase)
    journey = log.journey_codes[index]
    # The first purchase of each day of each journey: the days counted.
    first_of_day = np.ones(len(index), dtype=bool)
    first_of_day[1:] = (journey[1:] != journey[:-1]) | (day[index][1:] != day[index][:-1])
    counted = np.zeros(log.n_events + 1, dtype=np.int64)
    counted[index[first_of_day] + 1] = 1
    days_seen = np.cumsum(counted)
    purchase_days = days_seen[stops] - days_seen[starts]
    # Each snapshot's first purchase (the first at or after its start) and latest (before stop).
    events = np.arange(log.n_events)
    next_purchase = np.minimum.accumulate(np.where(purchase, events, log.n_events)[::-1])[::-1]
    latest_purchase = np.maximum.accumulate(np.where(purchase, events, -1))
    bought = purchase_days > 0
    first = np.where(bought, next_purchase[np.minimum(starts, log.n_events - 1)], starts)
    last = np.where(bought, latest_purchase[np.maximum(stops - 1, 0)], starts)
    as_of_day = snapshots.as_of // NS_PER_DAY
    x = np.maximum(purchase_days - 1, 0).astype(np.float64)
    t_x = (day[last] - day[first]) / _DAYS_PER_WEEK
    age = (as_of_day - day[first]) / _DAYS_PER_WEEK
    return x, t_x.astype(np.float64), age.astype(np.float64), bought


def purchases(log: EventLog, match: Match) -> np.ndarray:
    """A boolean per event: is it a purchase? `features.labels.matching_events`, except that a
    log without the task's events or column (a request's few journeys) has no purchase rather
    than being an error."""
    if match.events:
        absent = not np.isin(log.steps, list(match.events)).any()
    else:
        absent = log.column(match.column) is None
    return np.zeros(log.n_events, dtype=bool) if absent else matching_events(log, match)
