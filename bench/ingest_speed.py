"""Benchmark: `journeyguard ingest` of a daily export, from scratch and as a one-day append.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/ingest_speed.py [--customers 100000] [--rounds 3]

The simulated log (bench/common.py) is exported the way a warehouse does it (plain Parquet, text
as strings, rows in random order), its last day in a row group of its own at the end; the same
file without that day is the history. Each round, in fresh processes under bench/measure.py:

1. `ingest --full` of the history (the store as it stood yesterday);
2. the source replaced by the grown file, `ingest` (an append of the day's rows);
3. `ingest --full` of the grown file (what the append saves).

It checks that the appended store equals the one ingested from scratch (log, source rows,
quarantine) and prints the median whole-process and in-process times, the peaks and the ratio.

Then the same three steps in one long-lived process (`--warm-child`), as `journeyguard schedule`
runs its daily ingest: the modules imported once, each step timed alone (`--warm-rounds`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import common

STEPS = ("full history", "append one day", "full grown")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="simulated customers")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three runs")
    parser.add_argument("--warm-rounds", type=int, default=5, help="rounds in one process")
    parser.add_argument("--warm-child", nargs=3, type=Path, help=argparse.SUPPRESS)
    common.add_location_options(parser)
    return parser.parse_args(argv)


def stored(out: Path) -> tuple[Any, Any, str]:
    """The store's log, source rows and quarantine text, to compare two stores."""
    import numpy as np

    from journeyguard.features.sources.generations import read_manifest, read_stored_parts

    parts = read_stored_parts(out / "store", read_manifest(out / "store") or {})
    assert parts is not None
    log, rows = parts.merged()
    return log, np.asarray(rows), (out / "quarantine.csv").read_text()


def same_store(one: tuple, other: tuple) -> list[str]:
    """The parts in which two stores differ (none: equal)."""
    import numpy as np

    (log, rows, quarantine), (log2, rows2, quarantine2) = one, other
    differ = [
        name
        for name in ("journey_ids", "offsets", "steps", "step_codes", "times")
        if not np.array_equal(getattr(log, name), getattr(log2, name))
    ]
    for name, column in log.columns.items():
        theirs = log2.columns.get(name)
        if hasattr(column, "codes"):
            equal = hasattr(theirs, "codes") and np.array_equal(column.codes, theirs.codes)
            equal = equal and np.array_equal(column.categories, theirs.categories)
        else:
            equal = theirs is not None and np.array_equal(column, theirs, equal_nan=True)
        if not equal:
            differ.append(name)
    if not np.array_equal(rows, rows2):
        differ.append("source rows")
    if quarantine != quarantine2:
        differ.append("quarantine")
    return differ


def warm_child(config: Path, history: Path, grown: Path, rounds: int) -> None:
    """The three steps `rounds` times in this one process; prints their times as JSON."""
    import time

    from journeyguard.features.config import load_config
    from journeyguard.features.sources.store import ingest

    settings = load_config(config)
    assert settings.source.path is not None
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    for _ in range(rounds + 1):  # the first round warms the imports, and is not counted
        for step in STEPS:
            if step != "full grown":
                shutil.copyfile(
                    history if step == "full history" else grown, f"{settings.source.path}.new"
                )
                Path(f"{settings.source.path}.new").replace(settings.source.path)
            started = time.perf_counter()
            result = ingest(settings, full=step.startswith("full"))
            times[step].append(time.perf_counter() - started)
            assert result.action == ("ingested" if step.startswith("full") else "appended")
            # A full ingest's result holds the whole log: freed here, not in the next step's time.
            del result
    print(json.dumps({step: values[1:] for step, values in times.items()}))


