"""`journeyguard score` on Spark: the champion and the value models are broadcast once, and
each journey partition is scored by `training.score.risk_table`, the local command's code.

The value models (BG/NBD and Gamma-Gamma, `training.value`) are fitted on the driver from the
purchases of the log, or of a hash sample of its journeys (`[engine] fit_fraction`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from journeyguard.features.config.model import EngineConfig, TaskConfig
from journeyguard.features.engine.partitions import map_logs, probe_schema
from journeyguard.features.engine.source import SparkLog
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.population import eligible_snapshots
from journeyguard.training.models import JourneyModel
from journeyguard.training.score import risk_table
from journeyguard.training.value import value_models

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def spark_scores(
    spark: SparkSession,
    log: SparkLog,
    model: JourneyModel,
    as_of: pd.Timestamp,
    task: TaskConfig,
    engine: EngineConfig,
    *,
    version: int | None = None,
) -> DataFrame:
    """The rows of `score_log` on Spark, one Parquet part per partition, unsorted: rank them
    where they are read (the local risk list is sorted riskiest first)."""
    sample = log.sample(engine.fit_fraction)
    values = value_models(sample, pd.Timestamp(as_of).value)
    shared = spark.sparkContext.broadcast((model, values))

    def scores(part: EventLog) -> pd.DataFrame:
        champion, fitted = shared.value
        snapshots = eligible_snapshots(Snapshots.at(part, as_of), task)
        return risk_table(snapshots, champion, as_of, task, version=version, value_models=fitted)

    def probe(part: EventLog) -> pd.DataFrame:  # on the driver, without the broadcast
        snapshots = eligible_snapshots(Snapshots.at(part, as_of), task)
        return risk_table(snapshots, model, as_of, task, version=version, value_models=values)

    return map_logs(log.events, log.steps, scores, probe_schema(probe, sample))
