"""training.exported_champions (the champion read without MLflow) and risk_lists'
`champion_for_scoring`, which falls back on MLflow, against a real MLflow store."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from journeyguard.training import registry
from journeyguard.training.exported_champions import (
    CHAMPION,
    alias_holder,
    exported_champion,
    exported_file,
    load_exported,
    local_database,
)
from journeyguard.training.risk_lists import champion_for_scoring
from journeyguard.training.scoring_model import ScoringModel
from tests.training.conftest import TASK, log_version


def _promote(logged: registry.LoggedModel, uri: str) -> None:
    registry.promote(
        TASK, logged, challenger_score=1.0, champion_score=0.0, metric="roc_auc", uri=uri
    )


def test_the_alias_is_read_as_mlflow_reads_it(trained, uri: str) -> None:
    model, features = trained
    database = local_database(uri)
    assert alias_holder(database, TASK, CHAMPION) is None  # no model yet
    first = log_version(model, features, uri)
    assert alias_holder(database, TASK, CHAMPION) is None  # a challenger only
    _promote(first, uri)
    second = log_version(model, features, uri)
    assert (
        alias_holder(database, TASK, CHAMPION)
        == first
        == registry.load_model(TASK, CHAMPION, uri=uri)[1]
    )
    _promote(second, uri)
    assert alias_holder(database, TASK, CHAMPION) == second
    assert alias_holder(database, TASK, "challenger") == second


def test_a_database_without_a_registry_is_an_error_not_an_answer(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).close()
    with pytest.raises(sqlite3.Error):
        alias_holder(database, TASK, CHAMPION)


def test_the_champion_is_exported_once_and_follows_the_alias(trained, uri: str) -> None:
    model, features = trained
    assert champion_for_scoring(TASK, uri) is None
    first = log_version(model, features, uri)
    _promote(first, uri)
    assert exported_champion(TASK, uri) is None  # not exported yet: MLflow must answer
    exported, logged = champion_for_scoring(TASK, uri)
    assert logged == first and isinstance(exported, ScoringModel)
    assert exported_champion(TASK, uri)[1] == first
    path = exported_file(local_database(uri), first)
    written = path.stat().st_mtime_ns
    assert champion_for_scoring(TASK, uri)[1] == first
    assert path.stat().st_mtime_ns == written  # read, not written again

    path.write_bytes(b"not a pickle")  # an unreadable file is exported again from MLflow
    assert champion_for_scoring(TASK, uri)[1] == first
    assert isinstance(load_exported(path), ScoringModel)

    second = log_version(model, features, uri)
    _promote(second, uri)
    assert champion_for_scoring(TASK, uri)[1] == second
    assert exported_file(local_database(uri), second).exists()


def test_the_exported_model_gives_the_same_answers(trained) -> None:
    model, features = trained
    matrix = features[model.feature_names].to_numpy(dtype=np.float64, copy=True)
    matrix[::7, :5] = np.nan  # missing values take each split's default way
    exported = model.exported()
    for ours, theirs in zip(
        exported.predict_interval_matrix(matrix), model.predict_interval_matrix(matrix), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(
        exported.contribution_matrix(matrix), model.contribution_matrix(matrix)
    )


def test_scoring_from_the_exported_file_imports_no_mlflow_sklearn_or_lightgbm(
    trained_workspace, tmp_path: Path
) -> None:
    uri = trained_workspace.copy_store(tmp_path / "mlruns")
    assert champion_for_scoring("churn", uri) is not None  # exports it beside the copy
    script = textwrap.dedent(
        f"""
        import sys
        import pandas as pd
        from journeyguard.features.config.reader import load_config
        from journeyguard.features.sources.log import load_log
        from journeyguard.training.exported_champions import exported_champion
        from journeyguard.training.score import score_log

        settings = load_config({str(trained_workspace.config)!r})
        model, logged = exported_champion("churn", {uri!r})
        table = score_log(load_log(settings), model, pd.Timestamp("2025-09-01", tz="UTC"),
                          settings.task("churn"), version=logged.version)
        assert len(table) > 0, table
        print(sorted(m for m in ("mlflow", "sklearn", "lightgbm") if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
