"""Who a task is for: the journeys eligible for a risk at each snapshot's `as_of`, decided here
once for the dataset, batch scoring, the service, monitoring, the console and outreach.

A task without a population is for every journey with an event. `active_within` keeps the
journeys with an event (of the given steps, or any) within that time before `as_of`; one that had
such an event earlier and none since has gone quiet: it is **lapsed** (for win-back, never ranked
among those at risk). `open_case` keeps the journeys with a case still open (`features.cases`).
A journey outside the population gets a reason in words instead of a risk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.cases import open_cases
from journeyguard.features.config.model import Population, TaskConfig, nanoseconds
from journeyguard.features.eventlog.columns import NS_PER_DAY
from journeyguard.features.eventlog.log import EventLog, Snapshots


@dataclass(frozen=True)
class Eligibility:
    """Per snapshot: in the population or not, why not (None when in), and whether it lapsed."""

    eligible: np.ndarray  # bool
    lapsed: np.ndarray  # bool: was active, then quiet past `active_within`
    quiet_days: np.ndarray  # days since the last activity that counts (NaN: none yet)
    reasons: np.ndarray  # object: None where eligible

    def __len__(self) -> int:
        return len(self.eligible)


def eligibility(snapshots: Snapshots, task: TaskConfig) -> Eligibility:
    """Who of `snapshots` the task is for, each at its own `as_of`."""
    population = task.population
    everyone = np.ones(len(snapshots), dtype=bool)
    if population is None:
        return Eligibility(everyone, ~everyone, np.full(len(snapshots), np.nan), _none(everyone))
    if population.open_case:
        assert population.cases is not None, "the config reader sets the case definition"
        eligible = open_cases(snapshots, population.cases) > 0
        reasons = np.where(eligible, None, "no open case").astype(object)
        return Eligibility(eligible, ~everyone, np.full(len(snapshots), np.nan), reasons)
    return _active(snapshots, population)


def eligible_snapshots(snapshots: Snapshots, task: TaskConfig) -> Snapshots:
    """The snapshots the task is for."""
    return snapshots.subset(eligibility(snapshots, task).eligible)


def lapsed_list(log: EventLog, task: TaskConfig, as_of: pd.Timestamp) -> pd.DataFrame:
    """The journeys that have lapsed by `as_of` (active once, quiet past `active_within` since),
    the most recently active first, for win-back: customer_id, as_of, last_active, quiet_days,
    reason. Empty for a task whose population is not `active_within`."""
    snapshots = Snapshots.at(log, as_of)
    found = eligibility(snapshots, task)
    lapsed = snapshots.subset(found.lapsed)
    quiet = found.quiet_days[found.lapsed]
    table = pd.DataFrame(
        {
            "customer_id": lapsed.customer_ids.astype(str),
            "as_of": pd.Timestamp(as_of),
            "task": task.name,
            "last_active": pd.Timestamp(as_of) - pd.to_timedelta(quiet, unit="D").round("s"),
            "quiet_days": quiet,
            "reason": found.reasons[found.lapsed].astype(str),
        }
    )
    return table.sort_values(["quiet_days", "customer_id"], ignore_index=True)


def _active(snapshots: Snapshots, population: Population) -> Eligibility:
    assert population.active_within is not None
    log = snapshots.log
    counts = _activity(log, population.events)
    last = _last_flagged(counts, snapshots.starts, snapshots.stops)
    quiet_ns = snapshots.as_of - log.times[np.maximum(last, 0)]
    quiet_days = np.where(last >= 0, quiet_ns / NS_PER_DAY, np.nan)
    eligible = (last >= 0) & (quiet_ns <= nanoseconds(population.active_within))
    lapsed = (last >= 0) & ~eligible
    what = " or ".join(population.events) if population.events else "activity"
    reasons = np.empty(len(snapshots), dtype=object)
    # Formatted once per whole number of days: rint rounds as the format does (half to even).
    days, at = np.unique(np.rint(quiet_days[lapsed]), return_inverse=True)
    texts = np.array([f"no {what} for {day:.0f} days: lapsed" for day in days], dtype=object)
    reasons[lapsed] = texts[at]
    reasons[last < 0] = f"no {what} yet"
    return Eligibility(eligible, lapsed, quiet_days, reasons)


def _activity(log: EventLog, events: tuple[str, ...]) -> np.ndarray:
    """Per event, whether it counts as activity: any step, or one of `events`."""
    if not events:
        return np.ones(log.n_events, dtype=bool)
    return np.isin(log.step_codes, np.flatnonzero(np.isin(log.steps, list(events))))


def _last_flagged(flags: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Per range [start, stop) of events, the index of its last flagged event; -1 when none."""
    indices = np.where(flags, np.arange(len(flags)), -1)
    latest = np.maximum.accumulate(indices) if len(indices) else indices
    last = latest[np.maximum(stops - 1, 0)] if len(latest) else np.full(len(stops), -1)
    return np.where((stops > starts) & (last >= starts), last, -1)


def _none(like: np.ndarray) -> np.ndarray:
    return np.full(len(like), None, dtype=object)
