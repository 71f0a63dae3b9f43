"""`journeyguard train` and `score` end to end: a real MLflow SQLite store in a temporary folder.
These train through the command line on purpose: every test here is slow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from journeyguard.features.cli import app
from tests.workspace import AS_OF, TrainedWorkspace, empty_store

pytestmark = pytest.mark.slow

runner = CliRunner()

CONFIG = """
[source]
path = "events.parquet"

[source.attributes]
columns = ["segment", "country"]

[output]
dir = "out"

[tasks.escalation]
label = "occurs"
match = { event = ["escalated"] }
horizon = "14d"
snapshots = { prefix = 8 }
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train")
    (folder / "jg.toml").write_text(CONFIG)
    result = runner.invoke(
        app,
        ["simulate", "--customers", "3000", "--seed", "4", "--out", str(folder / "events.parquet")],
    )
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture()
def store(template_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty store of the test's own (a copy of the session's migrated template)."""
    uri = empty_store(template_store, tmp_path / "mlruns")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def train(workdir: Path, *extra: str) -> dict:
    result = runner.invoke(
        app,
        ["train", "--config", str(workdir / "jg.toml"), "--task", "escalation", "--json", *extra],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


def score(workdir: Path, out: Path):
    arguments = [
        "score",
        "--config",
        str(workdir / "jg.toml"),
        "--task",
        "escalation",
        "--as-of",
        "2025-12-01",
        "--out",
        str(out),
    ]
    return runner.invoke(app, arguments)


def test_train_is_deterministic_registers_and_scores_with_reasons(workdir, store):
    first = train(workdir, "--predictions-out", str(workdir / "predictions.csv"))
    second = train(workdir)
    assert first["model_name"] == "journeyguard-escalation"
    assert first["promoted"] is True and "no champion yet" in first["rule"]
    assert second["version"] == first["version"] + 1
    assert second["metrics"] == first["metrics"]  # same seed, same metrics
    assert second["promoted"] is True  # equal on the same test rows: the rule allows it
    assert {"roc_auc", "pr_auc", "brier", "log_loss", "lift_top10"} <= set(first["metrics"])
    assert first["baseline"]["n"] == first["metrics"]["n"]
    predictions = pd.read_csv(workdir / "predictions.csv")
    assert list(predictions.columns) == ["customer_id", "as_of", "y", "score", "split"]
    assert (predictions["split"] == "test").all() and predictions["score"].between(0, 1).all()

    out = workdir / "risk.csv"
    result = score(workdir, out)
    assert result.exit_code == 0, result.output
    risk = pd.read_csv(out)
    assert risk["risk"].is_monotonic_decreasing and risk["customer_id"].is_unique
    assert set(risk["band"]) <= {"low", "medium", "high"}
    top = risk.iloc[0]
    assert isinstance(top["reason_1"], str) and top["contribution_1"] > 0
    assert (risk["model_version"] == second["version"]).all()


def test_score_without_a_champion_is_a_clear_error(workdir, store, tmp_path):
    result = score(workdir, tmp_path / "risk.csv")
    assert result.exit_code == 2 and "no champion model" in result.output


def test_a_champion_the_code_cannot_score_is_replaced_not_fatal(
    workdir, store, trained_workspace: TrainedWorkspace, tmp_path
):
    """A champion pickled by an older version of the code (here: one whose feature transformer
    is gone) must not stop training: the new model is promoted and the rule says why."""
    from journeyguard.features.eventlog.log import Snapshots
    from journeyguard.training import registry

    # The session's escalation champion stands in for the old one (no need to train another).
    loaded = registry.load_model(
        "escalation", registry.CHAMPION, uri=trained_workspace.copy_store(tmp_path / "trained")
    )
    assert loaded is not None
    model = loaded[0]
    example = model.transformer.transform(Snapshots.at(trained_workspace.log, AS_OF)).head(3)
    model.transformer = None  # it still predicts from features, but not from snapshots
    old = registry.log_model(
        model, uri=store, params={}, metrics={}, tags={}, artifacts={}, input_example=example
    )
    registry.promote(
        "escalation", old, challenger_score=0.5, champion_score=None, metric="roc_auc", uri=store
    )
    result = train(workdir)
    assert result["promoted"] is True and result["version"] == old.version + 1
    assert "could not be scored" in result["rule"] and "no vocabulary" in result["rule"]
