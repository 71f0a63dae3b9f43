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
from journeyguard.features.eventlog.columns import NS_PER_DAY
from journeyguard.features.eventlog.log import Coded, EventLog
from journeyguard.features.measures import (
    csat,
    nps,
    proportion,
    resolution_cases,
    resolution_statistic,
    survey_responses,
)

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


# --- the KPIs --------------------------------------------------------------------------------


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
    keep = np.flatnonzero(outcomes.labelled)
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


def _iso(nanoseconds_: int) -> str:
    moment = np.datetime64(int(nanoseconds_), "ns").astype("datetime64[s]").item()
    return moment.replace(tzinfo=datetime.UTC).isoformat()
