"""`journeyguard features` and `dataset` on Spark: what is fitted once is fitted on the driver
from the log (or a hash sample of its journeys, `[engine] fit_fraction`) and broadcast; each
partition then runs the local commands' code unchanged (`features.dataset`).

With `fit_fraction = 1` (the default) the rows equal the local commands' exactly; a smaller
share fits the vocabulary (and the transformer's critical items and routes) on that share of
the journeys, which is how one machine fits for a log it cannot hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from journeyguard.features.config.model import EngineConfig, TaskConfig
from journeyguard.features.dataset import (
    dataset_frame,
    features_frame,
    fit_transformer,
    labelled_snapshots,
)
from journeyguard.features.engine.partitions import map_logs, probe_schema
from journeyguard.features.engine.source import SparkLog
from journeyguard.features.eventlog.log import EventLog, Snapshots
from journeyguard.features.labels import span_test_from
from journeyguard.features.vocabulary import learn_vocabulary

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EXCLUDED = ("outside_population", "already_happened", "censored")


@dataclass(frozen=True)
class SparkDataset:
    """A task's labelled snapshots on Spark (`frame`, the columns of `build_dataset`'s), the
    transformer fitted on the driver, the test start, and what was left out."""

    frame: DataFrame
    transformer: Any
    test_from: pd.Timestamp
    counters: dict[str, Any]  # Spark accumulators of the excluded snapshots, by reason

    @property
    def excluded(self) -> dict[str, int]:
        """Snapshots left out, by reason: counted as partitions ran, so read them after the
        frame was written (a retried task may count twice)."""
        return {reason: int(counter.value) for reason, counter in self.counters.items()}


def spark_features(
    spark: SparkSession,
    log: SparkLog,
    as_of: pd.Timestamp,
    engine: EngineConfig,
    transformer_params: dict[str, Any] | None = None,
) -> DataFrame:
    """`features_at` of every journey on Spark: the vocabulary learned on the driver from the
    (sampled) journeys at `as_of`, then `features_frame` on each partition."""
    sample = log.sample(engine.fit_fraction)
    vocabulary = learn_vocabulary(Snapshots.at(sample, as_of), **(transformer_params or {}))
    shared = spark.sparkContext.broadcast(vocabulary)

    def features(part: EventLog) -> pd.DataFrame:
        return features_frame(Snapshots.at(part, as_of), shared.value, as_of)

    return map_logs(log.events, log.steps, features, probe_schema(features, sample))


def spark_dataset(
    spark: SparkSession,
    log: SparkLog,
    task: TaskConfig,
    engine: EngineConfig,
    test_from: pd.Timestamp | None = None,
    transformer_params: dict[str, Any] | None = None,
) -> SparkDataset:
    """`build_dataset` on Spark: labels and splits on each partition over the whole log's time
    span, the transformer fitted on the driver from the (sampled) training rows."""
    span = log.span
    test_from = test_from if test_from is not None else span_test_from(span, task)
    sample = log.sample(engine.fit_fraction)
    transformer = fit_transformer(
        labelled_snapshots(sample, task, test_from, span), task, test_from, transformer_params
    )
    shared = spark.sparkContext.broadcast(transformer)
    counted = {reason: spark.sparkContext.accumulator(0) for reason in EXCLUDED}

    def rows(part: EventLog) -> pd.DataFrame:
        labelled = labelled_snapshots(part, task, test_from, span)
        for reason, count in labelled.excluded.items():
            counted[reason].add(count)
        return dataset_frame(labelled, shared.value)

    def probe(part: EventLog) -> pd.DataFrame:  # on the driver: counts nothing
        return dataset_frame(labelled_snapshots(part, task, test_from, span), transformer)

    frame = map_logs(log.events, log.steps, rows, probe_schema(probe, sample))
    return SparkDataset(frame, transformer, test_from, counted)


def write_parquet(frame: DataFrame, out: Path) -> int:
    """Writes a Spark result as a folder of Parquet parts (one per partition); its row count."""
    frame.write.mode("overwrite").parquet(str(out))
    return int(frame.sparkSession.read.parquet(str(out)).count())
