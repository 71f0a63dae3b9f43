"""The service's door: the API token (a bearer header, or the console's login cookie) on
everything but the probes, and a 503 with the reason while the champions are not loaded."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from typing import Any

import bentoml

from journeyguard.serving.responses import send_json
from journeyguard.serving.sessions import SESSION_COOKIE, Sessions

PROBES = ("/livez", "/healthz", "/readyz")
CONSOLE = "/console"
CONSOLE_OPEN = ("/console/login", "/console/logout")  # reachable without a token
INDEX = "/"  # a redirect to the console, open like the console's login
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
                return await send_json(
                    send, 503, {"ready": False, "reason": service.champions.reason}
                )
            if path == "/readyz" and service is not None and service.customers.problem:
                # Still ready: the last good log is served; say why the source is not read.
                problem = service.customers.problem
                return await send_json(send, 200, {"ready": True, "source_problem": problem})
            return await self.app(scope, receive, send)
        token = service.api_token if service is not None else None
        console = path == CONSOLE or path.startswith(f"{CONSOLE}/")
        if not token or path in CONSOLE_OPEN or path == INDEX:
            pass
        elif console:
            if not (_bearer_matches(scope, token) or _session_valid(scope, service.sessions)):
                return await _to_login(scope, send)
        elif not _bearer_matches(scope, token):
            return await send_json(
                send,
                401,
                {"error": "missing or wrong API token: send 'Authorization: Bearer <token>'"},
                [(b"www-authenticate", b"Bearer")],
            )
        if path in MODEL_ENDPOINTS and service is not None and not service.champions.ready:
            return await send_json(send, 503, {"error": service.champions.reason})
        return await self.app(scope, receive, send)


TOKEN_VARIABLE = "JOURNEYGUARD_API_TOKEN"


def api_token(configured: str | None, environ: Mapping[str, str]) -> str | None:
    """The token from the config (`serving.api_token`), else `JOURNEYGUARD_API_TOKEN`; None
    for no token. An empty variable is an error, not a way to turn the check off."""
    if configured is not None:
        return configured
    given = environ.get(TOKEN_VARIABLE)
    if given is not None and not given.strip():
        raise ValueError(
            f"{TOKEN_VARIABLE} is set but empty: give the token, or unset it to serve without one"
        )
    return given


def exposure_problem(host: str, token: str | None) -> str | None:
    """Why serving on `host` without a token would be unsafe, or None when it is not: every
    endpoint, the console's CSV export and /metrics would answer anyone who can reach it."""
    if token is not None or is_loopback(host):
        return None
    return (
        f"refusing to serve on {host} without an API token: anyone who reaches it could read "
        f"/risk_list, /console/export.csv and /metrics. Set serving.api_token (or "
        f"{TOKEN_VARIABLE}), bind to 127.0.0.1, or pass --allow-no-token to serve it open"
    )


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; a name is taken as reachable from elsewhere."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_matches(given: str, token: str) -> bool:
    """In constant time, as bytes: compare_digest refuses text that is not ASCII."""
    return hmac.compare_digest(given.encode(), token.encode())


def _bearer_matches(scope: dict, token: str) -> bool:
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and token_matches(given.strip(), token)


def session_cookie(scope: dict) -> str | None:
    """The console's session cookie of a request, if it sent one."""
    from http.cookies import CookieError, SimpleCookie

    header = dict(scope.get("headers") or []).get(b"cookie", b"").decode("latin-1")
    try:
        morsel = SimpleCookie(header).get(SESSION_COOKIE)
    except CookieError:
        return None
    return None if morsel is None else morsel.value


def _session_valid(scope: dict, sessions: Sessions) -> bool:
    cookie = session_cookie(scope)
    return cookie is not None and sessions.valid(cookie, time.time())


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
