"""`journeyguard outreach` end to end through the root command line: run-once against a real
receiver on loopback (the second run sends nothing), the report, and errors as exit status 2."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from journeyguard.features.cli import app
from journeyguard.outreach.cycle import COUNT_KEYS
from journeyguard.outreach.dispatch import SECRET_VARIABLE, URL_VARIABLE
from journeyguard.outreach.receiver import Receiver
from tests.outreach.conftest import SECRET
from tests.outreach.workspace import Workspace, trained_outreach, untrained_outreach
from tests.workspace import SimulatedLog, TrainedWorkspace

runner = CliRunner()
AS_OF = "2025-09-01"


@pytest.fixture(scope="module")
def workspace(
    trained_workspace: TrainedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    return trained_outreach(trained_workspace, tmp_path_factory)


@pytest.fixture
def config(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    return workspace.config(tmp_path)


@pytest.fixture
def untrained_config(
    simulated_log: SimulatedLog,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A config over the shared log, without champions: for commands that score nothing (the
    store it names is never created)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-store' / 'mlflow.db'}")
    return untrained_outreach(simulated_log, tmp_path_factory).config(tmp_path)


def invoke(*arguments: str) -> str:
    result = runner.invoke(app, ["outreach", *arguments])
    assert result.exit_code == 0, result.output
    return result.stdout


def as_json(output: str) -> dict:
    return json.loads(output[output.index("{") :])


def test_run_once_sends_then_a_rerun_sends_nothing_and_the_report_measures(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver(SECRET) as receiver:
        monkeypatch.setenv(URL_VARIABLE, receiver.url)
        monkeypatch.setenv(SECRET_VARIABLE, SECRET)
        first = as_json(invoke("run-once", "--config", str(config), "--as-of", AS_OF, "--json"))
        sent = receiver.attempts
        second = invoke("run-once", "--config", str(config), "--as-of", AS_OF)
    assert set(first) == {"as_of", "window_start", "skipped", "ranking", *COUNT_KEYS}
    assert first["ranking"] == {}  # no action ranks by gain here
    assert first["as_of"] == "2025-09-01T00:00:00+00:00" and first["skipped"] is None
    assert first["enqueued"] == first["contact"] == first["delivered"] == len(receiver.received)
    assert first["contact"] > 0 and sent == first["delivered"]
    assert "enqueued 0;" in second and "delivered 0," in second
    assert f"{first['selected']:,} decided before" in second
    assert receiver.attempts == sent

    report = as_json(invoke("report", "--config", str(config), "--as-of", "2025-12-31", "--json"))
    assert report["decisions"]["contact"] == first["contact"]
    assert report["messages"]["delivered"] == first["delivered"]
    actions = [row["action"] for row in report["actions"]]
    assert actions == ["discount", "follow_up"]
    assert all(row["waiting"] == 0 for row in report["actions"])
    assert any(row["contacted_n"] > 0 and row["holdout_n"] > 0 for row in report["actions"])
    # No uplift champion yet: each measured action says so instead of ranking by uplift.
    assert report["uplift"] and all(e["model"] is None for e in report["uplift"].values())
    text = invoke("report", "--config", str(config), "--as-of", "2025-12-31")
    assert "difference (95 % CI)" in text
    assert "no uplift champion of" in text
    assert all(any(line.lstrip().startswith(a) for line in text.splitlines()) for a in actions)


def test_without_a_webhook_run_once_exits_2_naming_the_settings(
    untrained_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(URL_VARIABLE, raising=False)
    result = runner.invoke(app, ["outreach", "run-once", "--config", str(untrained_config)])
    assert result.exit_code == 2
    assert f"no webhook URL: set [outreach] webhook_url or {URL_VARIABLE}" in result.output


def test_outreach_lists_its_commands() -> None:
    output = invoke("--help")
    listing = output[output.index("Commands") :]  # not the description: "scheduled", ...
    for command in ("schedule", "run-once", "report", "receive", "lease"):
        # A row of the listing starts with the name, a whole word: not "scheduled", "receiver".
        assert re.search(rf"^\W*{re.escape(command)}\s", listing, re.MULTILINE), listing
