"""Benchmark: `journeyguard score` of every journey at one `as_of`, churn and escalation.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/score_speed.py [--customers 100000] [--train-customers 20000]
                                          [--rounds 3] [--as-of 2025-12-31T23:59:52Z]
                                          [--journeyguard-before PATH]

1. Simulates the log to score (`--customers`, about 1.6M events at 100,000) and a smaller one
   to train on (`--train-customers`) with `journeyguard simulate` into bench/results/data/,
   once.
2. Writes two configs with configs/simulator.toml's tasks: the small log's, to train, and the
   large log's, to score; each with an output folder of its own under bench/results/.
3. Trains a champion of each task on the small log into an MLflow store of its own
   (bench/results/score-mlruns), once: untimed, and shared by every program timed.
4. Runs `journeyguard score --config C --task T --as-of A --out F` for each task, and with
   `--journeyguard-before` the same command of another checkout beside it, alternated round by
   round, each a whole fresh process under bench/measure.py (wall time, CPU time, peak RSS).
5. Prints the median, min and max wall time, the median CPU time and the peak RSS of each, and
   whether each program's risk list equals the first program's: the same journeys in the same
   order, risks and contributions within 1e-9, the same reasons, and the largest relative
   difference of `expected_value` (the value models are refitted on the log at `as_of`).

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

TASKS = ("churn", "escalation")
TARGET_SECONDS = 2.0  # issue 17: the whole command on the 1.6M-event log
SIMULATOR = common.ROOT / "configs" / "simulator.toml"
AFTER = "journeyguard"
BEFORE = "before"


@dataclass
class Run(common.SizedRun):
    """One measured whole-process `score` of one task by one program."""

    task: str = ""
    stdout_tail: str = ""


# -- set-up -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="the log scored")
    parser.add_argument(
        "--train-customers", type=int, default=20_000, help="the log the champions train on"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulation seed of both logs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of timed runs")
    parser.add_argument("--as-of", default="2025-12-31T23:59:52Z", help="the scoring time")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma list of tasks")
    common.add_location_options(parser)
    return parser.parse_args(argv)


def write_config(events: Path, out: Path, config: Path) -> Path:
    """configs/simulator.toml with `events` as its source and `out` as its output folder."""
    text = SIMULATOR.read_text()
    # A JSON string is a valid TOML basic string.
    text = re.sub(r'(?m)^path = ".*"$', lambda _: f"path = {_quoted(events)}", text, count=1)
    text = re.sub(r'(?m)^dir = ".*"$', lambda _: f"dir = {_quoted(out)}", text, count=1)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    return config


def _quoted(path: Path) -> str:
    return json.dumps(str(path.resolve()))


def ensure_champions(
    args: argparse.Namespace, config: Path, tasks: list[str], env: dict[str, str]
) -> None:
    """Trains a champion of each task on the small log unless the store has one (untimed)."""
    marker = args.results / "score-mlruns" / "trained.txt"
    done = set(marker.read_text().split()) if marker.exists() else set()
    for task in tasks:
        if task in done:
            continue
        print(f"training the {task} champion on {config.name} (once)", flush=True)
        command = [str(args.journeyguard), "train", "--config", str(config), "--task", task]
        log = args.results / "logs" / f"score-train-{task}.log"
        if common.run_measured(f"train {task}", command, log, env).returncode != 0:
            sys.exit(f"training {task} failed: see {log}")
        done.add(task)
        marker.write_text("\n".join(sorted(done)))


# -- running ------------------------------------------------------------------------------------


def out_file(results: Path, kind: str, task: str) -> Path:
    return results / f"score-{kind}-{task}.parquet"


def run_rounds(
    args: argparse.Namespace,
    programs: dict[str, Path],
    config: Path,
    tasks: list[str],
    env: dict[str, str],
) -> list[Run]:
    """Each round scores each task with each program once, the order rotating by round."""
    pairs = [f"{kind}:{task}" for task in tasks for kind in programs]
    runs = []
    for round_, pair in common.rotation(pairs, args.rounds):
        kind, task = pair.split(":")
        command = [str(programs[kind]), "score", "--config", str(config), "--task", task]
        command += ["--as-of", args.as_of, "--out", str(out_file(args.results, kind, task))]
        log = args.results / "logs" / f"score-round{round_}-{kind}-{task}.log"
        done = common.run_measured(f"{kind} {task}", command, log, env)
        run = Run(kind, args.customers, round_, **done.figures(), task=task)
        run.stdout_tail = done.stdout_tail
        runs.append(run)
        print(
            f"  round {round_}  {task:<11}{kind:<13}{run.wall_s:7.2f} s{run.cpu_s:7.2f} CPU s"
            f"{run.mib:7.0f} MiB{common.failure_note(run.returncode)}",
            flush=True,
        )
    return runs


# -- the table and the answers ------------------------------------------------------------------


def summarize(runs: list[Run], programs: dict[str, Path], tasks: list[str]) -> dict[str, Any]:
    """Per task and program: median / min / max wall time, median CPU time, peak MiB."""
    summary: dict[str, Any] = {}
    for task in tasks:
        for kind in programs:
            ok = [r for r in runs if r.task == task and r.kind == kind and r.returncode == 0]
            if ok:
                row = common.time_and_peak([r.wall_s for r in ok], [r.mib for r in ok])
                row["cpu_s"] = statistics.median(r.cpu_s for r in ok)
                row["runs"] = len(ok)
                summary[f"{task} {kind}"] = row
    return summary


def compare(results: Path, task: str, kind: str, base: str) -> str:
    """How program `kind`'s risk list of `task` compares with program `base`'s."""
    import numpy as np
    import pandas as pd

    ours, theirs = (pd.read_parquet(out_file(results, k, task)) for k in (kind, base))
    if list(ours.columns) != list(theirs.columns) or len(ours) != len(theirs):
        return f"DIFFERENT shape ({len(ours):,} against {len(theirs):,} rows)"
    if not ours["customer_id"].equals(theirs["customer_id"]):
        return "DIFFERENT journeys or order"
    numbers = [c for c in ours.columns if c.startswith(("risk", "contribution_"))]
    worst = max(
        float(np.nanmax(np.abs(ours[c].to_numpy() - theirs[c].to_numpy()), initial=0.0))
        for c in numbers
    )
    texts = [c for c in ours.columns if c.startswith(("reason_", "band"))]
    same_texts = all(ours[c].equals(theirs[c]) for c in texts)
    value = ours["expected_value"].to_numpy()
    other = theirs["expected_value"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        drift = np.nanmax(np.abs(value / other - 1), initial=0.0)
    verdict = "same answers" if worst <= 1e-9 and same_texts else "DIFFERENT answers"
    return (
        f"{verdict}: risks and contributions within {worst:.1e}, reasons and bands "
        f"{'equal' if same_texts else 'DIFFERENT'}, expected_value within {drift:.1e} (relative)"
    )


def print_table(
    args: argparse.Namespace, summary: dict[str, Any], programs: dict[str, Path], tasks: list[str]
) -> None:
    print(f"\n`journeyguard score` at {args.as_of}, {args.rounds} rounds (whole processes)")
    print(f"{'task':<12}{'program':<14}{'median s':>9}{'min':>7}{'max':>7}{'CPU s':>7}{'MiB':>6}")
    for key, row in summary.items():
        task, kind = key.split(" ")
        print(
            f"{task:<12}{kind:<14}{row['median_s']:>9.2f}{row['min_s']:>7.2f}{row['max_s']:>7.2f}"
            f"{row['cpu_s']:>7.2f}{row['peak_mib']:>6.0f}"
        )
    first = next(iter(programs))
    for task in tasks:
        for kind in list(programs)[1:]:
            print(f"  {task}, {kind} against {first}: {compare(args.results, task, kind, first)}")
        row = summary.get(f"{task} {first}")
        if row:
            met = "met" if row["median_s"] < TARGET_SECONDS else "NOT met"
            print(f"  {task}: under {TARGET_SECONDS:g} s (median wall): {met}")


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    common.compile_project(args.journeyguard)
    args.results = args.results.resolve()
    tasks = [task for task in args.tasks.split(",") if task]
    data = args.results / "data"
    events = common.ensure_simulated_log(args.journeyguard, data, args.customers, args.seed, False)
    small = common.ensure_simulated_log(
        args.journeyguard, data, args.train_customers, args.seed, False
    )
    store = args.results / "score-mlruns"
    (store / "artifacts").mkdir(parents=True, exist_ok=True)
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"}
    configs = args.results / "configs"
    train_config = write_config(
        small, args.results / "score-train-out", configs / "score-train.toml"
    )
    config = write_config(events, args.results / "score-out", configs / "score.toml")
    ensure_champions(args, train_config, tasks, env)

    programs = {AFTER: args.journeyguard}
    if args.journeyguard_before is not None:
        programs[BEFORE] = args.journeyguard_before
    print(f"{args.rounds} rounds of {', '.join(programs)} x {', '.join(tasks)} on {events.name}")
    runs = run_rounds(args, programs, config, tasks, env)
    summary = summarize(runs, programs, tasks)
    print_table(args, summary, programs, tasks)
    body = {
        "arguments": common.arguments(args),
        "code": common.code_state(),
        "runs": [run.__dict__ for run in runs],
        "summary": summary,
        "load_average": os.getloadavg(),
    }
    print(f"\nrecorded in {common.write_record(args.results, 'score_speed', body)}")


if __name__ == "__main__":
    main()
