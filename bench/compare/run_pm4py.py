"""The pm4py side of bench/analyze_speed.py: one whole process over one Parquet event log.

Runs in bench/.venv-compare (pm4py is AGPL-3.0 and never a project dependency):

    bench/.venv-compare/bin/python bench/compare/run_pm4py.py EVENTS.parquet [--export OUT.json]

Reads the canonical columns customer_id (the case), event (the activity) and timestamp, then
runs `format_dataframe`, `discover_dfg`, `discover_performance_dfg` and `get_variants`, and
prints one JSON line (the last line of stdout) with the time of each step and what it computed.
`--export` also writes the directly-follows counts, median times and variant counts for the
equality check; writing it is not part of the timed steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = ["customer_id", "timestamp", "event"]


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
    parser.add_argument("--export", type=Path, help="write counts for the equality check here")
    return parser.parse_args(argv)


def run(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Runs the pm4py calls; returns the summary line and the full results."""
    watch = Stopwatch()
    import pandas as pd
    import pm4py

    watch.lap("import")
    frame = pd.read_parquet(path, columns=COLUMNS)
    watch.lap("read_parquet")
    log = pm4py.format_dataframe(
        frame, case_id="customer_id", activity_key="event", timestamp_key="timestamp"
    )
    watch.lap("format_dataframe")
    dfg, starts, ends = pm4py.discover_dfg(log)
    watch.lap("discover_dfg")
    performance, _, _ = pm4py.discover_performance_dfg(log)
    watch.lap("discover_performance_dfg")
    variants = pm4py.get_variants(log)
    watch.lap("get_variants")

    summary = {
        "tool": "pm4py",
        "version": pm4py.__version__,
        "pandas": pd.__version__,
        "source": str(path),
        "events": len(log),
        "journeys": int(log["case:concept:name"].nunique()),
        "steps_s": watch.steps,
        "computed": {
            "transitions": int(sum(dfg.values())),
            "pairs": len(dfg),
            "performance_pairs": len(performance),
            "start_steps": len(starts),
            "end_steps": len(ends),
            "variants": len(variants),
            "variant_journeys": int(sum(variants.values())),
        },
    }
    results = {"dfg": dfg, "performance": performance, "variants": variants}
    return summary, results


def export(summary: dict[str, Any], results: dict[str, Any], out: Path) -> None:
    """Writes counts as plain JSON: transitions [from, to, count, median_seconds], variants."""
    transitions = [
        [a, b, int(count), float(results["performance"][a, b]["median"])]
        for (a, b), count in sorted(results["dfg"].items())
    ]
    variants = sorted(
        ([list(steps), int(count)] for steps, count in results["variants"].items()),
        key=lambda item: (-item[1], item[0]),
    )
    body = {
        "tool": "pm4py",
        "version": summary["version"],
        "source": summary["source"],
        "events": summary["events"],
        "journeys": summary["journeys"],
        "transitions": transitions,
        "variants": variants,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    summary, results = run(args.events)
    if args.export is not None:
        export(summary, results, args.export)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
