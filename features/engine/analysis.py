"""Path analysis on Spark: each partition's counts by `features.analysis.paths` (the local
code), merged by summing. Partitions hold disjoint journeys, so counts of events and of
journeys add up exactly: transitions, variants, start and end steps, the step matrix, funnels.

Times do not add up: medians and 95th percentiles of the hours between steps and of variant
durations come from Spark's `percentile_approx` over every gap (one row per event), with
accuracy `TIME_ACCURACY`: the value returned is one of the gaps, whose rank is within
n / TIME_ACCURACY of the exact quantile's rank (n: the group's gaps). Means are exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from journeyguard.features.analysis import paths
from journeyguard.features.config.model import AnalysisConfig
from journeyguard.features.engine.partitions import map_logs
from journeyguard.features.engine.source import SparkLog
from journeyguard.features.eventlog.log import EventLog

TIME_ACCURACY = 10_000
VARIANT_SEPARATOR = " > "
# Rows of one partition's counts: `kind` says which table; `a`, `b` and `position` its keys.
COUNTS_SCHEMA = (
    "kind string, a string, b string, position long, count long, journeys long, hours double"
)
GAP, DURATION = "gap", "duration"  # kinds of the time rows, one per event gap or journey


def spark_path_counts(
    log: SparkLog, settings: AnalysisConfig, funnels: dict[str, list[str]]
) -> dict[str, Any]:
    """Merged path counts of the whole log: transitions, variants, start and end steps, the
    step matrix and the funnels; times as described in the module docstring."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import _parse_datatype_string

    positions = settings.positions

    def counts(part: EventLog) -> pd.DataFrame:
        return partition_counts(part, positions, funnels)

    rows = map_logs(log.events, log.steps, counts, _parse_datatype_string(COUNTS_SCHEMA))
    rows = rows.cache()
    summed = (
        rows.where(~F.col("kind").isin(GAP, DURATION))
        .groupBy("kind", "a", "b", "position")
        .agg(
            F.sum("count").alias("count"),
            F.sum("journeys").alias("journeys"),
            F.sum("hours").alias("hours"),
        )
        .toArrow()
        .to_pandas()
    )
    times = (
        rows.where(F.col("kind").isin(GAP, DURATION))
        .groupBy("kind", "a", "b")
        .agg(F.percentile_approx("hours", [0.5, 0.95], TIME_ACCURACY).alias("q"))
        .toArrow()
        .to_pandas()
    )
    rows.unpersist()
    return merged_tables(summed, times, log.n_journeys)


def partition_counts(log: EventLog, positions: int, funnels: dict[str, list[str]]) -> pd.DataFrame:
    """One partition's counts (summable) and time rows, in `COUNTS_SCHEMA`."""
    parts = []
    gaps = paths.Gaps(log)
    moves = paths.transitions(log, gaps)
    parts.append(
        _rows(
            "transition",
            moves["from"],
            moves["to"],
            moves["count"],
            moves["journeys"],
            moves["total_hours"],
        )
    )
    parts.append(_rows(GAP, log.steps[gaps.steps], log.steps[gaps.next_steps], 1, 0, gaps.hours))
    variant = paths.journey_variants(log)
    first = paths.first_of_each(variant)
    keys = np.asarray(paths.joined_steps(log, first, VARIANT_SEPARATOR), dtype=object)[variant]
    hours = (log.times[log.offsets[1:] - 1] - log.times[log.offsets[:-1]]) / paths.NS_PER_HOUR
    distinct, followers = np.unique(keys.astype(str), return_counts=True)
    parts.append(_rows("variant", distinct, None, followers, followers))
    parts.append(_rows(DURATION, keys, None, 1, 0, hours))
    starts, ends = paths.start_and_end_steps(log)
    parts.append(_rows("start", starts["step"], None, starts["journeys"], starts["journeys"]))
    parts.append(_rows("end", ends["step"], None, ends["journeys"], ends["journeys"]))
    matrix = paths.step_matrix(log, positions)
    counted = np.rint(matrix.shares * matrix.journeys).astype(np.int64)
    rows, columns = np.nonzero(counted)
    parts.append(
        _rows(
            "matrix",
            matrix.rows[rows],
            None,
            counted[rows, columns],
            None,
            None,
            matrix.positions[columns],
        )
    )
    for name, steps in funnels.items():
        if all(step in set(log.steps) for step in steps):
            table = paths.funnel(log, steps)
            parts.append(
                _rows(
                    "funnel",
                    name,
                    table["step"],
                    table["journeys"],
                    table["journeys"],
                    None,
                    np.arange(1, len(steps) + 1),
                )
            )
    parts.append(_rows("journeys", None, None, log.n_journeys, log.n_journeys))
    return pd.concat(parts, ignore_index=True)


