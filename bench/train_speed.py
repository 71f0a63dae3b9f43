"""Benchmark: training time and peak memory of `journeyguard train` on about 1M snapshots.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/train_speed.py [--customers 100000] [--rounds 1] [--fresh-data]
                                          [--skip-command]

At 100,000 customers (about 1.6M events) the churn task below gives about 1.17M snapshots, about
700k of them training rows; 20,000 customers is a quick look.

1. Simulates the log with `journeyguard simulate` into bench/results/data/ when missing (or
   when the file lacks the `segment` / `country` text attributes the current simulator writes).
2. Writes bench/results/configs/train-N.toml: that file as the source, `segment` and `country`
   as attributes, and the task `churn` (no `repeat_purchase` within 60 days, a snapshot every
   14 days).
3. Runs, alternated round by round, each as a whole fresh process under bench/measure.py (wall
   time and peak RSS from wait4):
   - the command: `journeyguard train --config C --task churn --json`, with
     MLFLOW_TRACKING_URI pointing at a fresh SQLite store in bench/results/mlruns-bench/ (never
     the project's mlruns/); the metrics come from the JSON it prints;
   - the core: this file with `--core C`, which times with perf_counter the stages of
     `training.train.train_task`: loading the log, `build_dataset`, the training slices (by
     journey with `journey_slices` where train.py has it, else by time with
     `training_slices`), `train_lightgbm`, `train_baseline`, scoring the test rows and the
     BG/NBD comparison, printing them (with the peak RSS reached after each stage) as one JSON
     line.
4. Prints the table: snapshots by split, the command's and the core's time and peak, the core's
   stages and the test metrics of LightGBM, the baseline and BG/NBD.

Timings are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common

COMMAND = "command"
CORE = "core"
TASK = "churn"
TASK_TOML = (  # the task in the config: no repeat purchase within 60 days, every 14 days
    f"[tasks.{TASK}]\n"
    'label = "absent"\n'
    'match = { event = ["repeat_purchase"] }\n'
    'horizon = "60d"\n'
    'snapshots = { every = "14d" }\n'
)
STAGES = ("load", "dataset", "slices", "lightgbm", "baseline", "predict", "bgnbd")


@dataclass
class Run(common.SizedRun):
    """One measured whole-process run of the command or of the core; `result` is the JSON it
    printed."""

    result: dict[str, Any] | None = None
    stdout_tail: str = ""


# -- the core, in its own process ---------------------------------------------------------------


def peak_mib() -> float:
    """This process's peak RSS so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def core(config: Path, task_name: str, seed: int, skip_bgnbd: bool) -> None:
    """The steps of `training.train.train_task`, each timed; prints one JSON line. Runs in a
    fresh process, so measure.py's peak RSS is this work's alone."""
    began = time.perf_counter()
    from scipy.special import expit

    from journeyguard.features.config.reader import load_config
    from journeyguard.features.dataset import build_dataset
    from journeyguard.features.sources.log import load_log
    from journeyguard.training import train as steps
    from journeyguard.training.candidates import fit_bgnbd
    from journeyguard.training.metrics import evaluate
    from journeyguard.training.models import as_matrix, fit_logistic, train_lightgbm

    seconds: dict[str, float] = {"imports": time.perf_counter() - began}
    peaks: dict[str, float] = {"imports": peak_mib()}

    def timed(stage: str, call: Any) -> Any:
        start = time.perf_counter()
        value = call()
        seconds[stage] = time.perf_counter() - start
        peaks[stage] = peak_mib()
        return value

    settings = load_config(config)
    task = settings.task(task_name)
    log = timed("load", lambda: load_log(settings))
    data = timed("dataset", lambda: build_dataset(log, task))
    frame = data.frame
    train, test = (frame["split"] == "train").to_numpy(), (frame["split"] == "test").to_numpy()
    features, y = frame[data.feature_names], frame["y"].to_numpy().astype(int)
    # The training rows' fit / validation / calibration slices, as train_task makes them: by
    # journey (a hash of customer_id) where training.train uses journey_slices, else by time.
    if hasattr(steps, "journey_slices"):
        slicing = "journey_slices"
        customers = frame.loc[train, "customer_id"].to_numpy()
        slices = timed("slices", lambda: steps.journey_slices(customers))
    else:
        slicing = "training_slices"
        slices = timed("slices", lambda: steps.training_slices(data.snapshots.as_of[train]))
    model = timed(
        "lightgbm",
        lambda: train_lightgbm(
            task.name, data.transformer, features[train], y[train], slices, seed
        ),
    )
    baseline = timed("baseline", lambda: fit_logistic(features[train], y[train], slices, seed))
    scores = timed(
        "predict",
        lambda: (
            model.predict_features(features[test]),
            expit(baseline.raw(as_matrix(features[test], data.feature_names))),
        ),
    )
    bgnbd = None
    if not skip_bgnbd and task.label == "absent":

        def bgnbd_metrics() -> dict[str, float] | None:
            fitted, _ = fit_bgnbd(data, train, slices, task)
            if fitted is None:
                return None
            extended = features.assign(**fitted.columns(data.snapshots))
            return steps._bgnbd_metrics(fitted, extended, y, train, test, slices)

        bgnbd = timed("bgnbd", bgnbd_metrics)

    splits = frame["split"].value_counts()
    print(
        json.dumps(
            {
                "events": int(log.n_events),
                "journeys": int(log.n_journeys),
                "snapshots": len(frame),
                "split": {s: int(splits.get(s, 0)) for s in ("train", "gap", "test")},
                "excluded": data.excluded,
                "features": len(data.feature_names),
                "frame_mib": round(frame.memory_usage(deep=True).sum() / 2**20, 1),
                "test_from": data.test_from.isoformat(),
                "slicing": slicing,
                "model_info": model.info,
                "seconds": {k: round(v, 3) for k, v in seconds.items()},
                "peak_mib_after": {k: round(v) for k, v in peaks.items()},
                "metrics": evaluate(y[test], scores[0]),
                "baseline": evaluate(y[test], scores[1]),
                "bgnbd": bgnbd,
            },
            default=float,
        ),
        flush=True,
    )