def run_warm(config: Path, history: Path, grown: Path, rounds: int) -> dict[str, Any]:
    import subprocess

    child = [sys.executable, __file__, "--warm-child", str(config), str(history), str(grown)]
    done = subprocess.run(
        [*child, "--warm-rounds", str(rounds)],
        check=True,
        capture_output=True,
        text=True,
        env=common.child_env(),
    )
    times = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nIn one process, imports done ({rounds} rounds): median s (min-max)")
    medians = {step: statistics.median(values) for step, values in times.items()}
    for step, values in times.items():
        print(f"{step:<16}{medians[step]:>8.3f}  ({min(values):.3f}-{max(values):.3f})")
    ratio = medians["append one day"] / medians["full grown"]
    print(f"append / full ingest of the same file, in one process: {ratio:.3f}; target under 0.10")
    return {"times": times, "ratio": ratio}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.warm_child:
        warm_child(*args.warm_child, args.warm_rounds)
        return
    common.compile_project(args.journeyguard)
    results = args.results.resolve()
    events = common.ensure_simulated_log(
        args.journeyguard, results / "data", args.customers, args.seed, False
    )
    grown = common.warehouse_export(
        events, results / "data" / f"daily-{args.customers}-seed{args.seed}.parquet", 0, True
    )
    history = grown.with_name(f"{grown.stem}.history{grown.suffix}")
    source = results / "data" / f"ingest-source-{args.customers}.parquet"
    out = results / f"ingest-out-{args.customers}"
    config = common.write_config(
        source,
        results / "configs" / f"ingest-{args.customers}.toml",
        common.ATTRIBUTES,
        f'[output]\ndir = "{out}"\n',
    )
    command = [str(args.journeyguard), "ingest", "--config", str(config), "--json"]
    runs: list[dict[str, Any]] = []
    checks = []
    for round_ in range(1, args.rounds + 1):
        for step in STEPS:
            if step != "full grown":  # replaced whole, as an export job does
                shutil.copyfile(history if step == "full history" else grown, f"{source}.new")
                Path(f"{source}.new").replace(source)
            full = ["--full"] if step.startswith("full") else []
            log = (
                results
                / "logs"
                / f"ingest-{args.customers}-round{round_}-{step.replace(' ', '-')}.log"
            )
            done = common.run_measured(step, [*command, *full], log)
            body = common.first_json(done.stdout) or {}
            runs.append({"step": step, "round": round_, **done.figures(), "result": body})
            print(
                f"  round {round_}  {step:<16}{done.wall_s:7.2f} s{body.get('seconds', 0):7.2f} s "
                f"in-process{done.max_rss_kib / 1024:8.0f} MiB  {body.get('action')}: "
                f"{body.get('reason')}{common.failure_note(done.returncode)}",
                flush=True,
            )
            if step == "append one day":
                appended = stored(out)
        checks.append(same_store(appended, stored(out)))
    summary = print_table(runs)
    print(
        "check: the appended store equals the full ingest's: "
        + ("PASS" if not any(checks) else f"FAIL {checks}")
    )
    warm = run_warm(config, history, grown, args.warm_rounds)
    record = common.write_record(
        results,
        f"ingest_speed-{args.customers}",
        {
            "arguments": common.arguments(args),
            "code": common.code_state(),
            "runs": runs,
            "summary": summary,
            "differences": checks,
            "one_process": warm,
        },
    )
    print(f"recorded in {record}")


def print_table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {}
    head = f"\n{'step':<16}{'median s':>10}{'min s':>8}{'max s':>8}"
    print(head + f"{'cpu s':>7}{'in-process s':>14}{'peak MiB':>10}")
    for step in STEPS:
        ok = [run for run in runs if run["step"] == step and run["returncode"] == 0]
        if not ok:
            continue
        row = common.time_and_peak([r["wall_s"] for r in ok], [r["max_rss_kib"] / 1024 for r in ok])
        row["in_process_s"] = statistics.median(r["result"].get("seconds", 0) for r in ok)
        row["cpu_median_s"] = statistics.median(r["cpu_s"] for r in ok)
        summary[step] = row
        print(
            f"{step:<16}{row['median_s']:>10.2f}{row['min_s']:>8.2f}{row['max_s']:>8.2f}"
            f"{row['cpu_median_s']:>7.2f}{row['in_process_s']:>14.2f}{row['peak_mib']:>10.0f}"
        )
    if "append one day" in summary and "full grown" in summary:
        append, full = summary["append one day"], summary["full grown"]
        print(
            f"append / full ingest of the same file: {append['median_s'] / full['median_s']:.2f} "
            f"(whole processes), {append['cpu_median_s'] / full['cpu_median_s']:.2f} (CPU), "
            f"{append['in_process_s'] / full['in_process_s']:.2f} (in-process); target under 0.10"
        )
    return summary


if __name__ == "__main__":
    main()
