"""`journeyguard analyze`: every path table, and the critical path analysis of a task, as one
JSON-ready dict (its format: docs/analysis-format.md)."""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features import paths
from features.config import AnalysisConfig, KpiConfig, TaskConfig
from features.schema import EventLog

TOP_TRANSITIONS_IN_BOTTLENECKS = 20
TOP_VARIANTS_IN_SUMMARY = 100
DEFAULT_FUNNEL_LENGTH = 5
VARIANT_STEP_SEPARATOR = " > "


@dataclass(frozen=True)
class Analysis:
    """`summary`: every table, JSON-ready (variants: the most common ones); `variants`: all,
    of the log as analysed (`seen`)."""

    summary: dict[str, Any]
    variants: paths.Table
    seen: EventLog


REPORT = "report.html"


def task_analysis_dir(output_dir: Path, task: str) -> Path:
    """Where `journeyguard demo` writes a task's analysis (and where the console finds it)."""
    return Path(output_dir) / "analysis" / task


def write_analysis(analysis: Analysis, out: Path) -> None:
    """analysis.json, variants.csv (every variant) and the self-contained report.html."""
    from features.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    # Compact: Python's indenting encoder is several times slower on large logs.
    (out / "analysis.json").write_text(json.dumps(analysis.summary), encoding="utf-8")
    _write_variants_csv(analysis.seen, analysis.variants, out / "variants.csv")
    write_report(analysis.summary, out / REPORT)


def _write_variants_csv(log: EventLog, table: paths.Table, path: Path) -> None:
    """Every variant, its steps joined by " > " in one quoted field. Written line by line
    rather than with the csv module, which is several times slower on long fields; numbers
    to 6 significant digits, since the shortest exact form takes twice as long to write."""
    lines = ["rank,journeys,share,median_duration_hours,steps"]
    for rank, journeys, share, hours, steps in zip(
        table["rank"].tolist(),
        table["journeys"].tolist(),
        table["share"].tolist(),
        table["median_duration_hours"].tolist(),
        paths.variant_steps(log, table["first_journey"]),
        strict=True,
    ):
        quoted = VARIANT_STEP_SEPARATOR.join(steps).replace('"', '""')
        lines.append(f'{rank},{journeys},{share:.6g},{hours:.6g},"{quoted}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def analyze(
    log: EventLog,
    settings: AnalysisConfig,
    *,
    source: str,
    task: TaskConfig | None = None,
    as_of: Any = None,
    kpis: KpiConfig | None = None,
) -> Analysis:
    """The analysis of `log` as it stood at `as_of` (all of it by default); with a task and
    `kpis`, critical steps also show their effect on CSAT, NPS and resolution time."""
    seen = log.until(as_of) if as_of is not None else log
    gaps = paths.Gaps(seen)
    transitions = paths.transitions(seen, gaps)
    starts, ends = paths.start_and_end_steps(seen)
    variants = paths.variants(seen)
    top_variants = _top_variants(seen, variants)
    dwell = paths.step_dwell(seen, gaps)
    slow = paths.bottlenecks(transitions, dwell, TOP_TRANSITIONS_IN_BOTTLENECKS)
    summary = {
        "meta": _meta(seen, source, task, as_of) | {"variants": len(variants["rank"])},
        "transitions": records({k: v for k, v in transitions.items() if k != "total_hours"}),
        "start_steps": records(starts),
        "end_steps": records(ends),
        "variants": records(top_variants),
        "step_matrix": _matrix(paths.step_matrix(seen, settings.positions)),
        "first_steps": {part: records(table) for part, table in paths.first_steps(seen).items()},
        "anchored_step_matrix": _anchored(seen, settings),
        "funnels": [
            {"name": name, "stages": records(paths.funnel(seen, list(steps)))}
            for name, steps in _funnels(settings, top_variants).items()
        ],
        "durations": {
            "steps": records(paths.step_durations(seen)),
            "journey": clean(paths.journey_lengths(seen)),
        },
        "bottlenecks": {kind: records(table) for kind, table in slow.items()},
        "critical": _critical(log, settings, task, as_of, kpis) if task is not None else None,
    }
    return Analysis(summary, variants, seen)


def _top_variants(log: EventLog, variants: paths.Table) -> paths.Table:
    """The most common variants, each with its steps in place of its first journey."""
    top = paths.head(variants, TOP_VARIANTS_IN_SUMMARY)
    steps = np.empty(len(top["rank"]), dtype=object)
    for row, names in enumerate(paths.variant_steps(log, top.pop("first_journey"))):
        steps[row] = names
    return {"rank": top.pop("rank"), "steps": steps, **top}


def _critical(
    log: EventLog,
    settings: AnalysisConfig,
    task: TaskConfig,
    as_of: Any,
    kpis: KpiConfig | None = None,
) -> dict[str, Any]:
    from features.critical import critical_path_analysis  # only with a task: it needs pandas

    result = critical_path_analysis(log, task, as_of, min_support=settings.min_support, kpis=kpis)
    return {
        key: records(value) if hasattr(value, "columns") else clean(value)
        for key, value in result.items()
    }


def records(table: Any) -> list[dict[str, Any]]:
    """Rows of a table (a dict of arrays, or a DataFrame) as JSON-ready dicts: Python numbers
    and None for missing."""
    columns = {str(name): np.asarray(table[name]) for name in table}
    lists = []
    for values in columns.values():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            values = np.where(np.isfinite(values), values, None)
        lists.append(values.tolist())
    return [dict(zip(columns, row, strict=True)) for row in zip(*lists, strict=True)]


def clean(value: Any) -> Any:
    """A JSON-ready copy: NaN and infinities become None, numpy values Python values."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _meta(log: EventLog, source: str, task: TaskConfig | None, as_of: Any) -> dict[str, Any]:
    return {
        "source": source,
        "events": log.n_events,
        "journeys": log.n_journeys,
        "steps": [str(s) for s in log.steps],
        "first_event": _iso(log.first_time),
        "last_event": _iso(log.last_time),
        "as_of": _iso(as_of.value) if as_of is not None else None,
        "task": task.name if task is not None else None,
    }


def _matrix(matrix: paths.StepMatrix) -> dict[str, Any]:
    return {
        "positions": matrix.positions.tolist(),
        "rows": [
            {"step": str(step), "shares": shares.tolist()}
            for step, shares in zip(matrix.rows, matrix.shares, strict=True)
        ],
    }


def _anchored(log: EventLog, settings: AnalysisConfig) -> dict[str, Any] | None:
    if settings.anchor is None:
        return None
    matrix = paths.anchored_step_matrix(log, settings.anchor, max(settings.positions // 2, 1))
    return {"anchor": settings.anchor, "journeys": matrix.journeys, **_matrix(matrix)}


def _iso(nanoseconds: int) -> str:
    """ISO 8601 in UTC, without pandas."""
    moment = np.datetime64(int(nanoseconds), "ns").astype("datetime64[s]").item()
    return moment.replace(tzinfo=datetime.UTC).isoformat()


def _funnels(settings: AnalysisConfig, variants: paths.Table) -> dict[str, tuple[str, ...]]:
    """The configured funnels; by default the distinct steps that open the commonest variant."""
    if settings.funnels:
        return settings.funnels
    steps = tuple(dict.fromkeys(variants["steps"][0]))[:DEFAULT_FUNNEL_LENGTH]
    return {"most common path": steps} if len(steps) >= 2 else {}
