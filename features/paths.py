"""Path analysis: transitions, variants, step matrices, funnels, durations and bottlenecks.

Pure functions of an `EventLog`, vectorised over its sorted integer arrays, so one journey and
ten million take the same code path. Times come out in hours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.arrays import (
    count_distinct_journeys,
    dense_codes,
    first_occurrences,
    group_quantiles,
    next_in_journey,
    positions,
)
from features.schema import EventLog

NS_PER_HOUR = 3_600 * 10**9
ENDED = "(ended)"
NOT_STARTED = "(not started)"
_HASH_BASES = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F))


def transitions(log: EventLog) -> pd.DataFrame:
    """Directly-follows pairs: count, journeys, out-probability, median and p95 hours between."""
    pairs = _Pairs(log)
    n_steps = len(log.steps)
    pair_id, distinct = dense_codes(pairs.code)
    counts = np.bincount(pair_id, minlength=len(distinct))
    source, target = np.divmod(distinct, n_steps)
    hours = pairs.nanoseconds / NS_PER_HOUR
    quantiles = group_quantiles(pair_id, hours, len(distinct))
    out_total = np.bincount(source, weights=counts, minlength=n_steps)
    table = pd.DataFrame(
        {
            "from": log.steps[source],
            "to": log.steps[target],
            "count": counts,
            "journeys": count_distinct_journeys(pairs.journey, pair_id, len(distinct)).astype(
                np.int64
            ),
            "probability": counts / out_total[source],
            "median_hours": quantiles[:, 0],
            "p95_hours": quantiles[:, 1],
            "total_hours": np.bincount(pair_id, weights=hours, minlength=len(distinct)),
        }
    )
    return _ranked(table, "count", ["from", "to"])


def start_and_end_steps(log: EventLog) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How many journeys start, and end, with each step."""
    tables = []
    for index in (log.offsets[:-1], log.offsets[1:] - 1):
        counts = np.bincount(log.step_codes[index], minlength=len(log.steps))
        table = pd.DataFrame(
            {"step": log.steps, "journeys": counts, "share": counts / max(log.n_journeys, 1)}
        )
        tables.append(_ranked(table[table["journeys"] > 0], "journeys", ["step"]))
    return tables[0], tables[1]


def journey_variants(log: EventLog) -> np.ndarray:
    """A variant id per journey: equal ids for equal step sequences (dense, 0..n_variants-1).

    Journeys are grouped by a 64-bit polynomial hash of their step codes and length, and every
    journey is then compared event by event with its group's first journey, so a hash
    collision cannot merge two different sequences (it raises instead).
    """
    if log.n_events == 0:
        return np.zeros(0, dtype=np.int64)
    position = positions(log)
    lengths = np.diff(log.offsets).astype(np.uint64)
    codes = log.step_codes.astype(np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(int(position.max()) + 1, _HASH_BASES[0], dtype=np.uint64))
        hashes = np.add.reduceat(codes * powers[position], log.offsets[:-1])
        hashes = hashes * _HASH_BASES[1] + lengths
    variant, _ = dense_codes(hashes)
    representative = np.zeros(variant.max() + 1, dtype=np.int64)
    representative[variant[::-1]] = np.arange(len(variant))[::-1]  # first journey of each
    same_length = lengths == lengths[representative[variant]]
    echo = log.offsets[representative[variant]][log.journey_codes] + position
    if not same_length.all() or (log.step_codes[echo] != log.step_codes).any():
        raise RuntimeError("two different step sequences share a hash; please report this log")
    return variant


def variants(log: EventLog) -> pd.DataFrame:
    """Distinct step sequences with how many journeys follow each, most frequent first."""
    variant = journey_variants(log)
    counts = np.bincount(variant)
    representative = first_occurrences(variant)
    representative = representative[np.argsort(variant[representative])]
    first, last = log.offsets[:-1], log.offsets[1:] - 1
    hours = (log.times[last] - log.times[first]) / NS_PER_HOUR
    durations = group_quantiles(variant, hours, len(counts), (0.5,))[:, 0]
    steps = [
        tuple(log.steps[log.step_codes[log.offsets[j] : log.offsets[j + 1]]])
        for j in representative
    ]
    table = pd.DataFrame(
        {
            "steps": steps,
            "journeys": counts,
            "share": counts / max(log.n_journeys, 1),
            "median_duration_hours": durations,
        }
    )
    table = table.assign(key=[" > ".join(s) for s in steps])
    table = _ranked(table, "journeys", ["key"]).drop(columns="key")
    return table.assign(rank=np.arange(1, len(table) + 1))


