"""Requests to snapshots, snapshots to risks: the service's core, free of HTTP and BentoML.

Journeys become one `EventLog` (through `features.eventlog.records`, no pandas per request) and are
scored by `training.score.score_arrays`, the function batch scoring uses: a journey gets the
same risk from the service as from `journeyguard score` at the same `as_of`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pydantic_core

from journeyguard.features.config.model import TaskConfig
from journeyguard.features.eventlog.columns import CASE_ID, CHANNEL, EVENT, SCORE, TIMESTAMP, VALUE
from journeyguard.features.eventlog.log import Snapshots
from journeyguard.features.eventlog.records import log_from_records
from journeyguard.features.population import Eligibility, eligibility
from journeyguard.serving.champions import Champion
from journeyguard.serving.schemas import EventColumns, EventIn, JourneyIn
from journeyguard.training.score import Scores, score_arrays

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NONE: dict = {}


def nanoseconds(moment: datetime) -> int:
    """An aware datetime as int64 ns since the epoch, exactly (no float rounding)."""
    return (moment - _EPOCH) // _MICROSECOND * 1_000


def attribute_kinds(champions: Mapping[str, Champion]) -> dict[str, bool]:
    """The attributes the models use, each True when numeric."""
    kinds: dict[str, bool] = {}
    for champion in champions.values():
        for name, categories in champion.model.transformer.vocabulary_.attributes.items():
            kinds[name] = categories is None
    return kinds


def request_snapshots(
    journeys: Sequence[JourneyIn], attributes: Mapping[str, bool], now: datetime
) -> Snapshots:
    """One snapshot per journey of the request, in request order, at its `as_of` (or `now`).

    Journeys are keyed by their position, not their customer id: two journeys of one customer
    in one request stay two journeys. A journey's events may come as objects or as columns;
    either way each field becomes one list over every event of the request.
    """
    objects = [i for i, journey in enumerate(journeys) if not journey.columnar]
    columnar = [i for i, journey in enumerate(journeys) if journey.columnar]
    fields = _fields_of_objects([journeys[i].events for i in objects], attributes)
    joined = _fields_of_columns([journeys[i].events for i in columnar], attributes)
    for name, values in joined.items():
        fields[name] += values
    journey_order = objects + columnar  # the journey of each event, in the order of `fields`
    positions = np.repeat(
        np.asarray(journey_order, dtype=np.int64), [journeys[i].event_count for i in journey_order]
    )
    columns: dict[str, list | np.ndarray] = {
        CASE_ID: fields[CASE_ID],
        CHANNEL: fields[CHANNEL],
        VALUE: np.array(fields[VALUE], dtype=np.float64),  # None becomes NaN
        SCORE: np.array(fields[SCORE], dtype=np.float64),
    }
    for name, numeric in attributes.items():
        given = fields[_ATTRIBUTE, name]
        columns[name] = (
            np.array([_number(v) for v in given], dtype=np.float64)
            if numeric
            else [None if v is None else str(v) for v in given]
        )
    times = _event_times(fields[TIMESTAMP])
    log = log_from_records(positions, times, fields[EVENT], columns)
    as_of = np.array([nanoseconds(journey.as_of or now) for journey in journeys], dtype=np.int64)
    return Snapshots(log, np.arange(len(journeys)), as_of)


_ATTRIBUTE = "attributes"
_FIELDS = (TIMESTAMP, EVENT, CASE_ID, CHANNEL, VALUE, SCORE)


def _fields_of_objects(
    journeys: Sequence[list[EventIn]], attributes: Iterable[str]
) -> dict[str | tuple[str, str], list]:
    """Each field of every event, one list per field (None where absent); an attribute's
    key is `(_ATTRIBUTE, name)`."""
    events = [event for journey in journeys for event in journey]
    fields: dict[str | tuple[str, str], list] = {
        name: [event.get(name) for event in events] for name in _FIELDS
    }
    for name in attributes:
        fields[_ATTRIBUTE, name] = [e.get(_ATTRIBUTE, _NONE).get(name) for e in events]
    return fields


def _fields_of_columns(
    journeys: Sequence[EventColumns], attributes: Iterable[str]
) -> dict[str | tuple[str, str], list]:
    """As `_fields_of_objects`, for journeys whose events come as columns: each field's
    columns joined, journey after journey (Nones for a column a journey leaves out)."""

    def joined(column_of_each: Iterable[list | None]) -> list:
        return list(
            itertools.chain.from_iterable(
                [None] * len(columns[TIMESTAMP]) if column is None else column
                for column, columns in zip(column_of_each, journeys, strict=True)
            )
        )

    fields = {name: joined(columns.get(name) for columns in journeys) for name in _FIELDS}
    for name in attributes:
        fields[_ATTRIBUTE, name] = joined(c.get(_ATTRIBUTE, _NONE).get(name) for c in journeys)
    return fields


def _event_times(moments: list[datetime]) -> np.ndarray:
    """Validated datetimes as int64 ns. Written out by pydantic (in Rust) in its one ISO form
    and read back by pandas' ISO parser, exactly, in a third of the time datetime arithmetic
    per event takes."""
    texts = pydantic_core.to_jsonable_python(moments)
    return pd.to_datetime(texts, format="ISO8601", utc=True).as_unit("ns").asi8


def _number(value: str | float | None) -> float:
    """A numeric attribute; text that is not a number is unknown, as in batch loading."""
    try:
        return np.nan if value is None else float(value)
    except ValueError:
        return np.nan


def predict(
    snapshots: Snapshots,
    customer_ids: Sequence[str],
    champions: Mapping[str, Champion],
    tasks: Mapping[str, TaskConfig],
    reasons: int = 3,
    observe: Callable[[str, int, float, int], None] | None = None,
) -> list[dict]:
    """Per snapshot: its risks under every champion, with reasons and model versions; a
    snapshot outside a task's population (`features.population`) gets no risk for it, only
    the reason. `observe(task, version, seconds, n)` learns how long each task's scoring took."""
    per_task = {}
    for task, champion in champions.items():
        started = time.perf_counter()
        found = eligibility(snapshots, tasks[task])
        scores = score_arrays(snapshots.subset(found.eligible), champion.model, reasons)
        per_task[task] = _answers(found, _risks(scores, champion.version), champion.version)
        if observe is not None:
            scored = int(found.eligible.sum())
            observe(task, champion.version, time.perf_counter() - started, scored)
    seen = (snapshots.stops - snapshots.starts).tolist()
    as_of = snapshots.as_of.tolist()
    return [
        {
            "customer_id": customer_id,
            "as_of": _EPOCH + timedelta(microseconds=as_of[i] // 1_000),
            "events_seen": seen[i],
            "risks": {task: risks[i] for task, risks in per_task.items()},
        }
        for i, customer_id in enumerate(customer_ids)
    ]


def _answers(found: Eligibility, risks: list[dict], version: int) -> list[dict]:
    """Every snapshot's answer for one task: its risk where eligible, else why not."""
    scored = iter(risks)
    reasons = found.reasons.tolist()
    return [
        next(scored)
        if eligible
        else {
            "eligible": False,
            "risk": None,
            "risk_low": None,
            "risk_high": None,
            "band": None,
            "reason": reasons[i],
            "reasons": [],
            "model_version": version,
        }
        for i, eligible in enumerate(found.eligible.tolist())
    ]


def _risks(scores: Scores, version: int) -> list[dict]:
    """One task's answer for each snapshot."""
    risk, band = scores.risk.tolist(), scores.band.tolist()
    low, high = scores.risk_low.tolist(), scores.risk_high.tolist()
    contributions = scores.contributions.tolist()
    return [
        {
            "eligible": True,
            "risk": risk[i],
            "risk_low": low[i],
            "risk_high": high[i],
            "band": band[i],
            "reason": None,
            "reasons": [
                {"text": texts[i], "contribution": contributions[i][rank]}
                for rank, texts in enumerate(scores.reasons)
                if texts[i] is not None
            ],
            "model_version": version,
        }
        for i in range(len(risk))
    ]