# -- set-up -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--customers", type=int, default=100_000, help="simulated customers (default 100000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--train-seed", type=int, default=0, help="the models' seed (--seed)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of timed runs (default 1)")
    parser.add_argument(
        "--fresh-data", action="store_true", help="simulate the log again even if it exists"
    )
    parser.add_argument(
        "--skip-command", action="store_true", help="time only the core, not the command"
    )
    parser.add_argument(
        "--skip-bgnbd", action="store_true", help="leave BG/NBD out of the core's stages"
    )
    common.add_location_options(parser)
    parser.add_argument("--core", type=Path, metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.customers < 1 or args.rounds < 1:
        parser.error("--customers and --rounds must be positive")
    return args


def fresh_store(results: Path, customers: int, round_: int) -> str:
    """An empty SQLite MLflow store for one run of the command (artifacts beside it)."""
    root = results / "mlruns-bench" / f"train-{customers}-round{round_}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return f"sqlite:///{root / 'mlflow.db'}"


# -- running ------------------------------------------------------------------------------------


def measured(
    kind: str,
    customers: int,
    command: list[str],
    log: Path,
    round_: int,
    env: dict[str, str] | None = None,
) -> Run:
    """Runs `command` under bench/measure.py; stderr goes to `log`, stdout is kept."""
    done = common.run_measured(kind, command, log, env)
    result = common.first_json(done.stdout)
    return Run(
        kind, customers, round_, **done.figures(), result=result, stdout_tail=done.stdout_tail
    )


def run_rounds(args: argparse.Namespace, events: Path) -> list[Run]:
    """Each round runs each measurement once, the order rotating from round to round."""
    results, customers = args.results, args.customers
    config_path = results / "configs" / f"train-{customers}.toml"
    config = common.write_config(events, config_path, common.ATTRIBUTES, TASK_TOML)
    command = [str(args.journeyguard), "train", "--config", str(config), "--task", TASK]
    command += ["--seed", str(args.train_seed), "--json"]
    core_command = [sys.executable, str(Path(__file__).resolve()), "--core", str(config)]
    core_command += ["--train-seed", str(args.train_seed)]
    core_command += ["--skip-bgnbd"] if args.skip_bgnbd else []
    tools = {CORE: core_command} if args.skip_command else {COMMAND: command, CORE: core_command}
    print(f"{args.rounds} round(s) of {', '.join(tools)} on {events.name}", flush=True)

    runs = []
    for round_, name in common.rotation(list(tools), args.rounds):
        env = None
        if name == COMMAND:
            env = {"MLFLOW_TRACKING_URI": fresh_store(results, customers, round_)}
        log = results / "logs" / f"train-{customers}-round{round_}-{name}.log"
        run = measured(name, customers, tools[name], log, round_, env)
        runs.append(run)
        print(
            f"  {customers:>9,} round {round_}  {name:<8}{run.wall_s:8.1f} s"
            f"{run.mib:8.0f} MiB{common.failure_note(run.returncode)}{stage_text(run)}",
            flush=True,
        )
    return runs


def stage_text(run: Run) -> str:
    if run.kind == CORE and run.result:
        shown = ", ".join(f"{k} {v:.1f}" for k, v in run.result["seconds"].items())
        return f"   ({shown} s)"
    if run.kind == COMMAND and run.result:
        return f"   (v{run.result.get('version')}, roc_auc {run.result['metrics']['roc_auc']:.4f})"
    return ""


# -- the table ----------------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict[str, Any]:
    """The command's and the core's median / min / max time and highest peak; the core's
    counts, median stage seconds and highest peak after each stage; the metrics."""
    summary: dict[str, Any] = {}
    for kind in (COMMAND, CORE):
        ok = [run for run in runs if run.kind == kind and run.returncode == 0]
        if not ok:
            continue
        walls, peaks = [run.wall_s for run in ok], [run.mib for run in ok]
        summary[kind] = {**common.time_and_peak(walls, peaks), "rounds": len(ok)}
    cores = [run.result for run in runs if run.kind == CORE and run.result]
    if cores:
        last = cores[-1]
        summary["counts"] = {
            key: last[key]
            for key in ("events", "journeys", "snapshots", "split", "excluded", "features")
        } | {key: last.get(key) for key in ("frame_mib", "slicing", "model_info")}
        summary["stages_s"] = {
            stage: statistics.median(
                line["seconds"][stage] for line in cores if stage in line["seconds"]
            )
            for stage in ("imports", *STAGES)
            if stage in last["seconds"]
        }
        summary["peak_mib_after"] = {
            stage: max(line["peak_mib_after"][stage] for line in cores)
            for stage in last["peak_mib_after"]
        }
        summary["core_metrics"] = {k: last[k] for k in ("metrics", "baseline", "bgnbd")}
    commands = [run.result for run in runs if run.kind == COMMAND and run.result]
    if commands:
        summary["command_metrics"] = {k: commands[-1][k] for k in ("metrics", "baseline", "bgnbd")}
    return summary


def print_table(customers: int, summary: dict[str, Any]) -> None:
    counts = summary.get("counts")
    command, core_run = summary.get(COMMAND), summary.get(CORE)
    print(f"\nTraining `{TASK}` (absent repeat_purchase in 60d, snapshots every 14d)")
    if counts:
        split = counts["split"]
        print(
            f"  {customers:,} customers, {counts['events']:,} events, {counts['journeys']:,}"
            f" journeys -> {counts['snapshots']:,} snapshots (train {split['train']:,}, gap"
            f" {split['gap']:,}, test {split['test']:,}; left out: "
            + ", ".join(f"{k} {v:,}" for k, v in counts["excluded"].items())
            + f"), {counts['features']} features, frame {counts['frame_mib']:,.0f} MiB"
        )
        info = counts["model_info"]
        rows = ", ".join(f"{k} {v:,}" for k, v in info["rows"].items())
        print(
            f"  LightGBM: {rows} rows ({counts['slicing']}); best iteration"
            f" {info['best_iteration']}, {info['calibration']} calibration"
        )
    header = f"  {'':<9}{'median s':>10}{'min s':>9}{'max s':>9}{'peak MiB':>10}{'rounds':>8}"
    print(header)
    for kind, row in ((COMMAND, command), (CORE, core_run)):
        if row:
            print(
                f"  {kind:<9}{row['median_s']:>10.1f}{row['min_s']:>9.1f}{row['max_s']:>9.1f}"
                f"{row['peak_mib']:>10.0f}{row['rounds']:>8}"
            )
        else:
            print(f"  {kind:<9}{'not measured':>10}")
    stages, peaks = summary.get("stages_s"), summary.get("peak_mib_after")
    if stages:
        total = sum(v for k, v in stages.items() if k != "imports")
        print("\n  core stages (median s, share of the stages; peak MiB of the process after it)")
        for stage, seconds in stages.items():
            share = "" if stage == "imports" else f"{seconds / total:>6.0%}"
            print(f"    {stage:<10}{seconds:>8.1f} s{share:>7}{peaks.get(stage, 0):>9,.0f} MiB")
    print(
        "  command: `journeyguard train --json` (start-up, load, train_task, MLflow logging with"
        " plots, promotion)\n  core: the same steps without MLflow, in a fresh process"
    )
    metrics = summary.get("command_metrics") or summary.get("core_metrics")
    if metrics:
        source = "command" if "command_metrics" in summary else "core"
        test_rows = metrics["metrics"]["n"]
        print(f"\n  test metrics (from the {source}; {test_rows:,} test rows)")
        print(f"    {'':<10}{'roc_auc':>9}{'pr_auc':>9}{'brier':>9}{'lift@10%':>10}")
        for name in ("metrics", "baseline", "bgnbd"):
            values = metrics.get(name)
            if values:
                label = {"metrics": "lightgbm"}.get(name, name)
                cells = [
                    common.cell(values[key], 9, ".4f") for key in ("roc_auc", "pr_auc", "brier")
                ]
                print(
                    f"    {label:<10}{''.join(cells)}{common.cell(values['lift_top10'], 10, '.2f')}"
                )
    if "command_metrics" in summary and "core_metrics" in summary:
        ours, theirs = summary["core_metrics"]["metrics"], summary["command_metrics"]["metrics"]
        same = ours["roc_auc"] == theirs["roc_auc"] and ours["brier"] == theirs["brier"]
        print(
            "  core and command metrics: "
            + ("the same" if same else f"DIFFER (core roc_auc {ours['roc_auc']:.4f})")
        )


def save(
    args: argparse.Namespace, code: dict[str, Any], runs: list[Run], summary: dict[str, Any]
) -> Path:
    """Writes everything measured to bench/results/train_speed-N-TIME.json."""
    body = {
        "arguments": common.arguments(args, leave_out=("core",)),
        "code": code,
        "runs": [run.__dict__ for run in runs],
        "summary": summary,
    }
    return common.write_record(args.results, f"train_speed-{args.customers}", body)


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.core is not None:
        core(args.core, TASK, args.train_seed, args.skip_bgnbd)
        return
    args.results = args.results.resolve()
    code = common.code_state()  # before the runs: the code they import
    events = common.ensure_simulated_log(
        args.journeyguard, args.results / "data", args.customers, args.seed, args.fresh_data
    )
    runs = run_rounds(args, events)
    summary = summarize(runs)
    print_table(args.customers, summary)
    print(f"\nrecorded in {save(args, code, runs, summary)}")
    if any(run.returncode != 0 for run in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
