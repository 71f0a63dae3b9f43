"""`journeyguard analyze`: every path table, and the critical path analysis of a task, as one
JSON-ready dict (its format: docs/analysis-format.md)."""

from __future__ import annotations

import datetime
import importlib
import itertools
import json
import math
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from journeyguard.features.analysis import paths
from journeyguard.features.arrays import rows_of_groups
from journeyguard.features.config.model import AnalysisConfig, KpiConfig, TaskConfig
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.parallel import InChild, worth_a_child
from journeyguard.features.workspace import REPORT

TOP_TRANSITIONS_IN_BOTTLENECKS = 20
TOP_VARIANTS_IN_SUMMARY = 100
DEFAULT_FUNNEL_LENGTH = 5
VARIANT_STEP_SEPARATOR = " > "
_CSV_ROWS_AT_ONCE = 8_192  # variants.csv rows joined at a time: small temporaries


class Analysis(NamedTuple):
    """`summary`: every table, JSON-ready (variants: the most common ones);
    `variants_csv_parts`: every variant, the contents of variants.csv (UTF-8) in parts of
    some thousand rows, written one after the other: joined, tens of megabytes would be
    fresh memory to fill twice over."""

    summary: dict[str, Any]
    variants_csv_parts: tuple[bytes, ...]

    @property
    def variants_csv(self) -> bytes:
        """The contents of variants.csv in one piece."""
        return b"".join(self.variants_csv_parts)


def write_analysis(analysis: Analysis, out: Path) -> None:
    """analysis.json, variants.csv (every variant) and the self-contained report.html.
    variants.csv, tens of megabytes on a large log, is written by a second thread while this
    one renders the others: writing lets go of the GIL, rendering holds it."""
    from journeyguard.features.analysis.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    csv_writer = _PartsWriter(out / "variants.csv", analysis.variants_csv_parts)
    csv_writer.start()
    try:
        # Compact: Python's indenting encoder is several times slower on large logs.
        (out / "analysis.json").write_text(json.dumps(analysis.summary), encoding="utf-8")
        write_report(analysis.summary, out / REPORT)
    finally:
        csv_writer.finish()


