"""Cases, defined once: what a case is, when it starts and ends, and which are open at a moment.

A case is keyed by the `case_column` of `[kpis] resolution` (a ticket id), or is the journey
itself when that column is not set. Its start steps open it and its end steps close it; a case
is open at t when its latest start or end step at or before t is a start. Steps at one moment
that both open and close a case leave it closed: the order of simultaneous events says nothing
about which came first. The KPI resolution time (`measures.resolution_cases`), the `open_case`
population of a task and outreach's facts all read cases through this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyguard.features.config.model import ResolutionKpi
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots


@dataclass(frozen=True)
class CaseSteps:
    """Per event of a log: the key of its case (-1 when the event belongs to none) and whether
    it is one of the start or end steps."""

    case: np.ndarray  # int64 per event
    n_cases: int
    starts: np.ndarray  # bool per event
    ends: np.ndarray  # bool per event


def case_steps(log: EventLog, definition: ResolutionKpi) -> CaseSteps | str:
    """The cases of `log`, or why it has none: no start step, or no case column."""
    if not set(log.steps.tolist()) & set(definition.start):
        return f"none of the start steps {list(definition.start)} is in the log"
    if definition.case_column is None:
        case, n_cases = log.journey_codes.astype(np.int64), log.n_journeys
    else:
        column = log.column(definition.case_column)
        if not isinstance(column, Coded):
            return f"no text column {definition.case_column!r} (the case id) in the log"
        # Keyed within the journey too: a case id seen in two journeys is two cases.
        known = column.codes >= 0
        key = log.journey_codes * len(column.categories) + column.codes
        case = np.full(log.n_events, -1, dtype=np.int64)
        distinct, case[known] = np.unique(key[known], return_inverse=True)
        n_cases = len(distinct)
    starts = np.isin(log.step_codes, np.flatnonzero(np.isin(log.steps, list(definition.start))))
    ends = np.isin(log.step_codes, np.flatnonzero(np.isin(log.steps, list(definition.end))))
    return CaseSteps(case, n_cases, starts & (case >= 0), ends & (case >= 0))


def open_cases(snapshots: Snapshots, definition: ResolutionKpi) -> np.ndarray:
    """How many cases of each snapshot's journey are open at its `as_of` (0 when the log has no
    such cases)."""
    log = snapshots.log
    found = case_steps(log, definition)
    if isinstance(found, str) or log.n_events == 0:
        return np.zeros(len(snapshots), dtype=np.int64)
    running = np.cumsum(_openings(log, found))
    before = np.concatenate(([0], running))
    return before[snapshots.stops] - before[snapshots.starts]


def _openings(log: EventLog, found: CaseSteps) -> np.ndarray:
    """Per event, +1 where it leaves its case open after it was closed, -1 where it closes an
    open case, else 0; a case's events at one moment act together at the last of them."""
    flagged = np.flatnonzero(found.starts | found.ends)
    delta = np.zeros(log.n_events, dtype=np.int64)
    if len(flagged) == 0:
        return delta
    # A case stays in its journey, so its events keep their time order.
    order = flagged[np.argsort(found.case[flagged], kind="stable")]
    case, times = found.case[order], log.times[order]
    group = np.concatenate(([True], (case[1:] != case[:-1]) | (times[1:] != times[:-1])))
    group_id = np.cumsum(group) - 1
    closes = np.zeros(group_id[-1] + 1, dtype=bool)
    np.logical_or.at(closes, group_id, found.ends[order])
    state = (~closes).astype(np.int64)  # open after each moment of a case
    first_of_case = np.concatenate(([True], case[1:] != case[:-1]))
    group_case_start = first_of_case[group]
    previous = np.concatenate(([0], state[:-1]))
    previous[group_case_start] = 0
    last_of_group = np.concatenate((group[1:], [True]))
    delta[order[last_of_group]] = state - previous
    return delta
