"""`journeyguard serve` in its own process, called over HTTP on a free loopback port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.serving.conftest import TOKEN, Workspace, served
from tests.workspace import AS_OF

pytestmark = pytest.mark.slow


def test_serve_answers_over_http(workspace: Workspace, tmp_path: Path):
    config = workspace.variant("served", f'api_token = "{TOKEN}"')
    with served(workspace, config, tmp_path / "server.log") as base:
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
