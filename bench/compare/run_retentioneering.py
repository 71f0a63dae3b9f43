"""The retentioneering side of bench/analyze_speed.py: one whole process over one Parquet log.

Runs in bench/.venv-compare:

    bench/.venv-compare/bin/python bench/compare/run_retentioneering.py EVENTS.parquet \
        [--max-steps 10] [--export OUT.json]

Reads the canonical columns customer_id (the path), event and timestamp, builds an
`Eventstream`, then computes `transition_graph_data` as counts and as median times and
`step_matrix_data`, and prints one JSON line (the last line of stdout) with the time of each
step and what it computed. retentioneering adds synthetic path_start / path_end events; the
transition counts reported and exported leave their pairs out, so they are comparable with a
directly-follows graph. Its usage tracking is turned off (RETENTIONEERING_NO_TRACK).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = ["customer_id", "timestamp", "event"]
SCHEMA = {"path_cols": ["customer_id"], "event_col": "event", "timestamp_col": "timestamp"}
SYNTHETIC = ["path_start", "path_end"]


class Stopwatch:
    """Seconds per named step, in the order the steps ran."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.steps[name] = round(now - self._last, 4)
        self._last = now


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=Path, help="the Parquet event log")
    parser.add_argument("--max-steps", type=int, default=10, help="step matrix columns")
    parser.add_argument("--export", type=Path, help="write transition counts here")
    return parser.parse_args(argv)


def run(path: Path, max_steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runs the retentioneering calls; returns the summary line and the full results."""
    os.environ["RETENTIONEERING_NO_TRACK"] = "1"
    watch = Stopwatch()
    import pandas as pd
    import retentioneering
    from retentioneering import Eventstream

    watch.lap("import")
    frame = pd.read_parquet(path, columns=COLUMNS)
    watch.lap("read_parquet")
    stream = Eventstream(frame, schema=SCHEMA)
    watch.lap("Eventstream")
    counts = stream.transition_graph_data(edge_weight="count")
    watch.lap("transition_graph_data(count)")
    medians = stream.transition_graph_data(edge_weight="time_median")
    watch.lap("transition_graph_data(time_median)")
    steps = stream.step_matrix_data(max_steps=max_steps)
    watch.lap("step_matrix_data")

    real = counts.drop(index=SYNTHETIC, columns=SYNTHETIC, errors="ignore")
    summary = {
        "tool": "retentioneering",
        "version": retentioneering.__version__,
        "pandas": pd.__version__,
        "source": str(path),
        "events": len(frame),
        "journeys": int(frame["customer_id"].nunique()),
        "steps_s": watch.steps,
        "computed": {
            "transitions": int(real.to_numpy().sum()),
            "pairs": int((real.to_numpy() > 0).sum()),
            "transitions_with_synthetic": int(counts.to_numpy().sum()),
            "median_cells": int(medians.notna().to_numpy().sum()),
            "step_matrix_shape": list(steps.shape),
        },
    }
    return summary, {"counts": real, "medians": medians}


def export(summary: dict[str, Any], results: dict[str, Any], out: Path) -> None:
    """Writes transitions [from, to, count, median_seconds] (median null when missing)."""
    import pandas as pd

    counts, medians = results["counts"], results["medians"]
    pairs = counts.stack()
    transitions = []
    for (a, b), count in sorted(pairs[pairs > 0].items()):
        median = medians.at[a, b]
        seconds = None if pd.isna(median) else float(median.total_seconds())
        transitions.append([str(a), str(b), int(count), seconds])
    body = {
        "tool": "retentioneering",
        "version": summary["version"],
        "source": summary["source"],
        "events": summary["events"],
        "journeys": summary["journeys"],
        "transitions": transitions,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    summary, results = run(args.events, args.max_steps)
    if args.export is not None:
        export(summary, results, args.export)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
