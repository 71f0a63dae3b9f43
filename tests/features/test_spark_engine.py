"""The Spark engine equals the local commands: the same features, dataset rows and path
counts of the shared simulated log, and the same quarantine of bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from journeyguard.features.analysis import paths
from journeyguard.features.dataset import build_dataset, features_at
from journeyguard.features.engine.analysis import VARIANT_SEPARATOR, spark_path_counts
from journeyguard.features.engine.commands import spark_dataset, spark_features
from journeyguard.features.engine.source import SparkLog, load_spark_log
from journeyguard.features.sources.load import load_events
from tests.spark_configs import spark_config
from tests.workspace import AS_OF, SimulatedLog

pytestmark = pytest.mark.spark
KEYS = ["customer_id", "as_of"]


@pytest.fixture(scope="module")
def spark_log(spark_session, simulated_log: SimulatedLog, tmp_path_factory) -> tuple:  # type: ignore[no-untyped-def]
    settings = spark_config(simulated_log.events, tmp_path_factory.mktemp("spark"))
    return settings, load_spark_log(spark_session, settings)


def assert_same_rows(local: pd.DataFrame, spark: pd.DataFrame, keys: list[str]) -> None:
    """Same columns, same rows by `keys`, numbers equal to 1e-9, text and times equal."""
    assert list(spark.columns) == list(local.columns)
    local = local.sort_values(keys, ignore_index=True)
    spark = spark.sort_values(keys, ignore_index=True)
    assert len(spark) == len(local)
    for column in local.columns:
        if pd.api.types.is_numeric_dtype(local[column]) and column not in keys:
            np.testing.assert_allclose(
                spark[column].to_numpy(float), local[column].to_numpy(float), rtol=0, atol=1e-9,
                err_msg=column,
            )  # fmt: skip
        elif pd.api.types.is_datetime64_any_dtype(local[column]):
            assert (pd.to_datetime(spark[column], utc=True) == local[column]).all(), column
        else:
            assert spark[column].astype(object).tolist() == local[column].astype(object).tolist()


def test_the_validated_log_is_the_local_log(spark_log, simulated_log: SimulatedLog) -> None:  # type: ignore[no-untyped-def]
    _, log = spark_log
    assert (log.n_events, log.n_journeys) == (
        simulated_log.log.n_events,
        simulated_log.log.n_journeys,
    )
    assert log.quarantined == {}
    assert list(log.steps) == list(simulated_log.log.steps)


def test_features_equal_the_local_command(spark_session, spark_log, simulated_log) -> None:  # type: ignore[no-untyped-def]
    settings, log = spark_log
    on_spark = spark_features(spark_session, log, AS_OF, settings.engine).toArrow().to_pandas()
    assert_same_rows(features_at(simulated_log.log, AS_OF), on_spark, ["customer_id"])


@pytest.mark.parametrize("task", ["churn", "escalation"])
def test_dataset_rows_equal_the_local_command(  # type: ignore[no-untyped-def]
    spark_session, spark_log, simulated_log, task: str
) -> None:
    settings, log = spark_log
    data = spark_dataset(spark_session, log, settings.task(task), settings.engine)
    on_spark = data.frame.toArrow().to_pandas()
    local = build_dataset(simulated_log.log, settings.task(task))
    assert_same_rows(local.frame, on_spark, KEYS)
    assert data.test_from == local.test_from
    assert data.excluded == local.excluded


def test_path_counts_equal_analyze(spark_log, simulated_log) -> None:  # type: ignore[no-untyped-def]
    settings, log = spark_log
    tables = spark_path_counts(log, settings.analysis, {})
    whole = simulated_log.log
    local = pd.DataFrame(paths.transitions(whole))
    merged = tables["transitions"]
    assert merged[["from", "to", "count", "journeys"]].astype(object).values.tolist() == (
        local[["from", "to", "count", "journeys"]].astype(object).values.tolist()
    )
    np.testing.assert_allclose(merged["probability"], local["probability"], rtol=0, atol=1e-12)
    variants = paths.variants(whole)
    steps = paths.joined_steps(whole, variants["first_journey"], VARIANT_SEPARATOR)
    expected = sorted(zip(steps, variants["journeys"].tolist(), strict=True))
    merged_variants = tables["variants"]
    got = zip(merged_variants["steps"], merged_variants["journeys"], strict=True)
    assert sorted(got) == expected
    starts, _ = paths.start_and_end_steps(whole)
    got_starts = zip(tables["start_steps"]["step"], tables["start_steps"]["journeys"], strict=True)
    assert dict(got_starts) == dict(zip(starts["step"], starts["journeys"].tolist(), strict=True))


def test_bad_rows_go_to_the_quarantine_table_as_locally(spark_session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", " b ", None, "c", "c"],
            "timestamp": ["2025-01-01T10:00:00Z", "2025-01-02T10:00:00Z", "2025-01-02T10:00:00Z",
                          "2025-01-03T10:00:00Z", "2025-01-04T10:00:00Z", "yesterday",
                          "2025-01-05T10:00:00Z"],
            "event": ["order_placed", "shipped", "shipped", "order_placed", "shipped",
                      "order_placed", "order_placed"],
        }
    )  # fmt: skip
    rows.to_parquet(tmp_path / "events.parquet", index=False)
    config = tmp_path / "jg.toml"
    config.write_text("[source]\npath = 'events.parquet'\n[output]\ndir = 'out'\n")
    from journeyguard.features.config.reader import load_config

    settings = load_config(config)
    local = load_events(settings.source)
    log: SparkLog = load_spark_log(spark_session, settings)
    quarantine = pd.read_parquet(settings.workspace.quarantine_table)
    assert sorted(quarantine["reason"]) == sorted(local.quarantine["reason"])
    assert log.n_events + len(quarantine) == len(rows)
    assert log.n_journeys == local.log.n_journeys == 3
    assert sorted(quarantine["customer_id"].dropna()) == ["a", "c"]  # raw values are kept
