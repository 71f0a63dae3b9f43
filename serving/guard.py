"""The service's door: the API token (a bearer header, or the console's login cookie) on
everything but the probes, and a 503 with the reason while the champions are not loaded."""

from __future__ import annotations

import hmac
import json
from typing import Any

import bentoml

PROBES = ("/livez", "/healthz", "/readyz")
CONSOLE = "/console"
CONSOLE_OPEN = ("/console/login", "/console/logout")  # reachable without a token
TOKEN_COOKIE = "journeyguard_token"
MODEL_ENDPOINTS = ("/predict", "/predict_customer")


class GuardMiddleware:
    """Bearer token on every endpoint but the probes; a clear 503 with the reason while the
    champions are not loaded (on /readyz and the model endpoints)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/") or "/"
        try:
            service = bentoml.get_current_service()
        except bentoml.exceptions.BentoMLException:  # still starting
            service = None
        if path in PROBES:
            if path == "/readyz" and service is not None and not service.champions.ready:
                return await _json(send, 503, {"ready": False, "reason": service.champions.reason})
            if path == "/readyz" and service is not None and service.customers.problem:
                # Still ready: the last good log is served; say why the source is not read.
                problem = service.customers.problem
                return await _json(send, 200, {"ready": True, "source_problem": problem})
            return await self.app(scope, receive, send)
        token = service.api_token if service is not None else None
        console = path == CONSOLE or path.startswith(f"{CONSOLE}/")
        if not token or path in CONSOLE_OPEN:
            pass
        elif console:
            if not (_bearer_matches(scope, token) or _cookie_matches(scope, token)):
                return await _to_login(scope, send)
        elif not _bearer_matches(scope, token):
            return await _json(
                send,
                401,
                {"error": "missing or wrong API token: send 'Authorization: Bearer <token>'"},
                [(b"www-authenticate", b"Bearer")],
            )
        if path in MODEL_ENDPOINTS and service is not None and not service.champions.ready:
            return await _json(send, 503, {"error": service.champions.reason})
        return await self.app(scope, receive, send)


def token_matches(given: str, token: str) -> bool:
    """In constant time, as bytes: compare_digest refuses text that is not ASCII."""
    return hmac.compare_digest(given.encode(), token.encode())


def _bearer_matches(scope: dict, token: str) -> bool:
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and token_matches(given.strip(), token)


def _cookie_matches(scope: dict, token: str) -> bool:
    """The console's login cookie holds the token (see `console_login`)."""
    from http.cookies import CookieError, SimpleCookie

    header = dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1")
    try:
        morsel = SimpleCookie(header).get(TOKEN_COOKIE)
    except CookieError:
        return False
    return morsel is not None and token_matches(morsel.value, token)


async def _to_login(scope: dict, send: Any) -> None:
    """A console page without the token: its login form, coming back here afterwards."""
    from urllib.parse import urlencode

    here = scope["path"] + (
        f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
    )
    location = f"{CONSOLE}/login?{urlencode({'next': here})}".encode("latin-1")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
