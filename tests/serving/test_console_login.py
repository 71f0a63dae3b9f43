"""The console's login (issue 18, row 11): a signed, expiring session cookie that is not the
token, logout that ends sessions on the server, throttled wrong tokens, security headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from journeyguard.serving.sessions import SESSION_COOKIE, LoginThrottle, Sessions
from tests.serving.conftest import AUTH, TOKEN


def browser(client: TestClient, address: str, base_url: str | None = None) -> TestClient:
    """Another browser on the session's app, from its own address (the throttle's key)."""
    return TestClient(client.app, base_url=base_url or str(client.base_url), client=(address, 5))


def log_in(web: TestClient):
    return web.post("/console/login", data={"token": TOKEN}, follow_redirects=False)


def test_the_cookie_is_signed_expiring_and_not_the_token(client):
    web = browser(client, "10.0.0.1")
    response = log_in(web)
    assert response.status_code == 303
    cookie = web.cookies[SESSION_COOKIE]
    assert TOKEN not in cookie
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    assert "Max-Age=43200" in set_cookie and "Secure" not in set_cookie
    assert web.get("/console/models").status_code == 200
    # A cookie altered to live longer fails its signature.
    generation, expiry, signature = cookie.split(".")
    forged = browser(client, "10.0.0.2")
    forged.cookies.set(SESSION_COOKIE, f"{generation}.{int(expiry) + 10**6}.{signature}")
    assert forged.get("/console/models", follow_redirects=False).status_code == 303
    # Nor does it open the JSON endpoints, which take the bearer token only.
    assert web.get("/risk_list?task=churn").status_code == 401


def test_logout_ends_the_session_on_the_server(client):
    web = browser(client, "10.0.0.3")
    log_in(web)
    kept = web.cookies[SESSION_COOKIE]
    web.get("/console/logout")
    stolen = browser(client, "10.0.0.4")
    stolen.cookies.set(SESSION_COOKIE, kept)
    assert stolen.get("/console/models", follow_redirects=False).status_code == 303
    log_in(web)  # a new login opens it again
    assert web.get("/console/models").status_code == 200
    # Logout without a valid session ends none.
    assert browser(client, "10.0.0.5").get("/console/logout").status_code == 200
    assert web.get("/console/models").status_code == 200


def test_secure_cookie_over_https(client):
    web = browser(client, "10.0.0.6", base_url="https://testserver")
    assert "Secure" in log_in(web).headers["set-cookie"]


def test_wrong_tokens_are_throttled_per_client(client):
    web = browser(client, "10.0.0.7")
    for _ in range(5):
        wrong = web.post("/console/login", data={"token": "guess"}, follow_redirects=False)
        assert wrong.status_code == 401
    refused = log_in(web)  # even the right token, until the window has passed
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "Too many wrong tokens" in refused.text
    assert log_in(browser(client, "10.0.0.8")).status_code == 303  # another client


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/console/models", AUTH), ("/console/login", {}), ("/predict", {}), ("/nowhere", AUTH)],
)
def test_every_answer_has_the_security_headers(client, path, headers):
    response = client.get(path, headers=headers, follow_redirects=False)
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_sessions_expire_and_end_with_the_generation(tmp_path: Path):
    sessions = Sessions("token", 60, tmp_path / "generation")
    cookie = sessions.issue(now=1_000)
    assert sessions.valid(cookie, now=1_059) and not sessions.valid(cookie, now=1_060)
    assert not Sessions("other", 60, tmp_path / "generation").valid(cookie, now=1_000)
    for bad in ("", "x", "1.2", "0.2000.", f"{cookie}0", cookie.replace("0.", "1.", 1)):
        assert not sessions.valid(bad, now=1_000), bad
    sessions.end_all()
    assert not sessions.valid(cookie, now=1_000)
    assert sessions.valid(sessions.issue(now=1_000), now=1_000)


def test_the_throttle_forgets_after_the_window_and_bounds_its_memory():
    throttle = LoginThrottle(attempts=2, window=10, clients=3)
    throttle.failed("a", 0)
    throttle.failed("a", 1)
    assert throttle.retry_after("a", 5) == pytest.approx(5)
    assert throttle.retry_after("a", 10) is None
    for client in "bcde":
        throttle.failed(client, 2)
    assert len(throttle._failures) == 3
