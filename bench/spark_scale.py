"""Benchmark: features + scoring, the local engine against Spark local[2], and how Spark's time
grows with the events.

Run by hand with the project's Python (see bench/README.md):

    .venv/bin/python bench/spark_scale.py [--customers 100000] [--growth 1,2,4]
                                          [--train-customers 20000] [--partitions 8]
                                          [--driver-memory 4g] [--skip-local]

1. Simulates the logs (bench/common.py; 100,000 customers is about 1.6M events) and a smaller
   log that a churn champion is trained on in-process (`training.train.train_task`, seed 0).
2. Local engine, on the 1x log: `features_at` of every journey at `--as-of` and `score_log`
   of the churn population with that model, after `load_log` (one process, mostly one core).
3. Spark local[2] on the 1x, 2x and 4x logs: `load_spark_log` (read, partition, validate,
   quarantine), `spark_features` and `spark_scores` written as Parquet: the same work as 2.
4. Prints events per second per core of each (local: 1 core; Spark: the master's cores, 2)
   and Spark's time against events, and writes bench/results/spark_scale-*.json.

Timings are reported, never asserted; a session's start (about 5 s) is left out and shown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import pandas as pd

from journeyguard.features.config.reader import load_config
from journeyguard.features.dataset import features_at
from journeyguard.features.engine.commands import spark_features, write_parquet
from journeyguard.features.engine.session import spark_session
from journeyguard.features.engine.source import load_spark_log
from journeyguard.features.sources.log import load_log
from journeyguard.training.score import score_log
from journeyguard.training.spark_score import spark_scores
from journeyguard.training.train import train_task

TASK = """
[tasks.churn]
label = "absent"
match = { event = ["repeat_purchase"] }
horizon = "60d"
snapshots = { every = "28d" }
population = { active_within = "90d" }
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000, help="the 1x log")
    parser.add_argument("--growth", default="1,2,4", help="multiples of the 1x log on Spark")
    parser.add_argument("--train-customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--as-of", default="2025-09-01")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--skip-local", action="store_true")
    common.add_location_options(parser)
    args = parser.parse_args()
    os.environ.update(common.QUIET_ENV | {"SPARK_LOCAL_IP": "127.0.0.1"})
    data = args.results / "data"
    as_of = pd.Timestamp(args.as_of, tz="UTC")
    work = Path(tempfile.mkdtemp(prefix="spark_scale-", dir=args.results))
    model = _champion(args, data, work)
    sizes = [int(m) for m in args.growth.split(",")]
    runs: list[dict[str, Any]] = []
    if not args.skip_local:
        runs.append(_local(args, data, work, model, as_of))
        _print(runs[-1])
    extra = (
        f'\n[engine]\nkind = "spark"\nmaster = "{args.master}"\npartitions = {args.partitions}\n'
        f'[engine.conf]\n"spark.driver.memory" = "{args.driver_memory}"\n'
    )
    first = _log(args, data, sizes[0])
    session = common.write_config(first, work / "session.toml", common.ATTRIBUTES, TASK + extra)
    started = time.perf_counter()
    spark = spark_session(load_config(session).engine)
    session_s = time.perf_counter() - started
    print(f"Spark session ({args.master}) started in {session_s:.1f} s", flush=True)
    for multiple in sizes:
        runs.append(_spark(args, data, work, model, as_of, multiple, extra, spark))
        _print(runs[-1])
    _summary(runs, sizes)
    record = {
        "arguments": common.arguments(args),
        "code": common.code_state(),
        "load_average": os.getloadavg(),
        "session_s": session_s,
        "runs": runs,
    }
    print(f"\nrecord: {common.write_record(args.results, 'spark_scale', record)}")


def _log(args: argparse.Namespace, data: Path, multiple: int) -> Path:
    customers = args.customers * multiple
    return common.ensure_simulated_log(args.journeyguard, data, customers, args.seed, False)


def _champion(args: argparse.Namespace, data: Path, work: Path) -> Any:
    events = common.ensure_simulated_log(
        args.journeyguard, data, args.train_customers, args.seed, False
    )
    config = common.write_config(events, work / "train.toml", common.ATTRIBUTES, TASK)
    settings = load_config(config)
    started = time.perf_counter()
    model = train_task(load_log(settings), settings.task("churn"), seed=0).model
    print(f"trained the churn model on {args.train_customers:,} customers in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    return model


def _local(
    args: argparse.Namespace, data: Path, work: Path, model: Any, as_of: pd.Timestamp
) -> dict[str, Any]:
    events = _log(args, data, 1)
    config = common.write_config(events, work / "local.toml", common.ATTRIBUTES, TASK)
    settings = load_config(config)
    steps: dict[str, float] = {}
    started = time.perf_counter()
    log = load_log(settings)
    steps["load"] = time.perf_counter() - started
    features_at(log, as_of).to_parquet(work / "local-features.parquet", index=False)
    steps["features"] = time.perf_counter() - started - sum(steps.values())
    scores = score_log(log, model, as_of, settings.task("churn"))
    scores.to_parquet(work / "local-scores.parquet", index=False)
    steps["score"] = time.perf_counter() - started - sum(steps.values())
    return _run("local", 1, 1, log.n_events, steps, len(scores))


def _spark(
    args: argparse.Namespace,
    data: Path,
    work: Path,
    model: Any,
    as_of: pd.Timestamp,
    multiple: int,
    extra: str,
    spark: Any,
) -> dict[str, Any]:
    events = _log(args, data, multiple)
    config = common.write_config(
        events, work / f"spark-{multiple}.toml", common.ATTRIBUTES, TASK + extra
    )
    settings = load_config(config)
    cores = spark.sparkContext.defaultParallelism
    steps: dict[str, float] = {}
    started = time.perf_counter()
    log = load_spark_log(spark, settings)
    steps["load"] = time.perf_counter() - started
    write_parquet(spark_features(spark, log, as_of, settings.engine), work / f"f-{multiple}")
    steps["features"] = time.perf_counter() - started - sum(steps.values())
    frame = spark_scores(spark, log, model, as_of, settings.task("churn"), settings.engine)
    scored = write_parquet(frame, work / f"s-{multiple}")
    steps["score"] = time.perf_counter() - started - sum(steps.values())
    log.events.unpersist()
    return _run("spark", multiple, cores, log.n_events, steps, scored)


def _run(
    engine: str, multiple: int, cores: int, events: int, steps: dict[str, float], scored: int
) -> dict[str, Any]:
    wall = sum(steps.values())
    return {
        "engine": engine,
        "multiple": multiple,
        "cores": cores,
        "events": events,
        "scored": scored,
        "steps_s": steps,
        "wall_s": wall,
        "events_per_s_per_core": events / wall / cores,
    }


def _print(run: dict[str, Any]) -> None:
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in run["steps_s"].items())
    print(
        f"{run['engine']:<6} {run['multiple']}x {run['events']:>11,} events on {run['cores']} "
        f"core(s): {run['wall_s']:7.1f} s ({steps}); "
        f"{run['events_per_s_per_core']:,.0f} events/s/core",
        flush=True,
    )


def _summary(runs: list[dict[str, Any]], sizes: list[int]) -> None:
    spark = {r["multiple"]: r for r in runs if r["engine"] == "spark"}
    base = spark.get(sizes[0])
    if base is None:
        return
    print("\nSpark time against events (1x = the first size):")
    for multiple, run in sorted(spark.items()):
        print(f"  {multiple}x events: {run['wall_s'] / base['wall_s']:.2f}x time")


if __name__ == "__main__":
    sys.exit(main())
