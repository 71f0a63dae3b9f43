"""The service's workspace: a config over the session's trained workspace (tests/workspace.py),
a copy of its MLflow store that these tests may change, and its risk lists in an output folder
of its own. The service runs in-process once per session (`client`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.features.eventlog.log import EventLog
from tests.workspace import SOURCE_ATTRIBUTES, TASKS, TRAINED_TASKS, TrainedWorkspace

# Before BentoML is imported: in-process, its /metrics hangs unless Prometheus has a folder.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="jg-prometheus-"))

CONFIG = f"""
[source]
path = '{{events}}'

{SOURCE_ATTRIBUTES}
[output]
dir = "out"
{TASKS}
[serving]
max_journeys = 50
max_events = 200
max_body_bytes = 1_000_000
reload_every = "0.2s"
{{extra}}
"""
TOKEN = "s3cret-token"


@dataclass(frozen=True)
class Workspace:
    folder: Path
    config: Path
    tracking_uri: str
    log: EventLog
    events: Path

    @property
    def settings(self) -> Config:
        return load_config(self.config)

    def variant(self, name: str, extra: str) -> Path:
        """Another config over the same log and store, e.g. with a token or another task."""
        path = self.folder / f"{name}.toml"
        path.write_text(CONFIG.format(events=self.events, extra=extra))
        return path


def serving_workspace(trained: TrainedWorkspace, folder: Path) -> Workspace:
    """A workspace over the trained one in `folder`: its config, a copy of the store and the
    risk lists in its output folder."""
    config = folder / "jg.toml"
    config.write_text(CONFIG.format(events=trained.events, extra=""))
    uri = trained.copy_store(folder / "mlruns")
    workspace = Workspace(folder, config, uri, trained.log, trained.events)
    for task in TRAINED_TASKS:
        risk_list = workspace.settings.workspace.risk_list(task)
        risk_list.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(trained.risk_list(task), risk_list)
    return workspace


@pytest.fixture(scope="session")
def workspace(
    trained_workspace: TrainedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    return serving_workspace(trained_workspace, tmp_path_factory.mktemp("serving"))


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
