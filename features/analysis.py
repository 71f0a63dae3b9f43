"""`journeyguard analyze`: every path table, and the critical path analysis of a task, as one
JSON-ready dict (its format: docs/analysis-format.md)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from features import paths
from features.config import AnalysisConfig, TaskConfig
from features.critical import critical_path_analysis
from features.schema import TIMESTAMP, EventLog

TOP_TRANSITIONS_IN_BOTTLENECKS = 20
DEFAULT_FUNNEL_LENGTH = 5


def analyze(
    log: EventLog,
    settings: AnalysisConfig,
    *,
    source: str,
    task: TaskConfig | None = None,
    as_of: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """The analysis of `log` as it stood at `as_of` (all of it by default)."""
    seen = log.until(as_of) if as_of is not None else log
    transitions = paths.transitions(seen)
    starts, ends = paths.start_and_end_steps(seen)
    variants = paths.variants(seen)
    slow = paths.bottlenecks(transitions, paths.step_dwell(seen), TOP_TRANSITIONS_IN_BOTTLENECKS)
    critical = None
    if task is not None:
        critical = critical_path_analysis(log, task, as_of, min_support=settings.min_support)
        critical = {
            key: records(value) if isinstance(value, pd.DataFrame) else clean(value)
            for key, value in critical.items()
        }
    return {
        "meta": _meta(seen, source, task, as_of),
        "transitions": records(transitions.drop(columns="total_hours")),
        "start_steps": records(starts),
        "end_steps": records(ends),
        "variants": records(
            variants[["rank", "steps", "journeys", "share", "median_duration_hours"]]
        ),
        "step_matrix": _matrix(paths.step_matrix(seen, settings.positions)),
        "anchored_step_matrix": _anchored(seen, settings),
        "funnels": [
            {"name": name, "stages": records(paths.funnel(seen, list(steps)))}
            for name, steps in _funnels(settings, variants).items()
        ],
        "durations": {
            "steps": records(paths.step_durations(seen)),
            "journey": clean(paths.journey_lengths(seen)),
        },
        "bottlenecks": {kind: records(table) for kind, table in slow.items()},
        "critical": critical,
    }


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: Python numbers, None for missing, lists for tuples."""
    columns = []
    for name in table.columns:
        values = table[name]
        if pd.api.types.is_float_dtype(values):
            values = values.astype(object).where(values.notna() & np.isfinite(values), None)
        columns.append(values.tolist())
    names = [str(name) for name in table.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


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


def _meta(
    log: EventLog, source: str, task: TaskConfig | None, as_of: pd.Timestamp | None
) -> dict[str, Any]:
    times = log.events[TIMESTAMP]
    return {
        "source": source,
        "events": log.n_events,
        "journeys": log.n_journeys,
        "steps": [str(s) for s in log.steps],
        "first_event": times.min().isoformat(),
        "last_event": times.max().isoformat(),
        "as_of": as_of.isoformat() if as_of is not None else None,
        "task": task.name if task is not None else None,
    }


def _matrix(matrix: pd.DataFrame) -> dict[str, Any]:
    return {
        "positions": [int(c) for c in matrix.columns],
        "rows": [
            {"step": str(step), "shares": [float(v) for v in row]}
            for step, row in zip(matrix.index, matrix.to_numpy(), strict=True)
        ],
    }


def _anchored(log: EventLog, settings: AnalysisConfig) -> dict[str, Any] | None:
    if settings.anchor is None:
        return None
    matrix = paths.anchored_step_matrix(log, settings.anchor, max(settings.positions // 2, 1))
    return {"anchor": settings.anchor, "journeys": matrix.attrs["journeys"], **_matrix(matrix)}


def _funnels(settings: AnalysisConfig, variants: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """The configured funnels; by default the distinct steps that open the commonest variant."""
    if settings.funnels:
        return settings.funnels
    steps = tuple(dict.fromkeys(variants["steps"].iloc[0]))[:DEFAULT_FUNNEL_LENGTH]
    return {"most common path": steps} if len(steps) >= 2 else {}
