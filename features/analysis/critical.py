"""Critical path analysis: which steps, transitions and 2-step sequences drive a task's outcome.

For every item, the outcome rate of journeys that passed through it against those that did not,
the difference with a 95 % interval (Newcombe's hybrid score method), the share of all positive
outcomes it accounts for and its time cost; then the most frequent route of the journeys with
the outcome beside the route of those without. Journeys are seen as they stood at `as_of`
and labelled from the horizon after it only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from journeyguard.features.analysis.paths import journey_variants, most_frequent_route, step_matrix
from journeyguard.features.arrays import (
    count_distinct_journeys,
    dense_codes,
    first_occurrences,
    group_quantiles,
    last_occurrences,
    next_in_journey,
)
from journeyguard.features.config.model import KpiConfig, TaskConfig
from journeyguard.features.eventlog.columns import NS_PER_HOUR
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.labels import label_snapshots, latest_labelled_as_of
from journeyguard.features.measures import (
    csat,
    kaplan_meier,
    nps,
    resolution_cases,
    survey_responses,
)
from journeyguard.features.stats import newcombe_interval

_MAX_PAIRS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class Exposure:
    """Which journeys passed through which item: parallel arrays, one row per (journey, item)."""

    journey: np.ndarray
    item: np.ndarray
    hours: np.ndarray  # the item's time cost in that journey
    names: np.ndarray  # name of each item code


def critical_path_analysis(
    log: EventLog,
    task: TaskConfig,
    as_of: pd.Timestamp | None = None,
    min_support: int = 30,
    top: int = 25,
    kpis: KpiConfig | None = None,
) -> dict:
    """The ranking of steps, transitions and sequences for `task`, and the two routes; with
    `kpis`, each ranked step also gets its effect on CSAT, NPS and resolution time."""
    journeys, cut, as_of = analysis_snapshots(log, task, as_of)
    outcomes = label_snapshots(log, task, journeys, cut)
    labelled = outcomes.labelled
    if not labelled.any():
        raise ValueError(
            f"task {task.name!r}: no journey seen at {as_of.isoformat()} has a known outcome "
            f"({int(outcomes.censored.sum())} censored: the {task.horizon} horizon runs past the "
            f"end of the data; {int(outcomes.already_happened.sum())} already happened); "
            f"try an earlier --as-of, at most {latest_labelled_as_of(log, task).isoformat()}"
        )
    seen_until = np.full(log.n_journeys, np.iinfo(np.int64).min)
    seen_until[journeys[labelled]] = cut[labelled]
    prefix = log.select(log.times <= seen_until[log.journey_codes])
    positive = outcomes.positive[labelled]
    exposures = {
        "step": step_exposure(prefix),
        "transition": transition_exposure(prefix),
        "sequence": sequence_exposure(prefix),
    }
    rankings = {
        kind: rank_items(exposure, positive, kind, min_support).head(top)
        for kind, exposure in exposures.items()
    }
    if kpis is not None:
        rankings["step"] = step_kpi_effects(
            rankings["step"], log, journeys[labelled], exposures["step"], kpis
        )
    return {
        "task": task.name,
        "label": task.label,
        "as_of": as_of.isoformat(),
        "match": list(task.match.events) or {task.match.column: list(task.match.values)},
        "horizon_hours": task.horizon.total_seconds() / 3_600,
        "snapshot": _snapshot_rule(task),
        "journeys": len(positive),
        "positives": int(positive.sum()),
        "rate": float(positive.mean()),
        "excluded": {
            "already_happened": int(outcomes.already_happened.sum()),
            "censored": int((outcomes.censored & ~outcomes.already_happened).sum()),
        },
        "steps": rankings["step"],
        "transitions": rankings["transition"],
        "sequences": rankings["sequence"],
        "paths": {
            "positive": routes(prefix, positive),
            "negative": routes(prefix, ~positive),
            "divergence": divergence(prefix, positive),
        },
    }


def analysis_snapshots(
    log: EventLog, task: TaskConfig, as_of: pd.Timestamp | None
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Where each journey is seen: (journey codes, as_of per journey in ns, the global as_of).

    Calendar tasks see every journey begun by `as_of` at `as_of` (default: the latest as_of
    whose horizon closes in the data). Prefix tasks (`prefix = n`) see each journey after its
    n-th event, or at `as_of` if that comes first (default: the end of the data).
    """
    if task.snapshots.prefix is None:
        as_of = pd.Timestamp(as_of) if as_of is not None else latest_labelled_as_of(log, task)
        journeys = np.flatnonzero(log.times[log.offsets[:-1]] <= as_of.value)
        return journeys, np.full(len(journeys), as_of.value, dtype=np.int64), as_of
    as_of = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(log.last_time, tz="UTC")
    journeys = np.flatnonzero(log.times[log.offsets[:-1]] <= as_of.value)
    lengths = np.diff(log.offsets)[journeys]
    nth_event = log.times[log.offsets[journeys] + np.minimum(lengths, task.snapshots.prefix) - 1]
    return journeys, np.minimum(nth_event, as_of.value), as_of


