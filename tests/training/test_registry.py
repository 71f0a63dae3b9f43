"""training.registry against real MLflow on a SQLite store in a temporary folder (no mocks).

The store's migrations take seconds: one store is built per session (`template_store`,
tests/conftest.py, which makes the tests using it `slow`) and its database file is copied for
each test.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from journeyguard.training import registry
from tests.training.conftest import log_version

TASK = "churn"


def test_log_then_load_round_trips(trained, uri: str, tmp_path: Path) -> None:
    model, features = trained
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"rows": len(features)}))
    plot = tmp_path / "calibration.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    logged = log_version(
        model, features, uri, artifacts={"summary.json": summary, "plots/cal.png": plot}
    )
    assert (logged.task, logged.model_name, logged.version) == (TASK, "journeyguard-churn", 1)
    assert logged.model_uri == "models:/journeyguard-churn/1"

    loaded = registry.load_model(TASK, "challenger", uri=uri)
    assert loaded is not None
    model_back, logged_back = loaded
    assert logged_back == logged
    assert model_back.feature_names == model.feature_names
    np.testing.assert_allclose(
        model_back.predict_features(features), model.predict_features(features)
    )
    pd.testing.assert_frame_equal(model_back.contributions(features), model.contributions(features))

    # the run's artifacts sit in <root>/artifacts/<task>/<run id>/artifacts
    run_artifacts = Path(uri.removeprefix("sqlite:///")).parent / "artifacts" / TASK / logged.run_id
    assert json.loads((run_artifacts / "artifacts" / "summary.json").read_text())["rows"] > 0
    assert (run_artifacts / "artifacts" / "plots" / "cal.png").is_file()

    state = registry.champion_versions(uri)[TASK]
    assert state["champion"] is None
    challenger = state["challenger"]
    assert (challenger["version"], challenger["run_id"]) == (1, logged.run_id)
    assert challenger["metrics"]["test_roc_auc"] == pytest.approx(0.8)
    assert challenger["metrics"]["baseline_test_roc_auc"] == pytest.approx(0.75)
    assert challenger["tags"]["dataset_fingerprint"] == "0123456789abcdef"


def test_a_model_pickled_by_the_old_layout_is_refused_with_a_retrain_message(
    trained, uri: str
) -> None:
    model, features = trained
    log_version(model, features, uri)
    root = Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
    (pickled,) = root.rglob("python_model.pkl")
    # What an old pickle holds: a class by its module's old top-level name.
    pickled.write_bytes(b"ctraining.registry\nJourneyPyfunc\n.")
    with pytest.raises(registry.IncompatibleModelError, match=r"must be retrained: run `journey"):
        registry.load_model(TASK, "challenger", uri=uri)


def test_pyfunc_returns_probabilities_and_contributions(trained, uri: str) -> None:
    """Through MLflow's own pyfunc (as a server would load it): probabilities, not labels."""
    model, features = trained
    logged = log_version(model, features, uri)
    output = mlflow.pyfunc.load_model(logged.model_uri).predict(features)
    expected = [
        "probability",
        *(f"contribution__{name}" for name in model.feature_names),
        "contribution__bias",
    ]
    assert list(output.columns) == expected
    np.testing.assert_allclose(output["probability"], model.predict_features(features))
    assert output["probability"].between(0, 1).all()
    assert output["probability"].nunique() > 2
    raw = output.drop(columns="probability").sum(axis=1)
    np.testing.assert_allclose(raw, model.contributions(features).sum(axis=1))


def test_missing_model_or_alias_is_none(trained, uri: str) -> None:
    model, features = trained
    assert registry.load_model("no-such-task", "champion", uri=uri) is None
    log_version(model, features, uri)
    assert registry.load_model(TASK, "champion", uri=uri) is None
    assert registry.load_model("no-such-task", "challenger", uri=uri) is None
    assert registry.champion_versions(uri)[TASK]["champion"] is None


def test_promotion_rule(trained, uri: str) -> None:
    model, features = trained
    first = log_version(model, features, uri, score=0.81)
    promoted, rule = registry.promote(
        TASK, first, challenger_score=0.81, champion_score=None, metric="test_roc_auc", uri=uri
    )
    assert promoted
    assert "no champion" in rule
    assert registry.load_model(TASK, "champion", uri=uri)[1].version == 1

    worse = log_version(model, features, uri, score=0.79)
    promoted, rule = registry.promote(
        TASK, worse, challenger_score=0.79, champion_score=0.81, metric="test_roc_auc", uri=uri
    )
    assert not promoted
    assert "0.7900" in rule and "0.8100" in rule and "test_roc_auc" in rule
    assert "not promoted" in rule
    assert registry.load_model(TASK, "champion", uri=uri)[1].version == 1
    assert registry.load_model(TASK, "challenger", uri=uri)[1].version == 2
    state = registry.champion_versions(uri)[TASK]
    assert (state["champion"]["version"], state["challenger"]["version"]) == (1, 2)
    assert state["challenger"]["tags"]["promoted"] == "false"
    assert state["challenger"]["tags"]["promotion_rule"] == rule
    assert state["champion"]["tags"]["promoted"] == "true"

    # a gain below min_gain does not promote; an equal score with no margin does
    kwargs = {"champion_score": 0.81, "metric": "test_roc_auc", "uri": uri}
    assert not registry.promote(TASK, worse, challenger_score=0.815, min_gain=0.01, **kwargs)[0]
    promoted, rule = registry.promote(TASK, worse, challenger_score=0.81, **kwargs)
    assert promoted and "0.8100 >= champion v1 0.8100" in rule
    assert registry.load_model(TASK, "champion", uri=uri)[1].version == 2


def test_a_champion_this_code_cannot_score_is_named_in_the_recorded_rule(trained, uri) -> None:
    model, features = trained
    log_version(model, features, uri, score=0.8)
    challenger = log_version(model, features, uri, score=0.7)
    promoted, rule = registry.promote(
        TASK, challenger, challenger_score=0.7, champion_score=None, metric="test_roc_auc",
        uri=uri, champion_unusable="it names training.registry",
    )  # fmt: skip
    assert promoted
    assert rule.endswith(
        "(the champion could not be scored with this code: it names training.registry)"
    )
    assert registry.champion_versions(uri)[TASK]["champion"]["tags"]["promotion_rule"] == rule


def test_experiment_per_task(uri: str) -> None:
    first = registry.experiment_id(TASK, uri)
    assert registry.experiment_id(TASK, uri) == first
    assert registry.experiment_id("escalation", uri) != first


def test_tracking_uri_default_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert registry.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert (tmp_path / "mlruns" / "artifacts").is_dir()

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////somewhere/else.db")
    assert registry.tracking_uri(tmp_path / "other") == "sqlite:////somewhere/else.db"
    assert not (tmp_path / "other").exists()
