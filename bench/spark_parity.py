"""Check by hand: the Spark engine's features, dataset rows, scores and path counts equal the
local commands' on a larger simulated log than the tests use (default 20,000 customers).

    .venv/bin/python bench/spark_parity.py [--customers 20000] [--seed 1]

Prints PASS / FAIL per check (exit 1 on a failure); the tests do the same on 3,000 customers.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import common
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' helpers

from journeyguard.features.analysis import paths  # noqa: E402
from journeyguard.features.dataset import build_dataset, features_at  # noqa: E402
from journeyguard.features.engine.analysis import spark_path_counts  # noqa: E402
from journeyguard.features.engine.commands import spark_dataset, spark_features  # noqa: E402
from journeyguard.features.engine.session import spark_session  # noqa: E402
from journeyguard.features.engine.source import load_spark_log  # noqa: E402
from journeyguard.features.sources.log import load_log  # noqa: E402
from journeyguard.training.score import score_log  # noqa: E402
from journeyguard.training.spark_score import spark_scores  # noqa: E402
from journeyguard.training.train import train_task  # noqa: E402
from tests.features.test_spark_engine import assert_same_rows  # noqa: E402
from tests.spark_configs import spark_config  # noqa: E402

AS_OF = pd.Timestamp("2025-09-01", tz="UTC")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    common.add_location_options(parser)
    args = parser.parse_args()
    os.environ.update(common.QUIET_ENV | {"SPARK_LOCAL_IP": "127.0.0.1"})
    events = common.ensure_simulated_log(
        args.journeyguard, args.results / "data", args.customers, args.seed, False
    )
    settings = spark_config(events, Path(tempfile.mkdtemp(prefix="parity-", dir=args.results)))
    spark = spark_session(settings.engine)
    log, local = load_spark_log(spark, settings), load_log(settings)
    failures = 0

    def check(name: str, run: object) -> None:
        nonlocal failures
        try:
            run()  # type: ignore[operator]
            print(f"PASS {name}", flush=True)
        except AssertionError as error:
            failures += 1
            print(f"FAIL {name}: {str(error)[:300]}", flush=True)

    check("features", lambda: assert_same_rows(
        features_at(local, AS_OF), spark_features(spark, log, AS_OF, settings.engine)
        .toArrow().to_pandas(), ["customer_id"]))  # fmt: skip
    for task in ("churn", "escalation"):
        check(f"dataset {task}", lambda task=task: assert_same_rows(
            build_dataset(local, settings.task(task)).frame,
            spark_dataset(spark, log, settings.task(task), settings.engine).frame
            .toArrow().to_pandas(), ["customer_id", "as_of"]))  # fmt: skip
    model = train_task(local, settings.task("escalation"), seed=0).model
    check("scores escalation", lambda: assert_same_rows(
        score_log(local, model, AS_OF, settings.task("escalation")),
        spark_scores(spark, log, model, AS_OF, settings.task("escalation"), settings.engine)
        .toArrow().to_pandas(), ["customer_id"]))  # fmt: skip

    def counts() -> None:
        merged = spark_path_counts(log, settings.analysis, {})
        moves = pd.DataFrame(paths.transitions(local))
        keys = ["from", "to", "count", "journeys"]
        assert merged["transitions"][keys].values.tolist() == moves[keys].values.tolist()
        variants = paths.variants(local)
        assert sorted(merged["variants"]["journeys"].tolist()) == sorted(
            variants["journeys"].tolist()
        )

    check("transition and variant counts", counts)
    print(f"{log.n_events:,} events of {log.n_journeys:,} journeys; {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
