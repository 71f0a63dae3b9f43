"""Benchmark: `journeyguard features` and `PathFeatures` fit / transform as the log grows.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/features_speed.py [--customers 100000,300000,1000000] [--rounds 3]
                                             [--as-of 2025-09-01] [--fresh-data]
                                             [--skip-command]

For each size (100,000 customers is about 1.6M events, 1,000,000 about 16M):

1. Simulates the log with `journeyguard simulate` into bench/results/data/ when missing (or
   when the file lacks the `segment` / `country` attributes that the current simulator writes).
2. Writes a config whose source is that file with `segment` and `country` as attributes.
3. Runs, alternated round by round, each as a whole fresh process under bench/measure.py
   (wall time and peak RSS from wait4):
   - the command: `journeyguard features --config C --as-of T --out features-N.parquet`;
   - the core: this file with `--core`, which reads the log, builds the snapshots at T and
     times `PathFeatures().fit`, `.transform` of every snapshot and `.transform` of one
     journey (repeated, median), printing them as one JSON line.
4. Prints the table, the growth of time against events, and the issue's targets for the
   1.6M-event log (under 3 s, under 2 GB peak) as "met" / "NOT met".

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

from journeyguard.features.eventlog.frames import read_log

COMMAND = "command"
CORE = "core"
STORE = "store"  # the command with the warehouse export as the source, its store current
BEFORE = "before"  # --journeyguard-before's command on the export (validated on every run)
TARGET_CUSTOMERS = 100_000  # about 1.6M events: the size the targets are about
TARGET_SECONDS = 3.0
TARGET_BYTES = 2_000_000_000  # 2 GB = 1907 MiB


@dataclass
class Run(common.SizedRun):
    """One measured whole-process run of the command or of the core, on one size; `line` is the
    core's JSON line."""

    line: dict[str, Any] | None = None
    stdout_tail: str = ""


# -- the core, in its own process ---------------------------------------------------------------


