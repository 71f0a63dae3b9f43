"""Bounded `endpoint` labels on BentoML's request metrics.

BentoML's traffic middleware labels its request counter, histogram and gauge with the raw URL
path: each distinct path, even one answered 401 or 404, added about 20 Prometheus series
(3,000 random paths: /metrics from 155 KB to 13 MB, each worker 60-125 MB larger). It sits
outside every middleware a service may add, so no public option reaches it: this module, the
one place the service patches BentoML, hands it the route's template instead (a customer page
counts under `/console/customer/{customer_id}`, any unknown path under `other`), and gives the
app behind it the real path back. `tests/serving/test_route_labels.py` fails if BentoML moves
or renames what is patched.
"""

from __future__ import annotations

from typing import Any

OTHER = "other"
CUSTOMER_PAGE = "/console/customer/"
ROUTES = frozenset(
    {
        "/",
        "/predict",
        "/predict_customer",
        "/risk_list",
        "/openapi.json",
        "/docs.json",
        "/livez",
        "/healthz",
        "/readyz",
        "/metrics",
        "/console",
        "/console/export.csv",
        "/console/lapsed",
        "/console/paths",
        "/console/paths/report",
        "/console/models",
        "/console/login",
        "/console/logout",
    }
)
_REAL_PATH = "journeyguard.real_path"  # the scope key that carries the path past the label


def route_label(path: str) -> str:
    """The label a request to `path` is counted under: one of a fixed, small set."""
    if path in ROUTES:
        return path
    if path.startswith(CUSTOMER_PAGE) and len(path) > len(CUSTOMER_PAGE):
        return f"{CUSTOMER_PAGE}{{customer_id}}"
    return OTHER


class _RealPath:
    """The app behind the metrics middleware, given the path the request really had."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if _REAL_PATH in scope:
            real = scope[_REAL_PATH]
            scope = {k: v for k, v in scope.items() if k != _REAL_PATH}
            scope["path"] = real
        await self.app(scope, receive, send)


def bound_traffic_labels() -> None:
    """Patches BentoML's traffic metrics middleware to label requests by `route_label`
    (once; calling again does nothing)."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware

    original = RunnerTrafficMetricsMiddleware.__call__
    if getattr(original, "bounded", False):
        return

    async def labelled(self: Any, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"].startswith("http"):
            label = route_label(scope["path"])
            if label != scope["path"]:
                if not isinstance(self.app, _RealPath):
                    self.app = _RealPath(self.app)
                scope = {**scope, "path": label, _REAL_PATH: scope["path"]}
        await original(self, scope, receive, send)

    labelled.bounded = True  # type: ignore[attr-defined]
    RunnerTrafficMetricsMiddleware.__call__ = labelled
