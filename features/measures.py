"""How the post-purchase KPIs are measured, per group of rows: CSAT and NPS of survey responses,
resolution time of cases (Kaplan-Meier, open cases censored), and shares, each with its sample
size and 95 % interval.

Pure, vectorised functions of an `EventLog`'s arrays. The KPI report (`kpis`) groups by month,
variant or attribute; the critical path (`analysis.critical`) splits by a step's presence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from journeyguard.features.arrays import group_quantiles
from journeyguard.features.cases import case_steps
from journeyguard.features.config.model import ResolutionKpi, SurveyKpi
from journeyguard.features.eventlog.columns import NS_PER_HOUR
from journeyguard.features.eventlog.log import Coded, EventLog
from journeyguard.features.stats import Z_95, wilson_interval


def csat(scores: np.ndarray, groups: np.ndarray, n_groups: int, kpi: SurveyKpi) -> list[dict]:
    """Mean score with a t interval, and the share satisfied (the top two values of the scale)
    with a Wilson interval."""
    mean, low, high = mean_t_interval(scores, groups, n_groups)
    n, satisfied, share, share_low, share_high = _shares(scores >= kpi.high - 1, groups, n_groups)
    return _rows(
        n=n,
        value=mean,
        ci_low=low,
        ci_high=high,
        satisfied=satisfied,
        share_satisfied=share,
        share_low=share_low,
        share_high=share_high,
    )


def nps(scores: np.ndarray, groups: np.ndarray, n_groups: int, kpi: SurveyKpi) -> list[dict]:
    """Net promoter score in points: % promoters (the top two values, 9-10 of 0-10) minus %
    detractors (6 and below), with the normal interval of its standard variance formula."""
    n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    promoters = np.bincount(groups, weights=scores >= kpi.high - 1, minlength=n_groups)
    detractors = np.bincount(groups, weights=scores <= kpi.high - 4, minlength=n_groups)
    safe = np.where(n > 0, n, 1.0)
    p, d = promoters / safe, detractors / safe
    value = np.where(n > 0, p - d, np.nan)
    half = Z_95 * np.sqrt(np.maximum(p + d - (p - d) ** 2, 0.0) / safe)
    return _rows(
        n=n.astype(np.int64),
        value=100 * value,
        ci_low=100 * np.clip(value - half, -1, 1),
        ci_high=100 * np.clip(value + half, -1, 1),
        promoters=promoters.astype(np.int64),
        detractors=detractors.astype(np.int64),
        share_promoters=np.where(n > 0, p, np.nan),
        share_detractors=np.where(n > 0, d, np.nan),
    )


def mean_t_interval(
    values: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group, the mean and its Student t 95 % interval (NaN where n < 2 for the interval)."""
    from scipy.stats import t

    n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    total = np.bincount(groups, weights=values, minlength=n_groups)
    mean = np.divide(total, n, out=np.full(n_groups, np.nan), where=n > 0)
    squares = np.bincount(groups, weights=(values - mean[groups]) ** 2, minlength=n_groups)
    sd = np.sqrt(np.divide(squares, n - 1, out=np.full(n_groups, np.nan), where=n > 1))
    half = t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
    return mean, mean - half, mean + half


def kaplan_meier(
    durations: np.ndarray, resolved: np.ndarray, groups: np.ndarray, n_groups: int
) -> dict[str, np.ndarray]:
    """Per group, the Kaplan-Meier median and p90 of the durations (NaN if not reached), with
    the median's 95 % interval from the plain Greenwood interval of the survival curve (as R's
    `survfit(conf.type = "plain")`): censored cases count as at risk until they drop out.

    One sort by (group, duration, censored last); row by row the factors 1 - 1/at_risk of tied
    events multiply to the block's 1 - d/n, so no loop over times or groups is needed.
    """
    order = np.lexsort((~resolved, durations, groups))
    group, time, event = groups[order], durations[order], resolved[order].astype(np.float64)
    size = np.bincount(group, minlength=n_groups)
    starts = np.r_[0, np.cumsum(size)[:-1]]
    at_risk = (size[group] - (np.arange(len(group)) - starts[group])).astype(np.float64)
    zero = (event == 1) & (at_risk == 1)  # the curve drops to 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_factor = np.where(zero, 0.0, np.log1p(-event / at_risk))
        greenwood = np.where(at_risk > 1, event / (at_risk * (at_risk - 1)), 0.0)
    survival = np.exp(_cumsum_within(log_factor, group, starts)) * (
        _cumsum_within(zero.astype(np.float64), group, starts) == 0
    )
    se = survival * np.sqrt(_cumsum_within(greenwood, group, starts))
    result = {
        "median": _first_time_below(survival, 0.5, time, group, starts, size),
        "p90": _first_time_below(survival, 0.1, time, group, starts, size),
        "median_low": _first_time_below(survival - Z_95 * se, 0.5, time, group, starts, size),
        "median_high": _first_time_below(survival + Z_95 * se, 0.5, time, group, starts, size),
    }
    return result


def _cumsum_within(values: np.ndarray, group: np.ndarray, starts: np.ndarray) -> np.ndarray:
    total = np.cumsum(values)
    before = np.r_[0.0, total][starts]
    return total - before[group]


