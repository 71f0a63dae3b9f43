"""Training at scale: the task's labelled dataset is built on Spark, and LightGBM trains on a
stratified sample of its journeys that fits one machine (`[engine] train_rows`).

Journeys, not rows, are sampled, so a journey's snapshots stay together (the validation slices
and the time split see whole journeys, as locally). The strata are the journeys with a positive
snapshot and those without; both are sampled at the same rate, chosen by a hash of the journey
id, so the sample keeps the population's outcome rate (in expectation) and the calibration
stays honest without weights. The rate and the whole population's counts go to MLflow with the
model (`train_and_register`'s `sample`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from journeyguard.features.config.model import EngineConfig, TaskConfig
from journeyguard.features.engine.commands import spark_dataset
from journeyguard.features.engine.partitions import log_of_table
from journeyguard.features.engine.source import SAMPLE_BUCKETS, SparkLog
from journeyguard.features.eventlog.columns import CUSTOMER_ID
from journeyguard.features.eventlog.log import EventLog

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class TrainingSample:
    """The sampled journeys' events on the driver, the whole log's span and test start, and
    the numbers MLflow keeps: the rate and the counts of the population and of the sample."""

    log: EventLog
    span: tuple[int, int]
    test_from: pd.Timestamp
    rate: float
    counts: dict[str, int]

    @property
    def params(self) -> dict[str, Any]:
        return {"engine": "spark", "sample_rate": self.rate} | self.counts


def training_sample(
    spark: SparkSession,
    log: SparkLog,
    task: TaskConfig,
    engine: EngineConfig,
    test_from: pd.Timestamp | None = None,
) -> TrainingSample:
    """The task's dataset on Spark, counted by stratum, and a same-rate hash sample of its
    journeys sized to about `engine.train_rows` snapshots."""
    from pyspark.sql import functions as F

    data = spark_dataset(spark, log, task, engine, test_from)
    journeys = (
        data.frame.groupBy(CUSTOMER_ID)
        .agg(F.count(F.lit(1)).alias("rows"), F.max("y").alias("positive"))
        .cache()
    )
    totals = journeys.groupBy("positive").agg(
        F.count(F.lit(1)).alias("journeys"), F.sum("rows").alias("rows")
    )
    by_stratum = {
        int(r["positive"]): (int(r["journeys"]), int(r["rows"])) for r in totals.collect()
    }
    rows = sum(n for _, n in by_stratum.values())
    if rows == 0:
        raise ValueError(f"task {task.name!r}: no labelled snapshot in the log")
    rate = min(1.0, engine.train_rows / rows)
    bucket = F.pmod(F.xxhash64(F.col(CUSTOMER_ID), F.lit("train")), F.lit(SAMPLE_BUCKETS))
    chosen = journeys.where(bucket < int(rate * SAMPLE_BUCKETS)) if rate < 1 else journeys
    sampled = chosen.groupBy("positive").agg(
        F.count(F.lit(1)).alias("journeys"), F.sum("rows").alias("rows")
    )
    kept = {int(r["positive"]): (int(r["journeys"]), int(r["rows"])) for r in sampled.collect()}
    events = log.events.join(F.broadcast(chosen.select(CUSTOMER_ID)), CUSTOMER_ID, "left_semi")
    sample_log = log_of_table(events.toArrow(), log.steps)
    journeys.unpersist()
    return TrainingSample(
        sample_log, log.span, data.test_from, rate, _counts(by_stratum, "population", data)
        | _counts(kept, "sample", None),
    )  # fmt: skip


def _counts(strata: dict[int, tuple[int, int]], prefix: str, data: Any) -> dict[str, int]:
    """Journeys and snapshot rows, overall and with a positive snapshot, of the population or
    the sample; the population's also says how many snapshots were left out, and why."""
    positive, negative = strata.get(1, (0, 0)), strata.get(0, (0, 0))
    counts = {
        f"{prefix}_journeys": positive[0] + negative[0],
        f"{prefix}_rows": positive[1] + negative[1],
        f"{prefix}_positive_journeys": positive[0],
        f"{prefix}_positive_journey_rows": positive[1],
    }
    if data is not None:
        counts |= {f"{prefix}_excluded_{k}": v for k, v in data.excluded.items()}
    return counts