def step_matrix(log: EventLog, n_positions: int = 10) -> pd.DataFrame:
    """Share of journeys whose k-th event (k = 1..n_positions) is each step, plus '(ended)'."""
    position = positions(log)
    keep = position < n_positions
    counts = np.bincount(
        log.step_codes[keep].astype(np.int64) * n_positions + position[keep],
        minlength=len(log.steps) * n_positions,
    )
    shares = counts.reshape(len(log.steps), n_positions) / max(log.n_journeys, 1)
    matrix = pd.DataFrame(
        shares, index=pd.Index(log.steps, name="step"), columns=range(1, n_positions + 1)
    )
    matrix.loc[ENDED] = 1.0 - matrix.sum(axis=0)
    return matrix[matrix.sum(axis=1) > 0]


def anchored_step_matrix(log: EventLog, anchor: str, n_positions: int = 5) -> pd.DataFrame:
    """Like `step_matrix`, relative to each journey's first `anchor` (positions -k..k).

    Only journeys that reach the anchor count; '(not started)' and '(ended)' fill positions
    before their first and after their last event.
    """
    codes = log.step_codes
    anchor_code = _step_code(log, anchor)
    at_anchor = np.flatnonzero(codes == anchor_code)
    first = first_occurrences(log.journey_codes[at_anchor])
    journeys = log.journey_codes[at_anchor][first]
    anchor_index = np.full(log.n_journeys, -1, dtype=np.int64)
    anchor_index[journeys] = at_anchor[first]
    has_anchor = anchor_index[log.journey_codes] >= 0
    relative = np.arange(log.n_events) - anchor_index[log.journey_codes]
    keep = has_anchor & (np.abs(relative) <= n_positions)
    width = 2 * n_positions + 1
    counts = np.bincount(
        codes[keep].astype(np.int64) * width + relative[keep] + n_positions,
        minlength=len(log.steps) * width,
    )
    shares = counts.reshape(len(log.steps), width) / max(len(journeys), 1)
    matrix = pd.DataFrame(
        shares, index=pd.Index(log.steps, name="step"), columns=range(-n_positions, n_positions + 1)
    )
    missing = 1.0 - matrix.sum(axis=0)
    matrix.loc[NOT_STARTED] = np.where(matrix.columns < 0, missing, 0.0)
    matrix.loc[ENDED] = np.where(matrix.columns > 0, missing, 0.0)
    matrix.attrs["journeys"] = len(journeys)
    return matrix[matrix.sum(axis=1) > 0]


def funnel(log: EventLog, steps: list[str]) -> pd.DataFrame:
    """Journeys reaching each named step in order (each after the previous one), and drop-off."""
    codes = [_step_code(log, step) for step in steps]
    reached_at = log.offsets[:-1] - 1  # every journey "reached" a virtual stage before its start
    alive = np.ones(log.n_journeys, dtype=bool)
    rows, previous = [], log.n_journeys
    for step, code in zip(steps, codes, strict=True):
        candidates = np.flatnonzero(log.step_codes == code)
        journey = log.journey_codes[candidates]
        later = alive[journey] & (candidates > reached_at[journey])
        first = first_occurrences(journey[later])
        journeys = journey[later][first]
        index = candidates[later][first]
        gap = (log.times[index] - log.times[np.maximum(reached_at[journeys], 0)]) / NS_PER_HOUR
        median = float(np.median(gap)) if rows and len(gap) else np.nan
        alive = np.zeros(log.n_journeys, dtype=bool)
        alive[journeys] = True
        reached_at[journeys] = index
        rows.append(
            {
                "step": step,
                "journeys": len(journeys),
                "conversion": len(journeys) / previous if previous else 0.0,
                "drop_off": previous - len(journeys) if rows else 0,
                "median_hours_from_previous": median,
            }
        )
        previous = len(journeys)
    rows[0]["conversion"] = 1.0
    return pd.DataFrame(rows)