def _first_time_below(curve, level, time, group, starts, size) -> np.ndarray:
    """Per group, the first time at which `curve` is at or below `level` (NaN if never)."""
    result = np.full(len(size), np.nan)
    hit = np.flatnonzero(curve <= level + 1e-12)
    if len(hit):
        first = np.full(len(size), len(curve))
        np.minimum.at(first, group[hit], hit)
        found = first < len(curve)
        result[found] = time[first[found]]
    return result


def survey_responses(log: EventLog, kpi: SurveyKpi) -> tuple[np.ndarray, str | None]:
    """The event rows of valid responses (score on the scale), or the reason there are none."""
    if kpi.event not in set(log.steps.tolist()):
        return np.zeros(0, np.int64), f"no {kpi.event!r} step in the log"
    column = log.column(kpi.column)
    if column is None or isinstance(column, Coded):
        return np.zeros(0, np.int64), f"no numeric column {kpi.column!r} in the log"
    code = int(np.flatnonzero(log.steps == kpi.event)[0])
    on_scale = (column >= kpi.low) & (column <= kpi.high)  # NaN compares false
    return np.flatnonzero((log.step_codes == code) & on_scale), None


@dataclass(frozen=True)
class Cases:
    """Cases with a start step: where they start, how long until resolved or `as_of`."""

    journeys: np.ndarray
    start_rows: np.ndarray
    start_times: np.ndarray
    hours: np.ndarray
    resolved: np.ndarray


def resolution_cases(log: EventLog, kpi: ResolutionKpi, as_of_ns: int) -> Cases | str:
    """Each case (`features.cases`) from its first start step to the first end step at or
    after it; a case with no end by `as_of` is censored there. Returns the reason instead when
    the log lacks them."""
    found = case_steps(log, kpi)
    if isinstance(found, str):
        return found
    if not set(log.steps.tolist()) & set(kpi.end):
        return f"none of the end steps {list(kpi.end)} is in the log"
    case, n_cases = found.case, found.n_cases
    first_start = np.full(n_cases, log.n_events)
    starts = np.flatnonzero(found.starts)
    np.minimum.at(first_start, case[starts], starts)  # rows are in time order per journey
    opened = np.flatnonzero(first_start < log.n_events)
    start_time = np.full(n_cases, np.iinfo(np.int64).max)
    start_time[opened] = log.times[first_start[opened]]
    ends = np.flatnonzero(found.ends)
    ends = ends[log.times[ends] >= start_time[case[ends]]]
    end_time = np.full(n_cases, np.iinfo(np.int64).max)
    np.minimum.at(end_time, case[ends], log.times[ends])
    resolved = end_time[opened] <= as_of_ns
    stop = np.where(resolved, end_time[opened], as_of_ns)
    rows = first_start[opened]
    return Cases(
        log.journey_codes[rows],
        rows,
        log.times[rows],
        (stop - log.times[rows]) / NS_PER_HOUR,
        resolved,
    )


def resolution_statistic(cases: Cases, groups: np.ndarray, n_groups: int) -> list[dict]:
    """Kaplan-Meier median (and p90) hours with the resolved and censored counts, beside the
    plain median of the resolved cases alone (which is biased low when cases are open)."""
    km = kaplan_meier(cases.hours, cases.resolved, groups, n_groups)
    resolved_n = np.bincount(groups, weights=cases.resolved, minlength=n_groups)
    plain = group_quantiles(groups[cases.resolved], cases.hours[cases.resolved], n_groups, (0.5,))[
        :, 0
    ]
    n = np.bincount(groups, minlength=n_groups)
    return _rows(
        n=n,
        value=km["median"],
        ci_low=km["median_low"],
        ci_high=km["median_high"],
        p90_hours=km["p90"],
        resolved=resolved_n.astype(np.int64),
        censored=(n - resolved_n).astype(np.int64),
        resolved_median_hours=plain,
    )


def proportion(positive: np.ndarray, groups: np.ndarray, n_groups: int) -> list[dict]:
    """Share positive with its Wilson interval."""
    n, hits, rate, low, high = _shares(positive, groups, n_groups)
    return _rows(n=n, value=rate, ci_low=low, ci_high=high, positives=hits)


def _shares(
    positive: np.ndarray, groups: np.ndarray, n_groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per group: units, positives, their share and its Wilson interval (NaN when empty)."""
    n = np.bincount(groups, minlength=n_groups)
    hits = np.bincount(groups, weights=positive, minlength=n_groups)
    low, high = wilson_interval(hits, n)
    empty = n == 0
    rate = np.divide(hits, n, out=np.full(n_groups, np.nan), where=~empty)
    return (
        n,
        hits.astype(np.int64),
        rate,
        np.where(empty, np.nan, low),
        np.where(empty, np.nan, high),
    )


def _rows(**columns: np.ndarray) -> list[dict]:
    """Column arrays as JSON-ready rows: Python numbers, None for NaN."""
    lists = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind == "f":
            values = np.where(np.isfinite(values), values, None)
        lists[name] = values.tolist()
    return [dict(zip(lists, row, strict=True)) for row in zip(*lists.values(), strict=True)]
