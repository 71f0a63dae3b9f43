"""The data behind each console page, as plain functions of frames and arrays (no HTTP).

The routes in `serving.service` parse nothing themselves: they hand the query to `list_query`,
the frames to the functions here, and the result to a template. Everything is vectorised over
the risk list, so a page of a 10,000+ customer list costs a filter, a sort and a slice.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.eventlog.columns import CASE_ID, CHANNEL, VALUE
from journeyguard.features.eventlog.log import Coded, EventLog
from journeyguard.serving.console.errors import ConsoleError
from journeyguard.serving.responses import shown
from journeyguard.serving.sources import ranked
from journeyguard.training.score import BANDS

SORTS = ("risk", "value_at_risk", "value")
WIDE_INTERVAL = 0.10  # a risk whose 95 % interval spans more is shown with it
MAX_PER_PAGE = 500
HISTORY_POINTS = 60  # at most this many snapshots in a customer's risk history
EXPORT_COLUMNS = (
    "customer_id", "task", "as_of", "risk", "band", "reasons", "value", "expected_value",
    "value_at_risk", "last_contact", "outreach", "outreach_reason", "model_version",
)  # fmt: skip


@dataclass(frozen=True)
class ListQuery:
    """The risk list's filters, sort and page, validated."""

    task: str
    band: str = ""
    reason: str = ""
    sort: str = "risk"
    page: int = 1
    per_page: int = 50

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this view (with `changes`), defaults left out, for links."""
        query = replace(self, **changes)
        defaults = ListQuery(task=query.task)
        return {
            name: str(getattr(query, name))
            for name in ("task", "band", "reason", "sort", "page", "per_page")
            if name == "task" or getattr(query, name) != getattr(defaults, name)
        }


def task_of(params: Mapping[str, str], tasks: Sequence[str]) -> str:
    """The request's `task` (the first task by default); `ConsoleError(400)` for an unknown one."""
    task = params.get("task") or (tasks[0] if tasks else "")
    if task not in tasks:
        raise ConsoleError(400, f"no task {shown(task)}: choose one of {', '.join(tasks)}")
    return task


def list_query(params: Mapping[str, str], tasks: Sequence[str]) -> ListQuery:
    """The `ListQuery` of a request's query parameters; `ConsoleError(400)` naming the bad one."""
    unknown = sorted(set(params) - {"task", "band", "reason", "sort", "page", "per_page"})
    if unknown:
        raise ConsoleError(400, f"unknown parameter {shown(unknown[0])}: use task, band, reason, "
                           "sort, page or per_page")  # fmt: skip
    task = task_of(params, tasks)
    band = params.get("band", "")
    if band and band not in BANDS:
        raise ConsoleError(
            400, f"band {shown(band)}: choose high, medium or low (or leave it empty)"
        )
    sort = params.get("sort") or "risk"
    if sort not in SORTS:
        raise ConsoleError(400, f"sort {shown(sort)}: choose {' or '.join(SORTS)}")
    page = _whole(params, "page", 1, 1, 10**9)
    per_page = _whole(params, "per_page", 50, 1, MAX_PER_PAGE)
    reason = params.get("reason", "").strip()
    return ListQuery(task, band, reason[:200], sort, page, per_page)