class _PartsWriter(threading.Thread):
    """Writes `parts` one after the other into `path`; `finish` waits, and raises what the
    writing raised. (A thread, not concurrent.futures, whose import costs ~7 ms.)"""

    def __init__(self, path: Path, parts: tuple[bytes, ...]) -> None:
        super().__init__(name="variants.csv")
        self._path, self._parts = path, parts
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            with self._path.open("wb") as file:
                file.writelines(self._parts)
        except BaseException as error:  # raised again in the thread that waits
            self._error = error

    def finish(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error


def _variants_csv_parts(log: EventLog, table: paths.Table) -> tuple[bytes, ...]:
    """variants.csv (UTF-8) in parts: every variant, its steps joined by " > " in one quoted
    field; numbers to 6 significant digits, since the shortest exact form takes twice as
    long to write. Joined from a small vocabulary of pieces, a row's numbers then a piece per
    step (the first opens the quotes, the others follow a separator), some thousand rows at
    a time: the csv module, or a join per variant, take several times longer on tens of
    thousands of variants, and one join of all of them as much memory again."""
    header = b"rank,journeys,share,median_duration_hours,steps\n"
    journeys = table["first_journey"]
    if len(journeys) == 0:
        return (header, b"\n")
    parts = [header]
    n_steps = len(log.steps)
    quoted = [step.replace('"', '""') for step in log.steps.tolist()]
    vocabulary = np.array(
        ['"' + step for step in quoted]
        + [VARIANT_STEP_SEPARATOR + step for step in quoted]
        + _variant_numbers(table),
        dtype=object,
    )
    all_lengths = np.diff(log.offsets)
    for first in range(0, len(journeys), _CSV_ROWS_AT_ONCE):
        rows = journeys[first : first + _CSV_ROWS_AT_ONCE]
        lengths = all_lengths[rows]
        piece = log.step_codes[rows_of_groups(log.offsets, rows)].astype(np.int64) + n_steps
        opening = np.cumsum(lengths) - lengths
        piece[opening] -= n_steps
        numbers = 2 * n_steps + np.arange(first, first + len(rows))
        parts.append("".join(vocabulary[np.insert(piece, opening, numbers)].tolist()).encode())
    parts.append(b'"\n')
    return tuple(parts)


def _variant_numbers(table: paths.Table) -> list[str]:
    """The start of each variants.csv row, up to its steps (after the previous row's end).
    Rows come in runs of equal journeys, and so of equal shares (most variants have one
    journey): one %-format per run writes those once, with only each row's rank and median
    as values, and a split; a format call per row takes twice as long."""
    journeys, shares = table["journeys"], table["share"]
    if len(journeys) == 0:
        return []
    bounds = np.flatnonzero(np.r_[True, journeys[1:] != journeys[:-1], True]).tolist()
    ranks, medians = table["rank"].tolist(), table["median_duration_hours"].tolist()
    runs = []
    for start, stop in itertools.pairwise(bounds):
        row = f'"\n%d,{int(journeys[start])},{float(shares[start]):.6g},%.6g,\0'
        values: list[object] = [None] * (2 * (stop - start))
        values[0::2], values[1::2] = ranks[start:stop], medians[start:stop]
        runs.append(row * (stop - start) % tuple(values))
    rows = "".join(runs).split("\0")
    return [rows[0][2:], *rows[1:-1]]


def analyze(
    log: EventLog,
    settings: AnalysisConfig,
    *,
    source: str,
    task: TaskConfig | None = None,
    as_of: Any = None,
    kpis: KpiConfig | None = None,
    parallel: bool | None = None,
) -> Analysis:
    """The analysis of `log` as it stood at `as_of` (all of it by default); with a task and
    `kpis`, critical steps also show their effect on CSAT, NPS and resolution time.

    With `parallel` (by default on a large log, `features.parallel.worth_a_child`), the tables
    of steps and pairs of steps (transitions, dwell, durations, step matrices, first steps)
    come from a second process while this one makes the others: the same tables, sooner on a
    machine with a second core. Those tables are small; variants.csv, tens of megabytes on a large
    log, stays in this process rather than crossing from the other.
    """
    seen = log.until(as_of) if as_of is not None else log
    if parallel is None:
        parallel = worth_a_child(seen.n_events)
    with InChild(_step_tables, seen, settings, fork=parallel) as step_tables:
        tables = _sequence_tables(seen, settings)
        critical = _critical(log, settings, task, as_of, kpis) if task is not None else None
        if parallel:
            # Writing the analysis imports Jinja next (about 20 ms): here, it takes the
            # time this process would otherwise wait for the other, when it waits.
            importlib.import_module("journeyguard.features.analysis.report")
        steps = step_tables.result()
    bottlenecks = steps.pop("bottlenecks")  # analysis.json keeps its order: durations first
    durations, first_steps = steps.pop("durations"), steps.pop("first_steps")
    summary = {
        "meta": _meta(seen, source, task, as_of) | {"variants": tables["variant_count"]},
        **steps,
        "durations": durations,
        "bottlenecks": bottlenecks,
        "first_steps": first_steps,
        "variants": tables["variants"],
        "funnels": tables["funnels"],
        "critical": critical,
    }
    return Analysis(summary, tables["variants_csv_parts"])


def _step_tables(log: EventLog, settings: AnalysisConfig) -> dict[str, Any]:
    """Transitions, step matrices, bottlenecks, durations and first steps, JSON-ready."""
    # The tables without gaps first, so that their arrays and the gaps' are never all alive.
    matrix = _matrix(paths.step_matrix(log, settings.positions))
    transitions, dwell = paths.transitions_and_dwell(log)
    starts, ends = paths.start_and_end_steps(log)
    slow = paths.bottlenecks(transitions, dwell, TOP_TRANSITIONS_IN_BOTTLENECKS)
    return {
        "transitions": records({k: v for k, v in transitions.items() if k != "total_hours"}),
        "start_steps": records(starts),
        "end_steps": records(ends),
        "step_matrix": matrix,
        "anchored_step_matrix": _anchored(log, settings),
        "bottlenecks": {kind: records(table) for kind, table in slow.items()},
        "durations": {
            "steps": records(paths.step_durations(log)),
            "journey": clean(paths.journey_lengths(log)),
        },
        "first_steps": {part: records(table) for part, table in paths.first_steps(log).items()},
    }


def _sequence_tables(log: EventLog, settings: AnalysisConfig) -> dict[str, Any]:
    """The variants and funnels, JSON-ready, and variants.csv (UTF-8)."""
    variants = paths.variants(log)
    top_variants = _top_variants(log, variants)
    return {
        "variant_count": len(variants["rank"]),
        "variants": records(top_variants),
        "funnels": [
            {"name": name, "stages": records(paths.funnel(log, list(steps)))}
            for name, steps in _funnels(settings, top_variants).items()
        ],
        "variants_csv_parts": _variants_csv_parts(log, variants),
    }


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
    from journeyguard.features.analysis.critical import critical_path_analysis

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
