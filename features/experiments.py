"""Randomised experiments as rows to learn uplift from: who was treated, who was kept as
control, when, and what happened next.

Each journey counts once, at its first treatment or control moment (a customer held out again
and again, or contacted twice, is one trial, as in the outreach effect report). Its features
are those of the journey at that moment, with the moment itself as one neutral `OFFER` event:
the arm's own events become that step for both arms and the column that narrowed them is
blanked (on every event: a per-journey attribute would repeat the arm), so
the features never tell who was treated, yet keep what the event carried (the attributes of a
campaign's export). An experiment whose arms are not events (the outbox's decisions) gets the
same `OFFER` event added at each moment, and so does a customer scored later for the action
(`with_offers`): training and scoring see the same shape. The outcome is the experiment's task,
labelled over the task's horizon after the moment (`features.labels`). Unlike a risk snapshot,
an outcome that happened before the moment does not leave the row out (a visit or a purchase
recurs: the question is whether one follows the action); a horizon running past the data does,
counted in `excluded`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from journeyguard.features.config.model import ExperimentConfig, Match, TaskConfig
from journeyguard.features.eventlog.columns import CUSTOMER_ID, EVENT, TIMESTAMP
from journeyguard.features.eventlog.frames import concat_logs, log_from_frame
from journeyguard.features.eventlog.log import Coded, EventLog, Snapshots
from journeyguard.features.labels import label_snapshots, matching_events

OFFER = "(offer)"  # the neutral step of the moment a customer is treated or held out


@dataclass(frozen=True)
class Arms:
    """Each journey's moment and arm: parallel arrays, one entry per customer."""

    customer_ids: np.ndarray  # object (str)
    moments: np.ndarray  # int64 ns, UTC
    treated: np.ndarray  # bool


@dataclass(frozen=True)
class ExperimentRows:
    """The experiment's labelled rows, one per journey: `snapshots` see each journey just
    before its moment; `y` is the task's label (1: the task's outcome happened) and `good` the
    outcome the action is for (y when the goal is to increase it, 1 - y to reduce it)."""

    snapshots: Snapshots
    moments: np.ndarray  # int64 ns: the outcome's window is (moment, moment + horizon]
    treated: np.ndarray  # bool
    y: np.ndarray  # int8
    good: np.ndarray  # int8
    excluded: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.treated)

    @property
    def customer_ids(self) -> np.ndarray:
        return self.snapshots.customer_ids.astype(str)


def arm_events(log: EventLog, match: Match) -> np.ndarray:
    """A boolean per event: is it one of the arm's steps, with the column's values when both
    are given (an e-mail step narrowed to the test cell that got it)?"""
    flags = np.ones(log.n_events, dtype=bool)
    if match.events:
        flags &= matching_events(log, Match(events=match.events))
    if match.column:
        flags &= matching_events(log, Match(column=match.column, values=match.values))
    return flags


def arms_from_log(log: EventLog, experiment: ExperimentConfig) -> Arms:
    """Each journey's first treatment or control event. A journey whose first such moment has
    events of both arms is ambiguous and raises, naming it."""
    assert experiment.treatment is not None and experiment.control is not None
    treatment, control = arm_events(log, experiment.treatment), arm_events(log, experiment.control)
    both = treatment & control
    if both.any():
        example = log.journey_ids[log.journey_codes[np.flatnonzero(both)[0]]]
        raise ValueError(
            f"experiment {experiment.name!r}: {int(both.sum())} events match both the treatment "
            f"and the control (e.g. of customer {example!r}); narrow them apart"
        )
    either = np.flatnonzero(treatment | control)
    if len(either) == 0:
        raise ValueError(
            f"experiment {experiment.name!r}: no event of the log matches the treatment "
            f"{_describe(experiment.treatment)} or the control {_describe(experiment.control)}"
        )
    journeys = log.journey_codes[either]
    first = either[np.unique(journeys, return_index=True)[1]]  # events are sorted by journey
    return Arms(
        customer_ids=log.journey_ids[log.journey_codes[first]].astype(str).astype(object),
        moments=log.times[first].astype(np.int64),
        treated=treatment[first],
    )