def _rows(
    kind: str,
    a: Any,
    b: Any,
    count: Any,
    journeys: Any,
    hours: Any = None,
    position: Any = None,
) -> pd.DataFrame:
    columns = {
        "a": a,
        "b": b,
        "count": count,
        "journeys": journeys,
        "hours": hours,
        "position": position,
    }
    length = max([len(v) for v in columns.values() if np.ndim(v)] or [1])
    return pd.DataFrame(columns, index=pd.RangeIndex(length)).assign(kind=kind)


def merged_tables(summed: pd.DataFrame, times: pd.DataFrame, journeys: int) -> dict[str, Any]:
    """The merged tables, ranked as `analyze` ranks them (most frequent first, then by name)."""
    quantile = {
        (r.kind, r.a, r.b if isinstance(r.b, str) else None): r.q for r in times.itertuples()
    }
    of = {kind: group for kind, group in summed.groupby("kind")}
    moves = of["transition"].copy()
    out_total = moves.groupby("a")["count"].transform("sum")
    pairs = list(zip(moves["a"], moves["b"], strict=True))
    moves = moves.assign(
        probability=moves["count"] / out_total,
        median_hours=[quantile[(GAP, a, b)][0] for a, b in pairs],
        p95_hours=[quantile[(GAP, a, b)][1] for a, b in pairs],
        mean_hours=moves["hours"] / moves["count"],
    ).rename(columns={"a": "from", "b": "to"})
    moves = moves.sort_values(["count", "from", "to"], ascending=[False, True, True])
    variants = of["variant"].drop(columns="journeys")
    variants = variants.rename(columns={"a": "steps", "count": "journeys"})
    variants = variants.assign(
        share=variants["journeys"] / max(journeys, 1),
        median_duration_hours=[quantile[(DURATION, s, None)][0] for s in variants["steps"]],
    ).sort_values(["journeys", "steps"], ascending=[False, True])
    return {
        "journeys": journeys,
        "transitions": moves[
            [
                "from",
                "to",
                "count",
                "journeys",
                "probability",
                "median_hours",
                "p95_hours",
                "mean_hours",
            ]
        ].reset_index(drop=True),
        "variants": variants[["steps", "journeys", "share", "median_duration_hours"]].reset_index(
            drop=True
        ),
        "start_steps": _steps(of.get("start"), journeys),
        "end_steps": _steps(of.get("end"), journeys),
        "step_matrix": _matrix(of.get("matrix"), journeys),
        "funnels": _funnels(of.get("funnel")),
    }


def _steps(table: pd.DataFrame | None, journeys: int) -> pd.DataFrame:
    if table is None:
        return pd.DataFrame({"step": [], "journeys": [], "share": []})
    table = table.rename(columns={"a": "step"}).sort_values(
        ["journeys", "step"], ascending=[False, True]
    )
    return table.assign(share=table["journeys"] / max(journeys, 1))[["step", "journeys", "share"]]


def _matrix(table: pd.DataFrame | None, journeys: int) -> pd.DataFrame:
    if table is None:
        return pd.DataFrame({"step": [], "position": [], "journeys": [], "share": []})
    table = table.drop(columns="journeys").rename(columns={"a": "step", "count": "journeys"})
    table = table.assign(share=table["journeys"] / max(journeys, 1))
    return table.sort_values(["position", "step"])[["step", "position", "journeys", "share"]]


def _funnels(table: pd.DataFrame | None) -> dict[str, list[dict[str, Any]]]:
    if table is None:
        return {}
    funnels = {}
    for name, stages in table.sort_values("position").groupby("a"):
        reaching = stages["journeys"].to_numpy()
        previous = np.r_[reaching[:1], reaching[:-1]]
        funnels[str(name)] = [
            {"step": step, "journeys": int(n), "conversion": float(n / p) if p else 0.0}
            for step, n, p in zip(stages["b"], reaching, previous, strict=True)
        ]
    return funnels


def write_path_counts(tables: dict[str, Any], out: Path) -> list[Path]:
    """transitions.parquet, variants.parquet and path-counts.json (the small tables) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("transitions", "variants"):
        path = out / f"{name}.parquet"
        tables[name].to_parquet(path, index=False)
        written.append(path)
    small = {
        "journeys": tables["journeys"],
        "time_quantiles": f"percentile_approx, accuracy {TIME_ACCURACY}",
        **{
            name: tables[name].to_dict(orient="records")
            for name in ("start_steps", "end_steps", "step_matrix")
        },
        "funnels": tables["funnels"],
    }
    path = out / "path-counts.json"
    path.write_text(json.dumps(small, indent=2, default=_plain), encoding="utf-8")
    return [*written, path]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)
