"""Post-purchase KPIs as they stood at `as_of`: CSAT, NPS, resolution time, churn and repeat
purchase rates, overall and per group, each with its sample size and a 95 % interval.

Pure, vectorised functions of an `EventLog`; nothing reads the clock. Every KPI sees only the
events at or before `as_of`: open cases are censored at `as_of`, churn labels come from
`features.labels` with the data ending at `as_of`, and customers whose repeat window is still
open are left out (and counted). A KPI whose steps or columns the log lacks is reported as
unavailable with the reason. `compute_kpis` returns the dict written as kpis.json:
{"meta", "kpis": {name: {"available", "reason", "overall", "groups", ...}}, "variants"}.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import numpy as np

from journeyguard.features.analysis.paths import first_of_each, journey_variants, variant_steps
from journeyguard.features.config.model import (
    Config,
    RepeatKpi,
    ResolutionKpi,
    SurveyKpi,
    nanoseconds,
)
from journeyguard.features.eventlog.columns import NS_PER_DAY, NS_PER_HOUR
from journeyguard.features.eventlog.log import Coded, EventLog
from journeyguard.features.stats import Z_95, wilson_interval

OTHER, MISSING, ALL = "(other)", "(missing)", "all"


@dataclass(frozen=True)
class Grouping:
    """How to split each KPI: not at all, by calendar month or week (Monday-based, UTC) of each
    unit's time, by a column's value at each unit's event, or by the journey's path variant
    (the `top` most common variants, the rest as "(other)")."""

    kind: str = "all"  # all | month | week | attribute | variant
    attribute: str | None = None
    top: int = 8

    @property
    def label(self) -> str:
        return f"attribute:{self.attribute}" if self.kind == "attribute" else self.kind


def parse_grouping(text: str | None, top: int = 8) -> Grouping:
    """The --by option: 'month', 'week', 'variant' or 'attribute:<column>' (None: no groups)."""
    if text is None or text == ALL:
        return Grouping()
    if text in ("month", "week", "variant"):
        return Grouping(text, None, top)
    kind, _, name = text.partition(":")
    if kind == "attribute" and name:
        return Grouping("attribute", name, top)
    raise ValueError(
        f"--by: expected 'month', 'week', 'variant' or 'attribute:<column>', got {text!r}"
    )


@dataclass(frozen=True)
class Units:
    """The units one KPI counts (survey responses, cases, snapshots, customers): the journey,
    time and event row that place each in a group."""

    journeys: np.ndarray
    times: np.ndarray  # int64 ns
    rows: np.ndarray  # the event row whose attribute value groups the unit


def compute_kpis(
    log: EventLog, config: Config, grouping: Grouping = Grouping(), as_of: Any = None
) -> dict[str, Any]:
    """Every configured KPI of `log` as it stood at `as_of` (default: its last event)."""
    as_of_ns = int(getattr(as_of, "value", as_of)) if as_of is not None else log.last_time
    seen = log.until(as_of_ns)
    kpis = config.kpis
    groups = _GroupNamer(seen, grouping)
    result = {
        "csat": _survey_kpi(seen, kpis.csat, groups, csat),
        "nps": _survey_kpi(seen, kpis.nps, groups, nps),
        "resolution": _resolution_kpi(seen, kpis.resolution, groups, as_of_ns),
        "churn": _churn_kpi(seen, config, groups, as_of_ns),
        "repeat": _repeat_kpi(seen, kpis.repeat, groups, as_of_ns),
    }
    meta = {
        "as_of": _iso(as_of_ns),
        "events": seen.n_events,
        "journeys": seen.n_journeys,
        "first_event": _iso(seen.first_time) if seen.n_events else None,
        "last_event": _iso(seen.last_time) if seen.n_events else None,
        "by": grouping.label,
    }
    return {"meta": meta, "kpis": result, "variants": groups.variant_table()}


def unavailable(reason: str) -> dict[str, Any]:
    """A KPI the log cannot give, and why."""
    return {"available": False, "reason": reason}


# --- statistics per group (vectorised over groups) -------------------------------------------


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


# --- the KPIs --------------------------------------------------------------------------------


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


def _survey_kpi(log, kpi: SurveyKpi | None, groups: _GroupNamer, statistic) -> dict[str, Any]:
    if kpi is None:
        return unavailable("not configured")
    rows, reason = survey_responses(log, kpi)
    if reason:
        return unavailable(reason)
    scores = np.asarray(log.columns[kpi.column])[rows]
    units = Units(log.journey_codes[rows], log.times[rows], rows)
    return _grouped(units, groups, lambda g, n: statistic(scores, g, n, kpi)) | {
        "unit": "survey response",
        "time": "the survey event",
        "scale": [kpi.low, kpi.high],
        "event": kpi.event,
    }


@dataclass(frozen=True)
class Cases:
    """Cases with a start step: where they start, how long until resolved or `as_of`."""

    journeys: np.ndarray
    start_rows: np.ndarray
    start_times: np.ndarray
    hours: np.ndarray
    resolved: np.ndarray


def resolution_cases(log: EventLog, kpi: ResolutionKpi, as_of_ns: int) -> Cases | str:
    """Each case from its first start step to the first end step at or after it; a case with
    no end by `as_of` is censored there. Returns the reason instead when the log lacks them."""
    steps = set(log.steps.tolist())
    for role, names in (("start", kpi.start), ("end", kpi.end)):
        if not steps & set(names):
            return f"none of the {role} steps {list(names)} is in the log"
    if kpi.case_column is None:
        case, n_cases = log.journey_codes, log.n_journeys
    else:
        column = log.column(kpi.case_column)
        if not isinstance(column, Coded):
            return f"no text column {kpi.case_column!r} (the case id) in the log"
        case, n_cases = column.codes.astype(np.int64), len(column.categories)
    is_start = np.isin(log.step_codes, np.flatnonzero(np.isin(log.steps, list(kpi.start))))
    is_end = np.isin(log.step_codes, np.flatnonzero(np.isin(log.steps, list(kpi.end))))
    first_start = np.full(n_cases, log.n_events)
    starts = np.flatnonzero(is_start & (case >= 0))
    np.minimum.at(first_start, case[starts], starts)  # rows are in time order per journey
    opened = np.flatnonzero(first_start < log.n_events)
    start_time = np.full(n_cases, np.iinfo(np.int64).max)
    start_time[opened] = log.times[first_start[opened]]
    ends = np.flatnonzero(is_end & (case >= 0))
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
    from journeyguard.features.arrays import group_quantiles

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


def _resolution_kpi(log, kpi: ResolutionKpi | None, groups, as_of_ns: int) -> dict[str, Any]:
    if kpi is None:
        return unavailable("not configured")
    cases = resolution_cases(log, kpi, as_of_ns)
    if isinstance(cases, str):
        return unavailable(cases)
    units = Units(cases.journeys, cases.start_times, cases.start_rows)
    return _grouped(units, groups, lambda g, n: resolution_statistic(cases, g, n)) | {
        "unit": "case" if kpi.case_column else "journey (one case each)",
        "time": "the case's first start step",
        "hours": True,
        "start": list(kpi.start),
        "end": list(kpi.end),
    }


def _churn_kpi(log: EventLog, config: Config, groups, as_of_ns: int) -> dict[str, Any]:
    import pandas as pd

    from journeyguard.features.labels import label_snapshots, task_snapshots

    name = config.kpis.churn_task
    if name is None:
        return unavailable("not configured (kpis.churn_task)")
    if name not in config.tasks:
        return unavailable(f"{name!r} is not a task of the config; tasks: {sorted(config.tasks)}")
    task = config.tasks[name]
    try:
        snapshots = task_snapshots(log, task)
        outcomes = label_snapshots(
            log, task, snapshots.journeys, snapshots.as_of, pd.Timestamp(as_of_ns, tz="UTC")
        )
    except ValueError as error:
        return unavailable(str(error))
    keep = np.flatnonzero(outcomes.eligible)
    journeys, moments = snapshots.journeys[keep], snapshots.as_of[keep]
    positive = outcomes.positive[keep]
    rows = np.maximum(log.stops(journeys, moments) - 1, log.offsets[journeys])
    excluded = {
        "already_happened": int(outcomes.already_happened.sum()),
        "censored": int((outcomes.censored & ~outcomes.already_happened).sum()),
    }
    return _grouped(
        Units(journeys, moments, rows), groups, lambda g, n: proportion(positive, g, n)
    ) | {
        "unit": "snapshot (journey, as_of) of the task",
        "time": "the snapshot's as_of",
        "task": name,
        "excluded": excluded,
    }


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


def repeat_customers(
    log: EventLog, kpi: RepeatKpi, as_of_ns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    """(first purchase row, repeated, window closed) per customer with a purchase: repeated when
    a later purchase (strictly after the first) comes within the window."""
    codes = np.flatnonzero(np.isin(log.steps, list(kpi.events)))
    if len(codes) == 0:
        return f"none of the purchase steps {list(kpi.events)} is in the log"
    purchases = np.flatnonzero(np.isin(log.step_codes, codes))
    journey = log.journey_codes[purchases]
    first = purchases[np.r_[True, journey[1:] != journey[:-1]]]  # sorted by journey, time
    first_time = np.full(log.n_journeys, np.iinfo(np.int64).max)
    first_time[log.journey_codes[first]] = log.times[first]
    window = nanoseconds(kpi.window)
    later = log.times[purchases] - first_time[journey]
    hit = (later > 0) & (later <= window)
    repeated = np.bincount(journey[hit], minlength=log.n_journeys)[log.journey_codes[first]] > 0
    closed = log.times[first] + window <= as_of_ns
    return first, repeated, closed


def _repeat_kpi(log, kpi: RepeatKpi | None, groups, as_of_ns: int) -> dict[str, Any]:
    if kpi is None:
        return unavailable("not configured")
    found = repeat_customers(log, kpi, as_of_ns)
    if isinstance(found, str):
        return unavailable(found)
    first, repeated, closed = found
    rows = first[closed]
    units = Units(log.journey_codes[rows], log.times[rows], rows)
    return _grouped(units, groups, lambda g, n: proportion(repeated[closed], g, n)) | {
        "unit": "customer (journey) with a purchase",
        "time": "the first purchase (cohort)",
        "window_days": kpi.window / datetime.timedelta(days=1),
        "excluded_open_window": int((~closed).sum()),
    }


# --- grouping ----------------------------------------------------------------------------------


class _GroupNamer:
    """Group codes and names of units under one grouping of one log."""

    def __init__(self, log: EventLog, grouping: Grouping) -> None:
        self.log, self.grouping = log, grouping
        self._variant: tuple[np.ndarray, list[str], list[dict]] | None = None

    def codes(self, units: Units) -> tuple[np.ndarray, list[str]] | str:
        kind = self.grouping.kind
        if kind == "all":
            return np.zeros(len(units.journeys), np.int64), [ALL]
        if kind in ("month", "week"):
            return _calendar(units.times, kind)
        if kind == "variant":
            variant, names, _ = self.variants()
            return variant[units.journeys], names
        column = self.log.column(self.grouping.attribute or "")
        if column is None:
            return f"no column {self.grouping.attribute!r} in the log"
        if isinstance(column, Coded):
            text = column.values()[units.rows]
        else:
            text = _number_text(column[units.rows])
        return _top_values(text, self.grouping.top)

    def variants(self) -> tuple[np.ndarray, list[str], list[dict]]:
        """Per journey, the group of its variant: the `top` most common, then "(other)"."""
        if self._variant is None:
            log, top = self.log, self.grouping.top
            variant = journey_variants(log)
            counts = np.bincount(variant) if len(variant) else np.zeros(0, np.int64)
            first = first_of_each(variant)  # ranked as `paths.variants` ranks them
            order = np.lexsort((first, -counts))[:top]
            group = np.full(len(counts), len(order))
            group[order] = np.arange(len(order))
            names = [f"variant {i + 1}" for i in range(len(order))]
            steps = variant_steps(log, first[order])
            table = [
                {"group": names[i], "journeys": int(counts[v]), "steps": steps[i]}
                for i, v in enumerate(order)
            ]
            if len(order) < len(counts):
                names.append(OTHER)
            self._variant = (group[variant], names, table)
        return self._variant

    def variant_table(self) -> list[dict] | None:
        return self.variants()[2] if self.grouping.kind == "variant" else None


def _calendar(times: np.ndarray, kind: str) -> tuple[np.ndarray, list[str]]:
    """Calendar months ('2025-01') or weeks named by their Monday ('2025-01-06'), UTC."""
    if kind == "month":
        period = times.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
        to_name = period.astype("datetime64[M]")
    else:
        days = times // NS_PER_DAY
        period = (days + 3) // 7  # 1970-01-01 was a Thursday: weeks from Monday
        to_name = (period * 7 - 3).astype("datetime64[D]")
    distinct, codes = np.unique(period, return_inverse=True)
    names = np.unique(to_name).astype(str).tolist() if len(distinct) else []
    return codes.astype(np.int64), names


def _top_values(text: np.ndarray, top: int) -> tuple[np.ndarray, list[str]]:
    """Codes of the `top` most frequent values (ties by name), then "(other)"."""
    text = np.where(text == None, MISSING, text).astype(str)  # noqa: E711
    distinct, codes, counts = np.unique(text, return_inverse=True, return_counts=True)
    order = np.lexsort((distinct, -counts))[:top]
    group = np.full(len(distinct), len(order))
    group[order] = np.arange(len(order))
    names = distinct[order].tolist() + ([OTHER] if len(order) < len(distinct) else [])
    return group[codes], names


def _number_text(values: np.ndarray) -> np.ndarray:
    """Numbers as text ('3', '0.5'; None for NaN), formatting each distinct value once."""
    distinct, inverse = np.unique(values, return_inverse=True)
    text = np.array([None if np.isnan(v) else f"{v:g}" for v in distinct], dtype=object)
    return text[inverse.reshape(-1)]


def _grouped(units: Units, namer: _GroupNamer, statistic) -> dict[str, Any]:
    """The KPI overall and per group: `statistic(group codes, n_groups)` gives the rows."""
    overall = statistic(np.zeros(len(units.journeys), np.int64), 1)[0] | {"group": ALL}
    coded = namer.codes(units)
    if isinstance(coded, str):
        return {
            "available": True,
            "reason": None,
            "overall": overall,
            "groups": [],
            "groups_reason": coded,
        }
    codes, names = coded
    rows = statistic(codes, len(names))
    groups = [row | {"group": name} for row, name in zip(rows, names, strict=True)]
    return {"available": True, "reason": None, "overall": overall, "groups": groups}


def _rows(**columns: np.ndarray) -> list[dict]:
    """Column arrays as JSON-ready rows: Python numbers, None for NaN."""
    lists = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.dtype.kind == "f":
            values = np.where(np.isfinite(values), values, None)
        lists[name] = values.tolist()
    return [dict(zip(lists, row, strict=True)) for row in zip(*lists.values(), strict=True)]


def _iso(nanoseconds_: int) -> str:
    moment = np.datetime64(int(nanoseconds_), "ns").astype("datetime64[s]").item()
    return moment.replace(tzinfo=datetime.UTC).isoformat()