def _whole(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ConsoleError(400, f"{name} {shown(text)}: expected a whole number") from None
    if not low <= value <= high:
        raise ConsoleError(400, f"{name} {value}: expected {low} to {high}")
    return value


def outreach_by_customer(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per customer of a campaign's decisions: the latest decision and its reason, and when
    the customer was last contacted (NaT when never), indexed by customer_id."""
    columns = {"outreach": [], "outreach_reason": [], "last_contact": []}
    if decisions.empty:
        return pd.DataFrame(columns, index=pd.Index([], name="customer_id")).astype(
            {"last_contact": "datetime64[ns, UTC]"}
        )
    ordered = decisions.sort_values(["as_of", "decision_key"])
    latest = ordered.groupby("customer_id", sort=False).tail(1).set_index("customer_id")
    contacts = ordered[ordered["decision"] == "contact"].groupby("customer_id")["as_of"].max()
    return pd.DataFrame(
        {
            "outreach": latest["decision"],
            "outreach_reason": latest["reason"],
            "last_contact": contacts.reindex(latest.index),
        }
    )


def enrich(table: pd.DataFrame, values: pd.Series, outreach: pd.DataFrame) -> pd.DataFrame:
    """A scored risk list with each customer's spend so far (`value`), latest outreach decision
    and reason, last contact, and its reasons joined into one text (`reasons`)."""
    ids = table["customer_id"].astype(str)
    reason_columns = [c for c in table.columns if c.startswith("reason_")]
    reasons = np.full(len(table), "", dtype=object)
    for name in reason_columns:  # vectorised joins: a row-wise apply costs 20x more
        text = table[name].to_numpy(dtype=object)
        present = np.array([isinstance(t, str) and t != "" for t in text], dtype=bool)
        joined = np.where(reasons == "", text, reasons + "; " + np.where(present, text, ""))
        reasons = np.where(present, joined, reasons)
    found = outreach.reindex(ids)
    return table.assign(
        customer_id=ids.to_numpy(),
        value=values.reindex(ids).fillna(0.0).to_numpy(),
        reasons=reasons,
        outreach=found["outreach"].to_numpy(),
        outreach_reason=found["outreach_reason"].to_numpy(),
        last_contact=found["last_contact"].to_numpy(),
    )


def filtered(table: pd.DataFrame, query: ListQuery) -> pd.DataFrame:
    """The rows of an enriched list that pass the query's band and reason filters, in its
    order (riskiest first, most value at risk first, or highest spend first; unknown values
    last, ties by customer id)."""
    keep = np.ones(len(table), dtype=bool)
    if query.band:
        keep &= (table["band"] == query.band).to_numpy()
    if query.reason:
        keep &= table["reasons"].str.contains(query.reason, case=False, regex=False).to_numpy()
    return ranked(table[keep], query.sort)


def list_page(table: pd.DataFrame, query: ListQuery) -> dict[str, Any]:
    """The rows of one page of the filtered list, with the counts the page shows.
    A page past the end is an empty page (with the real number of pages), not an error."""
    rows = filtered(table, query)
    pages = max(1, math.ceil(len(rows) / query.per_page))
    start = (query.page - 1) * query.per_page
    shown = rows.iloc[start : start + query.per_page]
    return {
        "query": query,
        "total": len(table),
        "matching": len(rows),
        "pages": pages,
        "first": start + 1 if len(shown) else 0,
        "last": start + len(shown),
        "bands": {band: int((table["band"] == band).sum()) for band in BANDS},
        "as_of": _iso(table["as_of"].max()) if len(table) else None,
        "rows": [_row(record) for record in shown.to_dict("records")],
    }


def _row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": record["customer_id"],
        "risk": float(record["risk"]),
        "interval": _wide_interval(record),
        "band": record["band"],
        "reasons": [
            record[c] for c in sorted(record) if c.startswith("reason_") and _text(record[c])
        ],
        "value": float(record["value"]),
        "value_at_risk": _number(record.get("value_at_risk")),
        "last_contact": _iso(record["last_contact"]),
        "outreach": _text(record["outreach"]),
        "outreach_reason": _text(record["outreach_reason"]),
    }


def export_csv(rows: pd.DataFrame) -> str:
    """The filtered list as CSV text, one row per customer, in the list's order (columnwise:
    20,000 rows in a fraction of a second)."""
    version = rows["model_version"] if "model_version" in rows else pd.Series(pd.NA, rows.index)
    frame = pd.DataFrame(
        {
            "customer_id": _inert(rows["customer_id"]),
            "task": _inert(rows["task"]),
            "as_of": _iso_column(rows["as_of"]),
            "risk": rows["risk"].astype(float).round(6),
            "band": _inert(rows["band"]),
            "reasons": _inert(rows["reasons"]),
            "value": rows["value"].astype(float).round(2),
            "expected_value": _rounded(rows, "expected_value"),
            "value_at_risk": _rounded(rows, "value_at_risk"),
            "last_contact": _iso_column(rows["last_contact"]),
            "outreach": _inert(rows["outreach"]),
            "outreach_reason": _inert(rows["outreach_reason"]),
            "model_version": pd.array(version, dtype="Int64"),
        },
        columns=EXPORT_COLUMNS,
    )
    return frame.to_csv(index=False, lineterminator="\n")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs such a cell


def _inert(text: pd.Series) -> pd.Series:
    """Text cells as a spreadsheet shows them, never runs them: one that starts like a formula
    gets a leading apostrophe (OWASP's advice for CSV injection)."""
    values = text.astype(object)
    risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
    return values.where(~risky.astype(bool), "'" + values.astype(str))


def _wide_interval(record: Mapping[str, Any]) -> tuple[float, float] | None:
    """The risk's 95 % interval where it is wider than `WIDE_INTERVAL`, else None."""
    low, high = _number(record.get("risk_low")), _number(record.get("risk_high"))
    if low is None or high is None or high - low <= WIDE_INTERVAL:
        return None
    return low, high


def _rounded(rows: pd.DataFrame, name: str) -> pd.Series:
    """A money column to the cent; empty for a list scored without values."""
    column = rows[name] if name in rows else pd.Series(np.nan, index=rows.index)
    return column.astype(float).round(2)


def _number(value: Any) -> float | None:
    """A finite number, or None for a missing one."""
    return None if value is None or not np.isfinite(value) else float(value)


def _iso_column(times: pd.Series) -> pd.Series:
    """ISO 8601 text of a column of times (empty where missing), formatting each distinct
    time once."""
    stamps = pd.to_datetime(times, utc=True)
    distinct = {value: _iso(value) or "" for value in stamps.dropna().unique()}
    return stamps.map(distinct).astype(object).fillna("")  # all missing: float NaN first


def customer_values(log: EventLog, as_of_ns: int) -> pd.Series:
    """Per customer, what they have spent up to `as_of_ns`, indexed by customer id: the same
    total the outreach policy's `min_value` compares against."""
    from journeyguard.outreach.facts import spend_until

    return pd.Series(spend_until(log, log.times <= as_of_ns), index=log.journey_ids.astype(str))


def journey_events(journey: EventLog) -> list[dict[str, Any]]:
    """The events of a one-journey log, oldest first: time, step, channel, case and value."""
    channel, case = _texts(journey, CHANNEL), _texts(journey, CASE_ID)
    value = journey.column(VALUE)
    values = value if isinstance(value, np.ndarray) else np.full(journey.n_events, np.nan)
    times = pd.to_datetime(journey.times, utc=True)
    return [
        {
            "time": times[i].isoformat(),
            "step": str(journey.steps[journey.step_codes[i]]),
            "channel": channel[i],
            "case": case[i],
            "value": None if np.isnan(values[i]) else float(values[i]),
        }
        for i in range(journey.n_events)
    ]


def _texts(log: EventLog, name: str) -> list[str | None]:
    column = log.column(name)
    if isinstance(column, Coded):
        return column.values().tolist()
    return [None] * log.n_events


def history_times(
    event_times: np.ndarray, as_of_ns: int, limit: int = HISTORY_POINTS
) -> np.ndarray:
    """When to score a journey to show how its risk moved: at each of its events up to
    `as_of_ns` and at `as_of_ns` itself, thinned evenly to at most `limit` moments."""
    moments = np.unique(np.append(event_times[event_times <= as_of_ns], as_of_ns))
    if len(moments) > limit:
        moments = moments[np.unique(np.linspace(0, len(moments) - 1, limit).round().astype(int))]
    return moments.astype(np.int64)


def sparkline(
    times: np.ndarray, risks: Mapping[str, np.ndarray], width: int = 640, height: int = 160
) -> dict[str, Any]:
    """Polyline points of each task's risk over time in a `width` x `height` box (risk 0 at
    the bottom, 1 at the top), with the first and last times for the axis."""
    pad = 8
    span = max(int(times[-1] - times[0]), 1) if len(times) else 1
    xs = pad + (times - (times[0] if len(times) else 0)) / span * (width - 2 * pad)
    lines = {  # a moment outside the task's population (NaN) has no point
        task: " ".join(
            f"{x:.1f},{pad + (1 - r) * (height - 2 * pad):.1f}"
            for x, r in zip(xs, values, strict=True)
            if np.isfinite(r)
        )
        for task, values in risks.items()
    }
    stamps = pd.to_datetime(times, utc=True)
    return {
        "width": width,
        "height": height,
        "lines": lines,
        "start": stamps[0].date().isoformat() if len(times) else "",
        "end": stamps[-1].date().isoformat() if len(times) else "",
    }


def model_rows(versions: Mapping[str, Mapping[str, Any]], tasks: Sequence[str]) -> list[dict]:
    """One row per task and alias (champion, challenger) with version, test metrics, run id,
    the candidate that won training and why, and its reliability diagram, from
    `training.registry.champion_versions`; tasks without a registered model say so."""
    rows = []
    for task in tasks:
        entry = versions.get(task) or {}
        for alias in ("champion", "challenger"):
            found = entry.get(alias)
            metrics = (found or {}).get("metrics", {})
            tags = (found or {}).get("tags", {})
            rows.append(
                {
                    "task": task,
                    "alias": alias,
                    "model_name": entry.get("model_name"),
                    "version": None if found is None else found["version"],
                    "run_id": None if found is None else found["run_id"],
                    "created": None if found is None else found.get("created"),
                    "roc_auc": metrics.get("test_roc_auc"),
                    "pr_auc": metrics.get("test_pr_auc"),
                    "brier": metrics.get("test_brier"),
                    "winner": tags.get("winner"),
                    "winner_reason": tags.get("winner_reason"),
                    "reliability": reliability_chart(tags.get("reliability")),
                }
            )
    return rows


def reliability_chart(numbers: str | None, size: int = 120) -> dict[str, Any] | None:
    """The reliability diagram of a run's `reliability` tag (JSON, from training): per bin the
    predicted risk against the realised rate with its 95 % interval, as points and bars in a
    `size` x `size` box (0 at the bottom left, 1 at the top right); None without the tag."""
    if not numbers:
        return None
    pad, span = 6, size - 12

    def x(value: float) -> float:
        return round(pad + span * value, 1)

    def y(value: float) -> float:
        return round(size - pad - span * value, 1)

    bins = json.loads(numbers)
    points = [
        {
            "x": x(b["predicted"]), "y": y(b["realised"]), "low": y(b["realised_low"]),
            "high": y(b["realised_high"]), "n": b["n"], "predicted": b["predicted"],
            "realised": b["realised"],
        }
        for b in bins
    ]  # fmt: skip
    return {"size": size, "pad": pad, "end": size - pad, "points": points}


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        return None
    return (stamp if stamp.tzinfo else stamp.tz_localize("UTC")).isoformat()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def job_rows(last: Mapping[str, Mapping[str, Any]], now: datetime.datetime) -> list[dict]:
    """One row per scheduled job (`outreach.runs.last_runs`): its last run's times, outcome,
    age at `now` (since it ended, or started while it runs), counts and error; jobs in the
    pipeline's order, a task's early retrain after the weekly one."""
    rows = []
    for job in sorted(last, key=_job_order):
        run = last[job]
        moment = run["ended_at"] or run["started_at"]
        seconds = max(0.0, (now - moment).total_seconds())
        rows.append(
            {
                "job": job,
                "cause": run["cause"],
                "attempt": run["attempt"],
                "as_of": run["as_of"].isoformat(),
                "started": run["started_at"].isoformat(),
                "ended": run["ended_at"].isoformat() if run["ended_at"] else None,
                "outcome": run["outcome"],
                "age_seconds": seconds,
                "age": age_text(seconds),
                "counts": json.dumps(run["counts"], sort_keys=True)[:300],
                "error": run["error"],
            }
        )
    return rows


_JOB_ORDER = ("ingest", "retrain", "score", "monitor", "outreach")  # outreach.timetable.JOBS


def _job_order(job: str) -> tuple[int, str]:
    base = job.split(":", 1)[0]
    return (_JOB_ORDER.index(base) if base in _JOB_ORDER else len(_JOB_ORDER), job)


def age_text(seconds: float) -> str:
    """A duration as a person reads an age: '45 s', '12 min', '5 h', '3 d'."""
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def qini_chart(curve: Mapping[str, list] | None, size: int = 220) -> dict[str, Any] | None:
    """SVG polylines of a Qini curve by predicted uplift, by risk and at random (x: the share
    targeted, y: the good outcomes added per customer), scaled to a `size` square."""
    if not curve:
        return None
    pad = 8
    values = [v for key in ("qini", "risk", "random") for v in curve.get(key, []) if v is not None]
    low, high = min([0.0, *values]), max([0.0, *values])
    span = (high - low) or 1.0

    inner = size - 2 * pad

    def y_of(value: float) -> float:
        return size - pad - (value - low) / span * inner

    def points(key: str) -> str:
        pairs = zip(curve["share"], curve.get(key, []), strict=False)
        return " ".join(f"{pad + x * inner:.1f},{y_of(y):.1f}" for x, y in pairs if y is not None)

    zero = y_of(0.0)
    return {
        "size": size,
        "pad": pad,
        "zero": zero,
        **{k: points(k) for k in ("qini", "risk", "random")},
    }
