"""`--engine spark` on the command line: a folder of Parquet parts with the local command's
columns and rows, and the quarantine table beside."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from journeyguard.features.cli import app
from tests.spark_configs import spark_config
from tests.workspace import SimulatedLog, TrainedWorkspace

pytestmark = pytest.mark.spark


def test_features_on_spark_write_the_local_columns(
    spark_session, simulated_log: SimulatedLog, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = spark_config(simulated_log.events, tmp_path)
    runner = CliRunner()
    args = ["features", "--config", str(settings.path), "--as-of", "2025-09-01"]
    local = runner.invoke(
        app, [*args, "--out", str(tmp_path / "local.parquet"), "--engine", "local"]
    )
    assert local.exit_code == 0, local.output
    spark = runner.invoke(app, [*args, "--out", str(tmp_path / "spark")])
    assert spark.exit_code == 0, spark.output
    assert "on Spark" in spark.output and "quarantined 0 rows" in spark.output
    parts = list((tmp_path / "spark").glob("part-*.parquet"))
    assert len(parts) >= 2  # one per journey partition that has rows
    expected = pd.read_parquet(tmp_path / "local.parquet")
    got = pd.read_parquet(tmp_path / "spark")
    assert list(got.columns) == list(expected.columns)
    assert sorted(got["customer_id"]) == sorted(expected["customer_id"])
    assert settings.workspace.quarantine_table.is_dir()


def test_score_and_analyze_on_spark_from_the_command_line(  # type: ignore[no-untyped-def]
    spark_session, trained_workspace: TrainedWorkspace, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_workspace.copy_store(tmp_path / "store"))
    settings = spark_config(trained_workspace.events, tmp_path)
    runner = CliRunner()
    args = ["--config", str(settings.path), "--engine", "spark"]
    scored = runner.invoke(
        app, ["score", *args, "--task", "churn", "--as-of", "2025-09-01",
              "--out", str(tmp_path / "risk")],
    )  # fmt: skip
    assert scored.exit_code == 0, scored.output
    assert "with churn v1 on Spark" in scored.output
    risks = pd.read_parquet(tmp_path / "risk")
    local = pd.read_parquet(trained_workspace.risk_list("churn"))  # scored at the same as_of
    assert set(risks["customer_id"]) <= set(trained_workspace.log.journey_ids)
    assert list(risks.columns) == list(local.columns)
    paths = runner.invoke(app, ["analyze", *args, "--out", str(tmp_path / "paths")])
    assert paths.exit_code == 0, paths.output
    transitions = pd.read_parquet(tmp_path / "paths" / "transitions.parquet")
    assert (
        transitions["count"].sum()
        == trained_workspace.log.n_events - trained_workspace.log.n_journeys
    )


def test_an_unknown_engine_is_a_clear_error(simulated_log: SimulatedLog, tmp_path) -> None:
    settings = spark_config(simulated_log.events, tmp_path)
    result = CliRunner().invoke(
        app,
        ["features", "--config", str(settings.path), "--as-of", "2025-09-01",
         "--out", str(tmp_path / "f.parquet"), "--engine", "dask"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "expected 'local' or 'spark', got 'dask'" in result.output
