"""Training at scale: the dataset built on Spark, LightGBM trained on a stratified sample of
its journeys, the rate and the population's counts kept with the model in MLflow."""

from __future__ import annotations

from dataclasses import replace

import pytest
from mlflow import MlflowClient

from journeyguard.features.dataset import build_dataset
from journeyguard.features.engine.source import load_spark_log
from journeyguard.training.champion import train_and_register
from journeyguard.training.spark_train import training_sample
from tests.spark_configs import spark_config
from tests.workspace import SimulatedLog, empty_store

pytestmark = pytest.mark.spark


def test_a_sample_of_the_spark_dataset_trains_and_mlflow_keeps_its_rate(  # type: ignore[no-untyped-def]
    spark_session, simulated_log: SimulatedLog, template_store, tmp_path, monkeypatch
) -> None:
    settings = spark_config(simulated_log.events, tmp_path)
    settings = replace(settings, engine=replace(settings.engine, train_rows=4_000))
    task = settings.task("escalation")
    local = build_dataset(simulated_log.log, task)
    sample = training_sample(spark_session, load_spark_log(spark_session, settings), task,
                             settings.engine)  # fmt: skip
    counts = sample.counts
    assert counts["population_rows"] == len(local.frame)  # the whole dataset, counted on Spark
    assert counts["population_excluded_censored"] == local.excluded["censored"]
    assert sample.rate == pytest.approx(4_000 / len(local.frame))
    assert 0 < counts["sample_journeys"] < counts["population_journeys"]
    population_share = counts["population_positive_journeys"] / counts["population_journeys"]
    sample_share = counts["sample_positive_journeys"] / counts["sample_journeys"]
    assert sample_share == pytest.approx(population_share, abs=0.05)  # strata kept in proportion
    assert sample.log.n_journeys == counts["sample_journeys"]

    uri = empty_store(template_store, tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = train_and_register(settings, "escalation", None, seed=0, sample=sample)
    assert result["test_from"] == local.test_from.isoformat()  # the whole log's, not the sample's
    params = MlflowClient(tracking_uri=uri).get_run(result["run_id"]).data.params
    assert float(params["sample_rate"]) == pytest.approx(sample.rate)
    assert int(params["population_rows"]) == len(local.frame)
    assert params["engine"] == "spark"