def _snapshot_rule(task: TaskConfig) -> str:
    if task.snapshots.prefix is None:
        return "every journey begun by as_of, seen at as_of"
    return f"each journey seen after its first {task.snapshots.prefix} events (or at as_of)"


def step_exposure(log: EventLog) -> Exposure:
    """Journeys through each step; time cost: the wait after the step until the next event."""
    dwell_hours = np.full(log.n_events, np.nan)
    index, following = next_in_journey(log)
    dwell_hours[index] = (log.times[following] - log.times[index]) / NS_PER_HOUR
    return Exposure(log.journey_codes, log.step_codes.astype(np.int64), dwell_hours, log.steps)


def transition_exposure(log: EventLog) -> Exposure:
    """Journeys through each directly-follows pair; time cost: the time between the two."""
    index, following = next_in_journey(log)
    n_steps = len(log.steps)
    code = log.step_codes[index].astype(np.int64) * n_steps + log.step_codes[following]
    item, distinct = dense_codes(code)
    names = _pair_names(log, distinct, "→")
    hours = (log.times[following] - log.times[index]) / NS_PER_HOUR
    return Exposure(log.journey_codes[index], item, hours, names)


def sequence_exposure(log: EventLog) -> Exposure:
    """Journeys where step a comes before a later step b (a == b: a repeat); time cost: a to b.

    Built from each journey's first and last occurrence of every step, pairing the distinct
    steps of a journey with each other, in chunks of journeys to bound memory.
    """
    n_steps = len(log.steps)
    key = log.journey_codes * n_steps + log.step_codes
    # The log is sorted by journey, so first and last occurrences pair up row by row.
    first, last = first_occurrences(key), last_occurrences(key)
    journey, step = np.divmod(key[first], n_steps)
    sizes = np.bincount(journey, minlength=log.n_journeys)
    parts = [
        _sequence_pairs(rows, journey, step, first, last, sizes, log.times, n_steps)
        for rows in _chunks(journey, sizes)
    ]
    journeys, codes, hours = (np.concatenate(columns) for columns in zip(*parts, strict=True))
    item, used = dense_codes(codes)
    return Exposure(journeys, item, hours, _pair_names(log, used, "…"))


def _pair_names(log: EventLog, pair_codes: np.ndarray, joiner: str) -> np.ndarray:
    first, second = np.divmod(pair_codes, len(log.steps))
    return np.array(
        [f"{log.steps[a]} {joiner} {log.steps[b]}" for a, b in zip(first, second, strict=True)]
    )