def step_durations(log: EventLog) -> pd.DataFrame:
    """Per step: journeys reaching it, and hours from their first event to its first occurrence."""
    n_steps = len(log.steps)
    key = log.journey_codes * n_steps + log.step_codes
    first = first_occurrences(key)
    step = log.step_codes[first]
    hours = (log.times[first] - log.times[log.offsets[log.journey_codes[first]]]) / NS_PER_HOUR
    quantiles = group_quantiles(step, hours, n_steps)
    table = pd.DataFrame(
        {
            "step": log.steps,
            "journeys": np.bincount(step, minlength=n_steps),
            "median_hours_from_first": quantiles[:, 0],
            "p95_hours_from_first": quantiles[:, 1],
        }
    )
    return table[table["journeys"] > 0].sort_values("median_hours_from_first", kind="stable")


def journey_lengths(log: EventLog) -> dict[str, float]:
    """Median and p95 of events per journey and of journey duration (first to last event)."""
    events = np.diff(log.offsets)
    hours = (log.times[log.offsets[1:] - 1] - log.times[log.offsets[:-1]]) / NS_PER_HOUR
    return {
        "events_median": float(np.median(events)),
        "events_p95": float(np.quantile(events, 0.95)),
        "duration_median_hours": float(np.median(hours)),
        "duration_p95_hours": float(np.quantile(hours, 0.95)),
    }


def step_dwell(log: EventLog) -> pd.DataFrame:
    """Per step: how long journeys wait after it until their next event (dwell time)."""
    index, following = next_in_journey(log)
    step = log.step_codes[index]
    hours = (log.times[following] - log.times[index]) / NS_PER_HOUR
    n_steps = len(log.steps)
    quantiles = group_quantiles(step, hours, n_steps)
    table = pd.DataFrame(
        {
            "step": log.steps,
            "count": np.bincount(step, minlength=n_steps),
            "median_dwell_hours": quantiles[:, 0],
            "p95_dwell_hours": quantiles[:, 1],
            "total_dwell_hours": np.bincount(step, weights=hours, minlength=n_steps),
        }
    )
    return table[table["count"] > 0]


def bottlenecks(
    transition_table: pd.DataFrame, dwell: pd.DataFrame, top: int = 20
) -> dict[str, pd.DataFrame]:
    """The slowest transitions and steps weighted by traffic: by total hours spent in them."""
    columns = ["from", "to", "count", "median_hours", "p95_hours", "total_hours"]
    slow_transitions = _ranked(transition_table[columns], "total_hours", ["from", "to"])
    slow_steps = _ranked(dwell, "total_dwell_hours", ["step"])
    return {"transitions": slow_transitions.head(top), "steps": slow_steps.head(top)}


class _Pairs:
    """Directly-follows pairs: their step-pair code, journey, and the time between."""

    def __init__(self, log: EventLog) -> None:
        index, following = next_in_journey(log)
        n_steps = len(log.steps)
        self.code = log.step_codes[index].astype(np.int64) * n_steps + log.step_codes[following]
        self.journey = log.journey_codes[index]
        self.nanoseconds = log.times[following] - log.times[index]


def _step_code(log: EventLog, step: str) -> int:
    found = np.flatnonzero(log.steps == step)
    if len(found) == 0:
        raise ValueError(f"unknown step {step!r}; steps in the log: {list(log.steps)}")
    return int(found[0])


def _ranked(table: pd.DataFrame, by: str, tie_breakers: list[str]) -> pd.DataFrame:
    """Descending by `by`, ties in name order, so output never depends on hash order."""
    ascending = [False] + [True] * len(tie_breakers)
    return table.sort_values(
        [by, *tie_breakers], ascending=ascending, kind="stable", ignore_index=True
    )
