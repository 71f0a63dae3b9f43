"""BentoML's request metrics count unknown paths under one label (issue 18, row 1)."""

from __future__ import annotations

import inspect
import re

from journeyguard.serving.route_labels import OTHER, ROUTES, route_label
from tests.serving.conftest import AUTH


def _request_endpoints(client) -> set[str]:
    text = client.get("/metrics", headers=AUTH).text
    lines = [line for line in text.splitlines() if line.startswith("bentoml_service_request")]
    return {found for line in lines for found in re.findall(r'endpoint="([^"]*)"', line)}


def test_random_paths_add_no_series(client):
    for i in range(40):
        assert client.get(f"/probe-{i}/x").status_code == 401  # no token: refused
    assert client.get("/probe-with-token", headers=AUTH).status_code == 404
    client.get("/console/customer/C1", headers=AUTH)
    endpoints = _request_endpoints(client)
    assert OTHER in endpoints and "/console/customer/{customer_id}" in endpoints
    assert not any("probe" in endpoint for endpoint in endpoints), endpoints
    assert endpoints <= ROUTES | {OTHER, "/console/customer/{customer_id}"}


def test_labels_are_route_templates():
    assert route_label("/predict") == "/predict"
    assert route_label("/console/customer/a/b") == "/console/customer/{customer_id}"
    assert route_label("/console/customer/") == OTHER
    assert route_label("/predict/") == OTHER
    assert route_label("/" + "x" * 10_000) == OTHER


def test_the_patched_middleware_is_the_one_bentoml_uses():
    """Fails when BentoML moves or renames its traffic metrics middleware: the patch in
    serving/route_labels.py then needs another look."""
    from _bentoml_impl.server.app import ServiceAppFactory
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    import journeyguard.serving.service  # noqa: F401  (applies the patch)

    assert getattr(RunnerTrafficMetricsMiddleware.__call__, "bounded", False)
    source = inspect.getsource(ServiceAppFactory.middlewares.fget)
    assert "RunnerTrafficMetricsMiddleware" in source
    assert 'endpoint = scope["path"]' in inspect.getsource(RunnerTrafficMetricsMiddleware)