def first_arms(customer_ids: np.ndarray, moments: np.ndarray, treated: np.ndarray) -> Arms:
    """Each customer's first entry of many (e.g. outbox decisions), ties to the treated one."""
    frame = pd.DataFrame(
        {"customer_id": np.asarray(customer_ids).astype(str), "moment": moments, "t": treated}
    ).sort_values(["moment", "customer_id", "t"], ascending=[True, True, False], kind="stable")
    first = frame.drop_duplicates("customer_id", keep="first")
    return Arms(
        first["customer_id"].to_numpy(dtype=object),
        first["moment"].to_numpy(np.int64),
        first["t"].to_numpy(bool),
    )


def experiment_rows(
    log: EventLog, experiment: ExperimentConfig, task: TaskConfig, arms: Arms
) -> ExperimentRows:
    """The labelled rows of `arms` (see the module docstring)."""
    known = pd.Index(log.journey_ids.astype(str))
    journeys = known.get_indexer(pd.Index(np.asarray(arms.customer_ids).astype(str)))
    found = journeys >= 0
    journeys, moments, treated = journeys[found], arms.moments[found], arms.treated[found]
    outcomes = label_snapshots(log, task, journeys, moments)
    keep = ~outcomes.censored
    excluded = {"not_in_log": int((~found).sum()), "censored": int(outcomes.censored.sum())}
    y = outcomes.positive[keep].astype(np.int8)
    seen = (
        with_offers(log, log.journey_ids[journeys[keep]].astype(str), moments[keep])
        if experiment.outbox
        else neutral_log(log, experiment)
    )
    position = pd.Index(seen.journey_ids.astype(str))
    codes = position.get_indexer(pd.Index(log.journey_ids[journeys[keep]].astype(str)))
    snapshots = Snapshots(seen, codes.astype(np.int64), moments[keep])
    good = y if experiment.goal == "increase" else (1 - y).astype(np.int8)
    return ExperimentRows(snapshots, moments[keep], treated[keep], y, good, excluded)


def neutral_log(log: EventLog, experiment: ExperimentConfig) -> EventLog:
    """The log with every treatment and control event turned into the `OFFER` step, and the
    column narrowing an arm blanked: both arms look alike."""
    assert experiment.treatment is not None and experiment.control is not None
    arm = arm_events(log, experiment.treatment) | arm_events(log, experiment.control)
    steps = np.array(sorted({*log.steps.tolist(), OFFER}), dtype=object)
    step_codes = np.searchsorted(steps, log.steps)[log.step_codes].astype(np.int32)
    step_codes[arm] = int(np.searchsorted(steps, OFFER))
    columns = dict(log.columns)
    for match in (experiment.treatment, experiment.control):
        # Blanked on every event: a per-journey attribute repeats the arm on earlier ones too.
        column = columns.get(match.column) if match.column else None
        if isinstance(column, Coded):
            columns[match.column] = Coded(np.full_like(column.codes, -1), column.categories)
        elif column is not None:
            columns[match.column] = np.full_like(column, np.nan)
    return EventLog(log.journey_ids, log.offsets, steps, step_codes, log.times, columns)


def with_offers(log: EventLog, customer_ids: np.ndarray, moments: np.ndarray) -> EventLog:
    """The log with an `OFFER` event for each customer at its moment (int64 ns)."""
    offers = pd.DataFrame(
        {
            CUSTOMER_ID: np.asarray(customer_ids).astype(str),
            TIMESTAMP: pd.to_datetime(np.asarray(moments, dtype=np.int64), unit="ns", utc=True),
            EVENT: OFFER,
        }
    )
    return concat_logs(log, log_from_frame(offers))


def _describe(match: Match) -> str:
    parts = [f"events {list(match.events)}"] if match.events else []
    if match.column:
        parts.append(f"{match.column} in {list(match.values)}")
    return " with ".join(parts)
