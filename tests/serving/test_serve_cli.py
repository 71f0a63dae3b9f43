"""`journeyguard serve` in its own process, called over HTTP on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import AS_OF, TOKEN, Workspace

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_answers_over_http(workspace: Workspace, tmp_path: Path):
    config = workspace.variant("served", f'api_token = "{TOKEN}"')
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("journeyguard")),
        "serve",
        "--config",
        str(config),
    ]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": workspace.tracking_uri}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)  # serve makes its own
    server = subprocess.Popen(
        [*command, "--port", str(port)],
        env=environment,
        stdout=(tmp_path / "server.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-3000:]
            time.sleep(0.5)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = {
            "journeys": [
                {
                    "customer_id": "C1",
                    "as_of": AS_OF.isoformat(),
                    "events": [
                        {"timestamp": "2025-08-01T10:00:00Z", "event": "order_placed"},
                        {"timestamp": "2025-08-20T10:00:00Z", "event": "ticket_opened"},
                    ],
                }
            ]
        }
        response = httpx.post(f"{base}/predict", json=body, headers=auth, timeout=30)
        assert response.status_code == 200, response.text
        assert set(response.json()[0]["risks"]) == {"churn", "escalation"}
        assert httpx.post(f"{base}/predict", json=body, timeout=30).status_code == 401
        bad = httpx.post(f"{base}/predict", json={"journeys": [{}]}, headers=auth, timeout=30)
        assert bad.status_code == 400
        metrics = httpx.get(f"{base}/metrics", headers=auth, timeout=30).text
        assert 'journeyguard_predictions_total{endpoint="predict"' in metrics
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
