"""Everything through a real MLflow tracking server: `mlflow server` on loopback with its backend
store in PostgreSQL and an artifact root of its own, as deploy/mlflow.yaml runs it. With
`MLFLOW_TRACKING_URI=http://...`: train registers and promotes, the served service loads the
champion and reloads a newly promoted one without a restart, score and monitor read it, and
monitor's numbers land on the champion's run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from journeyguard.features.cli import app
from tests.serving.conftest import free_port, served
from tests.workspace import AS_OF, SOURCE_ATTRIBUTES, SimulatedLog

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

runner = CliRunner()
TASK = "escalation"
CONFIG = f"""
[source]
path = '{{events}}'

{SOURCE_ATTRIBUTES}
[output]
dir = '{{output}}'

[tasks.escalation]
label = "occurs"
match = {{{{ event = ["escalated"] }}}}
horizon = "14d"
snapshots = {{{{ prefix = 8 }}}}

[serving]
reload_every = "0.5s"
"""


@contextlib.contextmanager
def fresh_database(postgres_url: str, suffix: str) -> Iterator[str]:
    """A new, empty database `<test database>_<suffix>` on the test server (dropped after);
    yields its URL. MLflow's migrations need a database of their own."""
    base = make_url(postgres_url)
    name = f"{base.database}_{suffix}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    with admin.connect() as connection:
        connection.exec_driver_sql(drop)
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(drop)
        admin.dispose()


@contextlib.contextmanager
def mlflow_server(backend: str, artifacts: Path, log: Path) -> Iterator[str]:
    """`mlflow server` on a free loopback port, as deploy/mlflow.yaml starts it: one worker,
    no job runner (0.6 GB instead of 3.4). Yields its URL once /health answers; stops its
    process group afterwards (the server forks its workers)."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", backend, "--artifacts-destination", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        command, env=environment, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # the first start migrates a new store (about 11 s)
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@dataclass(frozen=True)
class TrackingServer:
    url: str
    artifacts: Path  # its artifact root


@pytest.fixture(scope="module")
def tracking_server(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackingServer]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    artifacts = folder / "artifacts"
    with (
        fresh_database(postgres_url, "mlflow") as backend,
        mlflow_server(backend, artifacts, folder / "server.log") as url,
    ):
        yield TrackingServer(url, artifacts)


def command(*arguments: str) -> dict:
    """A `journeyguard` command in this process; its JSON output."""
    result = runner.invoke(app, [*arguments, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


def served_version(base: str) -> int:
    """The version of the champion the service scores with now."""
    journey = {
        "customer_id": "C1",
        "as_of": AS_OF.isoformat(),
        "events": [
            {"timestamp": "2025-08-01T10:00:00Z", "event": "order_placed"},
            {"timestamp": "2025-08-20T10:00:00Z", "event": "ticket_opened", "case_id": "T1"},
        ],
    }
    response = httpx.post(f"{base}/predict", json={"journeys": [journey]}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()[0]["risks"][TASK]["model_version"]


def test_train_promote_serve_reload_and_monitor_through_the_server(
    tracking_server: TrackingServer,
    simulated_log: SimulatedLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    from mlflow import MlflowClient

    from journeyguard.serving.champions import ChampionStore

    uri = tracking_server.url
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # a local store would appear here, as ./mlruns
    config = tmp_path / "jg.toml"
    config.write_text(CONFIG.format(events=simulated_log.events, output=tmp_path / "out"))

    before = ChampionStore([TASK], uri, str(config))  # what a replica started first sees
    assert before.refresh() is False and not before.ready
    assert "no champion model for task(s) escalation" in before.reason

    first = command("train", "--config", str(config), "--task", TASK)
    assert (first["version"], first["promoted"]) == (1, True)
    client = MlflowClient(tracking_uri=uri)
    champion = client.get_model_version_by_alias(first["model_name"], "champion")
    assert champion.version == "1"
    # The model's files went through the server to its artifact root, not to a local store.
    assert list(tracking_server.artifacts.rglob("MLmodel")), "no model in the artifact root"
    assert not (tmp_path / "mlruns").exists()

    workspace = types.SimpleNamespace(tracking_uri=uri)
    with served(workspace, config, tmp_path / "serve.log", "--workers", "1") as base:
        assert served_version(base) == 1
        # Same data and seed: the same test ROC AUC, so the rule (>=) promotes version 2.
        second = command("train", "--config", str(config), "--task", TASK)
        assert (second["version"], second["promoted"]) == (2, True)
        deadline = time.monotonic() + 60
        while served_version(base) != 2:  # reloaded within serving.reload_every, no restart
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        models = httpx.get(f"{base}/console/models", timeout=30)  # the registry, over HTTP
        assert models.status_code == 200 and "journeyguard-escalation" in models.text

    scored = runner.invoke(
        app,
        ["score", "--config", str(config), "--task", TASK, "--as-of", AS_OF.isoformat()],
    )
    assert scored.exit_code == 0, scored.output
    monitored = command("monitor", "--config", str(config), "--task", TASK)
    assert monitored["model_version"] == 2
    history = client.get_metric_history(second["run_id"], "monitor_score_psi")
    assert [point.value for point in history] == [pytest.approx(monitored["score_psi"])]
