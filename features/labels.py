"""Point-in-time outcome labels of a task: did a matching event occur (or not) within the horizon?

A snapshot is a (journey, as_of) pair. It is labelled from the journey's events in
(as_of, as_of + horizon] only. A snapshot whose outcome already happened at or before `as_of`
(an `occurs` task) is excluded; one whose horizon runs past the end of the data is censored:
its label is unknown, never negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.config.model import Match, TaskConfig, nanoseconds
from journeyguard.features.eventlog.columns import NS_PER_DAY
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots


@dataclass(frozen=True)
class Outcomes:
    """Labels of snapshots: parallel arrays, one entry per (journey, as_of)."""

    journeys: np.ndarray  # journey codes of the log
    as_of: np.ndarray  # int64 ns, UTC
    positive: np.ndarray  # bool; meaningful where `labelled`
    already_happened: np.ndarray  # bool: the outcome came at or before as_of
    censored: np.ndarray  # bool: the horizon runs past the end of the data

    @property
    def labelled(self) -> np.ndarray:
        """Snapshots with a known label that has not already happened."""
        return ~self.already_happened & ~self.censored


def matching_events(log: EventLog, match: Match) -> np.ndarray:
    """A boolean per event: does it count as the task's outcome?"""
    if match.events:
        codes = np.flatnonzero(np.isin(log.steps, list(match.events)))
        if len(codes) == 0:
            raise ValueError(
                f"none of the task's events {list(match.events)} is in the log; "
                f"steps: {list(log.steps)}"
            )
        return np.isin(log.step_codes, codes)
    column = log.column(match.column)
    if column is None:
        raise ValueError(
            f"task match column {match.column!r} is not in the log; columns: {list(log.columns)}"
        )
    if isinstance(column, Coded):
        return np.isin(column.codes, np.flatnonzero(np.isin(column.categories, match.values)))
    numbers = pd.to_numeric(pd.Series(match.values), errors="coerce").dropna()
    return np.isin(column, numbers.to_numpy(dtype=np.float64))


def label_snapshots(
    log: EventLog,
    task: TaskConfig,
    journeys: np.ndarray,
    as_of: np.ndarray,
    data_end: pd.Timestamp | None = None,
) -> Outcomes:
    """Labels of the snapshots (journeys[i], as_of[i]); `as_of` in int64 ns.

    `data_end` is the last moment the data covers (default: the log's last event).
    """
    end = pd.Timestamp(data_end) if data_end is not None else pd.Timestamp(log.last_time, tz="UTC")
    as_of = np.asarray(as_of, dtype=np.int64)
    horizon = nanoseconds(task.horizon)
    matched_before = np.concatenate(([0], np.cumsum(matching_events(log, task.match))))
    until_as_of = matched_before[log.stops(journeys, as_of)]
    at_as_of = until_as_of - matched_before[log.offsets[journeys]]
    in_window = matched_before[log.stops(journeys, as_of + horizon)] - until_as_of
    happened = at_as_of > 0 if task.label == "occurs" else np.zeros(len(as_of), dtype=bool)
    positive = in_window > 0 if task.label == "occurs" else in_window == 0
    return Outcomes(journeys, as_of, positive, happened, as_of + horizon > end.value)


def label_at(
    log: EventLog, task: TaskConfig, as_of: pd.Timestamp, data_end: pd.Timestamp | None = None
) -> Outcomes:
    """Labels at one `as_of` of every journey with an event at or before it."""
    snapshots = Snapshots.at(log, as_of)
    return label_snapshots(log, task, snapshots.journeys, snapshots.as_of, data_end)


def latest_labelled_as_of(log: EventLog, task: TaskConfig) -> pd.Timestamp:
    """The latest `as_of` whose horizon closes within the data."""
    return pd.Timestamp(log.last_time, tz="UTC") - task.horizon


def task_snapshots(
    log: EventLog, task: TaskConfig, span: tuple[int, int] | None = None
) -> Snapshots:
    """The task's snapshots: on its calendar grid (every journey begun by each grid time), or
    after each of the first n events of every journey (journeys shorter than k have no k-th).

    The grid runs over `span` (first, last event time in ns; default the log's own): a part of
    a larger log (one Spark partition) takes the whole log's span, so its grid is the same."""
    if task.snapshots.prefix is not None:
        lengths = np.diff(log.offsets)
        journeys, as_of = [], []
        for k in range(1, task.snapshots.prefix + 1):
            reached = np.flatnonzero(lengths >= k)
            journeys.append(reached)
            as_of.append(log.times[log.offsets[reached] + k - 1])
        journeys_all, as_of_all = np.concatenate(journeys), np.concatenate(as_of)
        # Two events at one time give one snapshot, not two identical ones.
        key = np.unique(np.stack([journeys_all, as_of_all], axis=1), axis=0)
        return Snapshots(log, key[:, 0], key[:, 1])
    every = nanoseconds(task.snapshots.every)
    first_time, last_time = span if span is not None else (log.first_time, log.last_time)
    first_day = (first_time // NS_PER_DAY) * NS_PER_DAY
    grid = np.arange(first_day + every, last_time + 1, every, dtype=np.int64)
    first_event = log.times[log.offsets[:-1]]
    journeys = [np.flatnonzero(first_event <= moment) for moment in grid]
    as_of = [
        np.full(len(j), moment, dtype=np.int64) for j, moment in zip(journeys, grid, strict=True)
    ]
    return Snapshots(
        log,
        np.concatenate(journeys or [np.zeros(0, np.int64)]),
        np.concatenate(as_of or [np.zeros(0, np.int64)]),
    )


def default_test_from(log: EventLog, task: TaskConfig) -> pd.Timestamp:
    """The start of the last fifth of the time span whose snapshots can be labelled (from the
    first event to the last as_of whose horizon closes within the data)."""
    return span_test_from((log.first_time, log.last_time), task)


def span_test_from(span: tuple[int, int], task: TaskConfig) -> pd.Timestamp:
    """`default_test_from` of a log whose events span (first, last) ns."""
    first_time, last_time = span
    labelled_until = last_time - nanoseconds(task.horizon)
    return pd.Timestamp(first_time + (labelled_until - first_time) * 4 // 5, tz="UTC")


def time_split(as_of: np.ndarray, task: TaskConfig, test_from: pd.Timestamp) -> np.ndarray:
    """'train' for snapshots whose label window closed before `test_from`, 'test' for those
    taken at or after it, 'gap' for the rest (their labels overlap the test period)."""
    closes = as_of + nanoseconds(task.horizon)
    split = np.full(len(as_of), "gap", dtype=object)
    split[closes < test_from.value] = "train"
    split[as_of >= test_from.value] = "test"
    return split
