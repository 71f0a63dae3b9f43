"""Scoring on Spark equals `journeyguard score`: the shared workspace's champions score the
shared log's partitions with the same risks, intervals, reasons and values."""

from __future__ import annotations

import pandas as pd
import pytest

from journeyguard.features.engine.source import load_spark_log
from journeyguard.training import registry
from journeyguard.training.score import score_log
from journeyguard.training.spark_score import spark_scores
from tests.features.test_spark_engine import assert_same_rows
from tests.spark_configs import spark_config
from tests.workspace import AS_OF, TRAINED_TASKS, TrainedWorkspace

pytestmark = pytest.mark.spark


@pytest.mark.parametrize("task", TRAINED_TASKS)
def test_scores_equal_the_local_command(  # type: ignore[no-untyped-def]
    spark_session, trained_workspace: TrainedWorkspace, tmp_path, task: str
) -> None:
    settings = spark_config(trained_workspace.events, tmp_path)
    model, logged = registry.load_model(task, "champion", uri=trained_workspace.tracking_uri)
    log = load_spark_log(spark_session, settings)
    frame = spark_scores(
        spark_session, log, model, AS_OF, settings.task(task), settings.engine,
        version=logged.version,
    )  # fmt: skip
    on_spark = frame.toArrow().to_pandas()
    local = score_log(
        trained_workspace.log, model, AS_OF, settings.task(task), version=logged.version
    )
    assert len(local) > 100
    assert_same_rows(local, on_spark, ["customer_id"])
    assert on_spark["expected_value"].notna().any()  # the value models were fitted and used
    assert isinstance(local["risk"].iloc[0], float) and pd.notna(local["risk"]).all()