def _chunks(journey: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Row ranges of the (journey, step) table, whole journeys each, bounded in pairs."""
    chunk_of_journey = np.cumsum(sizes.astype(np.int64) ** 2) // _MAX_PAIRS_PER_CHUNK
    chunk_of_row = chunk_of_journey[journey]
    bounds = np.flatnonzero(np.r_[True, chunk_of_row[1:] != chunk_of_row[:-1], True])
    return [np.arange(a, b) for a, b in itertools.pairwise(bounds)]


def _sequence_pairs(rows, journey, step, first, last, sizes, times, n_steps):
    """All ordered pairs (a, b) of distinct steps within the journeys of `rows`."""
    group_size = sizes[journey[rows]]
    left = np.repeat(rows, group_size)
    group_start = rows - _position_in_group(journey[rows])
    within = np.arange(len(left)) - np.repeat(np.cumsum(group_size) - group_size, group_size)
    right = np.repeat(group_start, group_size) + within
    keep = first[left] < last[right]
    left, right = left[keep], right[keep]
    hours = (times[last[right]] - times[first[left]]) / NS_PER_HOUR
    return journey[left], step[left] * n_steps + step[right], hours


def _position_in_group(sorted_groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within runs of equal values of a sorted array."""
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_lengths = np.diff(np.r_[starts, len(sorted_groups)])
    return np.arange(len(sorted_groups)) - np.repeat(starts, run_lengths)


def rank_items(
    exposure: Exposure, positive: np.ndarray, kind: str, min_support: int
) -> pd.DataFrame:
    """Outcome rate with against without each item, by difference, for well-supported items."""
    n_items = len(exposure.names)
    n_with = count_distinct_journeys(exposure.journey, exposure.item, n_items)
    positives_with = count_distinct_journeys(
        exposure.journey, exposure.item, n_items, weights=positive.astype(np.float64)
    )
    n_without = len(positive) - n_with
    positives_without = positive.sum() - positives_with
    supported = (n_with >= min_support) & (n_without >= min_support)
    rate_with = np.divide(positives_with, n_with, out=np.zeros(n_items), where=n_with > 0)
    rate_without = np.divide(
        positives_without, n_without, out=np.zeros(n_items), where=n_without > 0
    )
    low, high = newcombe_interval(positives_with, n_with, positives_without, n_without)
    valid = ~np.isnan(exposure.hours)
    cost = group_quantiles(exposure.item[valid], exposure.hours[valid], n_items, (0.5,))[:, 0]
    table = pd.DataFrame(
        {
            "item": exposure.names,
            "kind": kind,
            "journeys_with": n_with.astype(np.int64),
            "positives_with": positives_with.astype(np.int64),
            "rate_with": rate_with,
            "journeys_without": n_without.astype(np.int64),
            "rate_without": rate_without,
            "difference": rate_with - rate_without,
            "ci_low": low,
            "ci_high": high,
            "share_of_positives": positives_with / max(int(positive.sum()), 1),
            "time_cost_hours": cost,
        }
    )[supported]
    # The lower end of the interval: the change we can be 95 % sure of, so that a large
    # difference measured on a handful of journeys does not outrank a well-supported one.
    return table.sort_values(
        ["ci_low", "item"], ascending=[False, True], kind="stable", ignore_index=True
    )


def routes(log: EventLog, members: np.ndarray, max_steps: int = 15, top: int = 5) -> dict:
    """The most frequent route of the member journeys, and their most frequent variants."""
    size = int(members.sum())
    walked = most_frequent_route(
        log.step_codes, len(log.steps), log.offsets[:-1], np.diff(log.offsets), members, max_steps
    )
    route = [
        {"step": str(log.steps[code]), "journeys": following, "share": following / max(size, 1)}
        for code, following in walked
    ]
    return {"journeys": size, "route": route, "top_variants": _top_variants(log, members, top)}


def divergence(log: EventLog, positive: np.ndarray, n_positions: int = 10) -> list[dict]:
    """Position by position, the step journeys with the outcome take more often than those
    without, by the most: where the two kinds of journeys part ways."""
    with_outcome = step_matrix(log.select_journeys(positive), n_positions)
    without = step_matrix(log.select_journeys(~positive), n_positions)
    steps = sorted(set(with_outcome.rows) | set(without.rows))
    rows = []
    for position in range(1, n_positions + 1):
        shares = [(with_outcome.share(s, position), without.share(s, position)) for s in steps]
        differences = [a - b for a, b in shares]
        best = int(np.argmax(differences))
        if differences[best] <= 0:
            continue
        rows.append(
            {
                "position": position,
                "step": steps[best],
                "share_positive": shares[best][0],
                "share_negative": shares[best][1],
                "difference": differences[best],
            }
        )
    return rows


def _top_variants(log: EventLog, members: np.ndarray, top: int) -> list[dict]:
    variant = journey_variants(log)
    counts = np.bincount(variant[members], minlength=variant.max() + 1 if len(variant) else 0)
    order = np.lexsort((np.arange(len(counts)), -counts))[:top]
    representative = first_occurrences(variant)
    representative = representative[np.argsort(variant[representative])]
    size = max(int(members.sum()), 1)
    result = []
    for v in order:
        if counts[v] == 0:
            break
        j = representative[v]
        steps = [str(s) for s in log.steps[log.step_codes[log.offsets[j] : log.offsets[j + 1]]]]
        result.append({"steps": steps, "journeys": int(counts[v]), "share": counts[v] / size})
    return result


KPI_EFFECT_COLUMNS = (
    "csat_with", "csat_without", "csat_n_with", "csat_n_without",
    "nps_with", "nps_without", "nps_n_with", "nps_n_without",
    "resolution_hours_with", "resolution_hours_without",
    "resolution_n_with", "resolution_n_without",
)  # fmt: skip


def step_kpi_effects(
    ranking: pd.DataFrame,
    log: EventLog,
    analysed: np.ndarray,
    exposure: Exposure,
    kpis: KpiConfig,
) -> pd.DataFrame:
    """Beside each step's churn/escalation effect, the same split of the analysed journeys
    (those that passed through the step by their as_of against the others) on the KPIs: mean
    CSAT and NPS of their survey responses, and the Kaplan-Meier median resolution hours of
    their cases, with n (responses, cases). Scores and cases come from the whole log, as the
    outcome does; a KPI the log lacks leaves its columns empty."""

    table = ranking.copy()
    for column in KPI_EFFECT_COLUMNS:
        table[column] = np.nan
    in_scope = np.zeros(log.n_journeys, dtype=bool)
    in_scope[analysed] = True
    code_of = {str(name): code for code, name in enumerate(exposure.names)}
    surveys = {}
    for name, kpi, statistic in (("csat", kpis.csat, csat), ("nps", kpis.nps, nps)):
        if kpi is not None:
            rows, reason = survey_responses(log, kpi)
            rows = rows[in_scope[log.journey_codes[rows]]]
            if reason is None:
                scores = np.asarray(log.columns[kpi.column])[rows]
                surveys[name] = (log.journey_codes[rows], scores, kpi, statistic)
    cases = None
    if kpis.resolution is not None:
        found = resolution_cases(log, kpis.resolution, log.last_time)
        if not isinstance(found, str):
            keep = in_scope[found.journeys]
            cases = (found.journeys[keep], found.hours[keep], found.resolved[keep])
    for index, item in zip(table.index, table["item"], strict=True):
        passed = np.zeros(log.n_journeys, dtype=bool)
        passed[analysed[exposure.journey[exposure.item == code_of[str(item)]]]] = True
        for name, (journey, scores, kpi, statistic) in surveys.items():
            with_, without = statistic(scores, np.where(passed[journey], 0, 1), 2, kpi)
            table.loc[index, [f"{name}_with", f"{name}_without"]] = with_["value"], without["value"]
            table.loc[index, [f"{name}_n_with", f"{name}_n_without"]] = with_["n"], without["n"]
        if cases is not None:
            journey, hours, resolved = cases
            group = np.where(passed[journey], 0, 1)
            median = kaplan_meier(hours, resolved, group, 2)["median"]
            n = np.bincount(group, minlength=2)
            table.loc[index, ["resolution_hours_with", "resolution_hours_without"]] = median
            table.loc[index, ["resolution_n_with", "resolution_n_without"]] = n
    counts = [c for c in KPI_EFFECT_COLUMNS if "_n_" in c and table[c].notna().all()]
    return table.astype(dict.fromkeys(counts, np.int64))
