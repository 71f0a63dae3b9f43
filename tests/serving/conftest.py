"""A trained workspace for the service's tests: a simulated log, a real MLflow store with the
champions of two tasks, and their scored risk lists. Built once per session (about 30 s)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.eventlog.canonical import write_canonical
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.sources.simulate import simulate

# Before BentoML is imported: in-process, its /metrics hangs unless Prometheus has a folder.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="jg-prometheus-"))

CONFIG = """
[source]
path = "events.parquet"

[source.attributes]
columns = ["segment", "country"]

[output]
dir = "out"

[tasks.churn]
label = "absent"
match = {{ event = ["repeat_purchase"] }}
horizon = "60d"
snapshots = {{ every = "28d" }}

[tasks.escalation]
label = "occurs"
match = {{ event = ["escalated"] }}
horizon = "14d"
snapshots = {{ prefix = 8 }}

[serving]
max_journeys = 50
max_events = 200
reload_every = "0.2s"
{extra}
"""
AS_OF = pd.Timestamp("2025-09-01", tz="UTC")
TOKEN = "s3cret-token"


@dataclass(frozen=True)
class Workspace:
    folder: Path
    config: Path
    tracking_uri: str
    log: EventLog

    @property
    def settings(self) -> Config:
        return load_config(self.config)

    def variant(self, name: str, extra: str) -> Path:
        """Another config over the same log and store, e.g. with a token or another task."""
        path = self.folder / f"{name}.toml"
        path.write_text(CONFIG.format(extra=extra))
        return path


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from journeyguard.training import registry
    from journeyguard.training.champion import score_with_champion, train_and_register

    folder = tmp_path_factory.mktemp("serving")
    events = simulate(3000, seed=4).events
    # Whole seconds: requests carry microseconds at most, and the parity tests compare the
    # service with batch scoring on exactly the same times.
    events["timestamp"] = events["timestamp"].dt.floor("s")
    log = log_from_frame(events)
    write_canonical(log, folder / "events.parquet")
    config = folder / "jg.toml"
    config.write_text(CONFIG.format(extra=""))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        uri = registry.tracking_uri(folder / "mlruns")
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        settings = load_config(config)
        for task in settings.tasks:
            train_and_register(settings, task, None, seed=0)
            table = score_with_champion(settings, task, AS_OF)
            settings.workspace.risk_list(task).parent.mkdir(parents=True, exist_ok=True)
            table.to_parquet(settings.workspace.risk_list(task), index=False)
    # Not left set for the session: other tests build stores of their own.
    return Workspace(folder, config, uri, log)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def start(workspace: Workspace, config, monkeypatch) -> TestClient:
    from journeyguard.serving.service import JourneyService

    monkeypatch.setenv("MLFLOW_TRACKING_URI", workspace.tracking_uri)
    monkeypatch.setenv("JOURNEYGUARD_CONFIG", str(config))
    return TestClient(JourneyService.to_asgi())


def wait_ready(client: TestClient, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.1)


@pytest.fixture(scope="session")
def client(workspace: Workspace) -> Iterator[TestClient]:
    """The service in-process, with a token. One for the session: BentoML registers its
    Prometheus metrics globally, so a second app in one process would fail to start."""
    patch = pytest.MonkeyPatch()
    with start(workspace, workspace.variant("token", f'api_token = "{TOKEN}"'), patch) as app:
        try:
            wait_ready(app)
        finally:
            patch.undo()  # read at start only; later tests build MLflow stores of their own
        yield app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(
    workspace: Workspace, config: Path, log: Path, *extra: str, wait_seconds: float = 90
) -> Iterator[str]:
    """`journeyguard serve --config config` on a free loopback port, ready; yields its URL and
    stops it afterwards. Its output goes to `log`, shown when it fails to start."""
    import httpx

    port = free_port()
    environment = {**os.environ, "MLFLOW_TRACKING_URI": workspace.tracking_uri}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes its own
    command = [str(Path(sys.executable).with_name("journeyguard")), "serve"]
    server = subprocess.Popen(
        [*command, "--config", str(config), "--port", str(port), *extra],
        env=environment,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