def core(events: Path, as_of: str, repeats: int) -> None:
    """Reads the log, builds the snapshots at `as_of`, times fit, transform and the transform of
    one journey; prints one JSON line. Runs in a fresh process, so measure.py's peak RSS is
    this work's alone."""
    began = time.perf_counter()
    import numpy as np
    import pandas as pd

    from journeyguard.features.eventlog.log import Snapshots
    from journeyguard.features.transformer import PathFeatures

    seconds: dict[str, float] = {"imports_s": time.perf_counter() - began}

    start = time.perf_counter()
    log = read_log(events)
    seconds["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    snapshots = Snapshots.at(log, pd.Timestamp(as_of, tz="UTC"))
    seconds["snapshots_s"] = time.perf_counter() - start

    start = time.perf_counter()
    transformer = PathFeatures().fit(snapshots)
    seconds["fit_s"] = time.perf_counter() - start

    start = time.perf_counter()
    matrix = transformer.transform(snapshots)
    seconds["transform_s"] = time.perf_counter() - start

    one = snapshots.subset(np.arange(len(snapshots)) == 0)
    single_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        row = transformer.transform(one)
        single_ms.append((time.perf_counter() - start) * 1000)

    # The same journey in a log of its own, as a service holding one customer's events has it.
    alone_log = log.select_journeys(np.arange(log.n_journeys) == one.journeys[0])
    alone = Snapshots.at(alone_log, pd.Timestamp(as_of, tz="UTC"))
    alone_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        transformer.transform(alone)
        alone_ms.append((time.perf_counter() - start) * 1000)

    print(
        json.dumps(
            {
                "events": log.n_events,
                "journeys": log.n_journeys,
                "snapshots": len(snapshots),
                "features": matrix.shape[1],
                "single_rows": len(row),
                **{key: round(value, 4) for key, value in seconds.items()},
                "single_ms_median": round(statistics.median(single_ms), 3),
                "single_ms_min": round(min(single_ms), 3),
                "single_ms_max": round(max(single_ms), 3),
                "alone_ms_median": round(statistics.median(alone_ms), 3),
                "single_repeats": repeats,
            }
        ),
        flush=True,
    )


# -- set-up -------------------------------------------------------------------------------------


def customer_list(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers: {text!r}") from error
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected positive customer counts: {text!r}")
    return sorted(set(sizes))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--customers",
        type=customer_list,
        default=customer_list("100000,300000,1000000"),
        help="comma list of simulated customers (default 100000,300000,1000000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of timed runs per size")
    parser.add_argument("--as-of", default="2025-09-01", help="the snapshot time (UTC)")
    parser.add_argument(
        "--repeats", type=int, default=50, help="transforms of one journey (median reported)"
    )
    parser.add_argument(
        "--fresh-data", action="store_true", help="simulate the logs again even if they exist"
    )
    parser.add_argument(
        "--skip-command", action="store_true", help="time only the core, not the command"
    )
    common.add_location_options(parser)
    parser.add_argument("--core", type=Path, metavar="EVENTS", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def event_count(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


# -- running ------------------------------------------------------------------------------------


def commands(args: argparse.Namespace, events: Path, customers: int) -> dict[str, list[str]]:
    results = args.results
    config_path = results / "configs" / f"features-{customers}.toml"
    config = common.write_config(events, config_path, common.ATTRIBUTES)
    out = results / f"features-{customers}.parquet"
    command = [str(args.journeyguard), "features", "--config", str(config)]
    command += ["--as-of", args.as_of, "--out", str(out)]
    core_command = [sys.executable, str(Path(__file__).resolve()), "--core", str(events)]
    core_command += ["--as-of", args.as_of, "--repeats", str(args.repeats)]
    chosen = {CORE: core_command}
    if args.skip_command:
        return chosen
    export = common.warehouse_export(events, events.with_name(f"export-{customers}-seed1.parquet"))
    on_export = {STORE: args.journeyguard}
    if args.journeyguard_before is not None:
        on_export[BEFORE] = args.journeyguard_before
    for kind, program in on_export.items():
        work = results / "features-work" / f"{kind}-{customers}"
        extra = f"[output]\ndir = {json.dumps(str(work))}\n"
        export_config = common.write_config(
            export,
            results / "configs" / f"features-{kind}-{customers}.toml",
            common.ATTRIBUTES,
            extra,
        )
        chosen[kind] = [
            str(program),
            "features",
            "--config",
            str(export_config),
            "--as-of",
            args.as_of,
            "--out",
            str(results / f"features-{kind}-{customers}.parquet"),
        ]
    return {COMMAND: command, **chosen}


def measured(kind: str, customers: int, command: list[str], log: Path, round_: int) -> Run:
    """Runs `command` under bench/measure.py; stderr goes to `log`, stdout is kept."""
    done = common.run_measured(kind, command, log)
    line = common.last_json_line(done.stdout)
    return Run(kind, customers, round_, **done.figures(), line=line, stdout_tail=done.stdout_tail)


def run_rounds(logs: Path, customers: int, tools: dict[str, list[str]], rounds: int) -> list[Run]:
    """Each round runs each measurement once, the order rotating from round to round."""
    runs = []
    for round_, name in common.rotation(list(tools), rounds):
        log = logs / f"features-{customers}-round{round_}-{name}.log"
        run = measured(name, customers, tools[name], log, round_)
        runs.append(run)
        detail = ""
        if name == CORE and run.line:
            line = run.line
            detail = (
                f"   (fit {line['fit_s']:.2f} s, transform {line['transform_s']:.2f} s, "
                f"one journey {line['single_ms_median']:.2f} ms, "
                f"alone {line['alone_ms_median']:.2f} ms)"
            )
        print(
            f"  {customers:>9,} round {round_}  {name:<8}{run.wall_s:8.2f} s"
            f"{run.mib:8.0f} MiB{common.failure_note(run.returncode)}{detail}",
            flush=True,
        )
    return runs


# -- the table ----------------------------------------------------------------------------------


def summarize(runs: list[Run], events: int) -> dict[str, Any]:
    """One size: the command's and the core's median / min / max wall time and peak RSS, the
    core's in-process medians."""
    row: dict[str, Any] = {"events": events}
    for kind in (COMMAND, CORE):
        ok = [run for run in runs if run.kind == kind and run.returncode == 0]
        if not ok:
            continue
        walls, peaks = [run.wall_s for run in ok], [run.mib for run in ok]
        row[kind] = {"runs": len(ok), **common.time_and_peak(walls, peaks)}
    lines = [run.line for run in runs if run.kind == CORE and run.returncode == 0 and run.line]
    if lines:
        keys = [k for k, v in lines[0].items() if k.endswith(("_s", "_ms_median"))]
        row["core_steps"] = {key: statistics.median(line[key] for line in lines) for key in keys}
        row["core_steps"]["fit_transform_s"] = statistics.median(
            line["fit_s"] + line["transform_s"] for line in lines
        )
        row["events"] = lines[-1]["events"]
        row["snapshots"] = lines[-1]["snapshots"]
        row["features"] = lines[-1]["features"]
    if "snapshots" not in row:  # the command prints "N journeys x F features -> out"
        for run in runs:
            if run.kind == COMMAND and run.returncode == 0 and " journeys x " in run.stdout_tail:
                head = run.stdout_tail.splitlines()[-1].split(" journeys x ")
                row["snapshots"] = int(head[0].replace(",", ""))
                break
    return row


def fit_transform(row: dict[str, Any]) -> float | None:
    steps = row.get("core_steps")
    return steps["fit_transform_s"] if steps else None


def print_table(summary: dict[int, dict[str, Any]], as_of: str) -> None:
    print(f"\nFeatures at {as_of}: whole processes (wall time from start to exit, peak RSS)")
    header = (
        f"{'customers':>10}{'events':>12}{'journeys':>10}{'cmd med s':>10}{'min':>7}{'max':>7}"
        f"{'cmd MiB':>9}{'fit s':>8}{'trans s':>8}{'one ms':>8}{'alone ms':>9}{'core s':>8}"
        f"{'core MiB':>9}"
    )
    print(header)
    for customers, row in summary.items():
        command, core_run, steps = row.get(COMMAND), row.get(CORE), row.get("core_steps")
        cells = [
            f"{customers:>10,}",
            f"{row['events']:>12,}",
            common.cell(row.get("snapshots"), 10, ","),
        ]
        if command:
            cells += [
                f"{command['median_s']:>10.2f}",
                f"{command['min_s']:>7.2f}",
                f"{command['max_s']:>7.2f}",
                f"{command['peak_mib']:>9.0f}",
            ]
        else:
            cells += [f"{'-':>10}", f"{'-':>7}", f"{'-':>7}", f"{'-':>9}"]
        if steps:
            cells += [
                f"{steps['fit_s']:>8.2f}",
                f"{steps['transform_s']:>8.2f}",
                f"{steps['single_ms_median']:>8.2f}",
                f"{steps.get('alone_ms_median', float('nan')):>9.2f}",
            ]
        else:
            cells += [f"{'-':>8}"] * 3 + [f"{'-':>9}"]
        if core_run:
            cells += [f"{core_run['median_s']:>8.2f}", f"{core_run['peak_mib']:>9.0f}"]
        else:
            cells += [f"{'-':>8}", f"{'-':>9}"]
        print("".join(cells))
    print(
        "  cmd: `journeyguard features` (start-up, read, snapshots, fit, transform, write);"
        " fit / trans: PathFeatures on every active journey;\n"
        "  one ms: transform of one journey over the whole log (median); alone ms: the same"
        " journey in a log of its own;\n  core s / MiB: the whole --core process."
    )
    for customers, row in summary.items():
        steps = row.get("core_steps")
        if steps:
            shown = ", ".join(
                f"{key.removesuffix('_s')} {value:.2f}"
                for key, value in steps.items()
                if key.endswith("_s") and key != "fit_transform_s"
            )
            print(f"  core steps at {customers:,} customers, median s: {shown}")
    print_growth(summary)
    print_targets(summary)


def print_growth(summary: dict[int, dict[str, Any]]) -> None:
    """Time and memory against events, relative to the smallest size."""
    sizes = list(summary)
    if len(sizes) < 2:
        return
    base = summary[sizes[0]]
    print(f"\nGrowth relative to {sizes[0]:,} customers ({base['events']:,} events)")
    measures = (
        ("command time", lambda row: _median(row, COMMAND)),
        ("fit+transform time", fit_transform),
        ("command peak", lambda row: _peak(row, COMMAND)),
        ("core peak", lambda row: _peak(row, CORE)),
    )
    for customers in sizes[1:]:
        row = summary[customers]
        parts = []
        for label, measure in measures:
            value, origin = measure(row), measure(base)
            if value is not None and origin:
                parts.append(f"{value / origin:.1f}x {label}")
        ratio = row["events"] / base["events"]
        print(f"  {customers:>9,}: {ratio:.1f}x events -> {', '.join(parts) or 'n/a'}")


def _median(row: dict[str, Any], kind: str) -> float | None:
    return row[kind]["median_s"] if kind in row else None


def _peak(row: dict[str, Any], kind: str) -> float | None:
    return row[kind]["peak_mib"] if kind in row else None


def print_targets(summary: dict[int, dict[str, Any]]) -> None:
    """The issue's targets on the 1.6M-event log, reported (never asserted)."""
    row = summary.get(TARGET_CUSTOMERS)
    if row is None:
        print(f"\ntargets: not measured (they are about {TARGET_CUSTOMERS:,} customers)")
        return
    limit_mib = TARGET_BYTES / 2**20
    print(f"\nTargets on {TARGET_CUSTOMERS:,} customers ({row['events']:,} events)")
    checks = [
        ("command under 3 s (median)", _median(row, COMMAND), TARGET_SECONDS, "s"),
        ("fit + transform under 3 s", fit_transform(row), TARGET_SECONDS, "s"),
        ("command peak under 2 GB", _peak(row, COMMAND), limit_mib, "MiB"),
        ("core process peak under 2 GB", _peak(row, CORE), limit_mib, "MiB"),
    ]
    for label, value, limit, unit in checks:
        if value is None:
            print(f"  {label}: not measured")
            continue
        shown = f"{value:.2f} s" if unit == "s" else f"{value:.0f} MiB of {limit:.0f}"
        print(f"  {label}: {shown}, {'met' if value < limit else 'NOT met'}")


def print_sources(runs: list[Run], results: Path) -> None:
    """The command on each input: the canonical file, the export's store, the export with the
    code before the store; and whether their features files are equal."""
    import pandas as pd

    print("\nThe command by input (median, min-max s, peak MiB)")
    for customers in dict.fromkeys(run.customers for run in runs):
        base = results / f"features-{customers}.parquet"
        for kind in (COMMAND, STORE, BEFORE):
            ok = [
                r for r in runs if r.kind == kind and r.customers == customers and not r.returncode
            ]
            if not ok:
                continue
            row = common.time_and_peak([r.wall_s for r in ok], [r.mib for r in ok])
            out = base if kind == COMMAND else results / f"features-{kind}-{customers}.parquet"
            same = kind == COMMAND or pd.read_parquet(out).equals(pd.read_parquet(base))
            print(
                f"  {customers:>9,} {kind:<8}{row['median_s']:7.2f} ({row['min_s']:.2f}-"
                f"{row['max_s']:.2f}){row['peak_mib']:8.0f}  "
                f"{'same features' if same else 'DIFFERENT features'}"
            )


def save(args: argparse.Namespace, runs: list[Run], summary: dict[int, dict[str, Any]]) -> Path:
    """Writes everything measured to bench/results/features_speed-*.json."""
    body = {
        "arguments": common.arguments(args, leave_out=("core",)),
        "runs": [run.__dict__ for run in runs],
        "summary": {str(k): v for k, v in summary.items()},
    }
    return common.write_record(args.results, "features_speed", body)


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.core is not None:
        core(args.core, args.as_of, args.repeats)
        return
    common.compile_project(args.journeyguard)
    args.results = args.results.resolve()
    data, logs = args.results / "data", args.results / "logs"

    runs: list[Run] = []
    summary: dict[int, dict[str, Any]] = {}
    for customers in args.customers:
        events = common.ensure_simulated_log(
            args.journeyguard, data, customers, args.seed, args.fresh_data
        )
        tools = commands(args, events, customers)
        if STORE in tools:  # the store the timed runs find current
            common.run_measured(STORE, tools[STORE], logs / f"features-{customers}-ingest.log")
        print(f"{args.rounds} rounds of {', '.join(tools)} on {events.name}", flush=True)
        found = run_rounds(logs, customers, tools, args.rounds)
        runs += found
        summary[customers] = summarize(found, event_count(events))

    print_table(summary, args.as_of)
    print_sources(runs, args.results)
    print(f"\nrecorded in {save(args, runs, summary)}")


if __name__ == "__main__":
    main()
