"""Requests to snapshots, snapshots to risks: the service's core, free of HTTP and BentoML.

Journeys become one `EventLog` (through `features.records`, no pandas per request) and are
scored by `training.score.score_snapshots`, the function batch scoring uses: a journey gets the
same risk from the service as from `journeyguard score` at the same `as_of`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from features.records import log_from_records
from features.schema import CASE_ID, CHANNEL, SCORE, VALUE, Snapshots
from serving.champions import Champion
from serving.schemas import JourneyIn
from training.score import score_snapshots

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def nanoseconds(moment: datetime) -> int:
    """An aware datetime as int64 ns since the epoch, exactly (no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


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
    in one request stay two journeys.
    """
    keys, times, steps = [], [], []
    text: dict[str, list[str | None]] = {CASE_ID: [], CHANNEL: []}
    numbers: dict[str, list[float]] = {VALUE: [], SCORE: []}
    extra: dict[str, list] = {name: [] for name in attributes}
    for position, journey in enumerate(journeys):
        key = f"{position:09d}"  # sorts like the position
        for event in journey.events:
            keys.append(key)
            times.append(nanoseconds(event.timestamp))
            steps.append(event.event)
            text[CASE_ID].append(event.case_id)
            text[CHANNEL].append(event.channel)
            numbers[VALUE].append(np.nan if event.value is None else event.value)
            numbers[SCORE].append(np.nan if event.score is None else event.score)
            for name, values in extra.items():
                values.append(event.attributes.get(name))
    columns: dict[str, list | np.ndarray] = {
        **text,
        **{name: np.asarray(values, dtype=np.float64) for name, values in numbers.items()},
    }
    for name, values in extra.items():
        columns[name] = (
            np.asarray([_number(v) for v in values], dtype=np.float64)
            if attributes[name]
            else [None if v is None else str(v) for v in values]
        )
    log = log_from_records(keys, times, steps, columns)
    as_of = np.array([nanoseconds(journey.as_of or now) for journey in journeys], dtype=np.int64)
    return Snapshots(log, np.arange(len(journeys)), as_of)


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
    reasons: int = 3,
    observe: Callable[[str, int, float, int], None] | None = None,
) -> list[dict]:
    """Per snapshot: its risks under every champion, with reasons and model versions.
    `observe(task, version, seconds, n)` learns how long each task's scoring took."""
    per_task = {}
    for task, champion in champions.items():
        started = time.perf_counter()
        per_task[task] = score_snapshots(
            snapshots, champion.model, version=champion.version, reasons=reasons
        )
        if observe is not None:
            observe(task, champion.version, time.perf_counter() - started, len(snapshots))
    seen = (snapshots.stops - snapshots.starts).tolist()
    as_of = snapshots.as_of.tolist()
    results = []
    for i, customer_id in enumerate(customer_ids):
        risks = {}
        for task, table in per_task.items():
            row = table.iloc[i]
            risks[task] = {
                "risk": float(row["risk"]),
                "band": row["band"],
                "reasons": [
                    {"text": row[f"reason_{k}"], "contribution": float(row[f"contribution_{k}"])}
                    for k in range(1, reasons + 1)
                    if isinstance(row[f"reason_{k}"], str)
                ],
                "model_version": champions[task].version,
            }
        results.append(
            {
                "customer_id": customer_id,
                "as_of": _EPOCH + timedelta(microseconds=as_of[i] // 1_000),
                "events_seen": seen[i],
                "risks": risks,
            }
        )
    return results
