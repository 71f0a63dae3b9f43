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

from features.config import Match, TaskConfig
from features.schema import EventLog, Snapshots


@dataclass(frozen=True)
class Outcomes:
    """Labels of snapshots: parallel arrays, one entry per (journey, as_of)."""

    journeys: np.ndarray  # journey codes of the log
    as_of: np.ndarray  # int64 ns, UTC
    positive: np.ndarray  # bool; meaningful where `eligible`
    already_happened: np.ndarray  # bool: the outcome came at or before as_of
    censored: np.ndarray  # bool: the horizon runs past the end of the data

    @property
    def eligible(self) -> np.ndarray:
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
    if match.column not in log.events.columns:
        raise ValueError(
            f"task match column {match.column!r} is not in the log; columns: "
            f"{list(log.events.columns)}"
        )
    return log.events[match.column].astype("string").isin(match.values).to_numpy(dtype=bool)


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
    end = pd.Timestamp(data_end) if data_end is not None else log.events["timestamp"].max()
    as_of = np.asarray(as_of, dtype=np.int64)
    horizon = task.horizon.value
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
    return log.events["timestamp"].max() - task.horizon
