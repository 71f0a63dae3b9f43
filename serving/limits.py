"""What a request body must be before it is read: at most `serving.max_body_bytes` (413
otherwise; a 244 MB body took 16.8 s and 2.6 GB to parse only to be refused), and JSON for
the model endpoints (415 otherwise; BentoML answered a form body 500)."""

from __future__ import annotations

from typing import Any

import bentoml

from journeyguard.features.config.model import ServingConfig
from journeyguard.serving.responses import send_json

BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
JSON_ENDPOINTS = frozenset({"/predict", "/predict_customer"})


class BodyLimitMiddleware:
    """413 with the limit and the key that sets it for a body over the limit: at once when its
    `content-length` says so, otherwise (chunked) as soon as the bytes read pass it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in BODILESS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if scope["path"] in JSON_ENDPOINTS and not _is_json(headers.get(b"content-type")):
            message = "send the body as JSON, with content-type: application/json"
            return await send_json(send, 415, {"error": message})
        limit = max_body_bytes()
        declared = headers.get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                return await too_large(send, limit, f"{int(declared):,} bytes")
            return await self.app(scope, receive, send)
        body = await _read_at_most(receive, limit)
        if body is None:
            return await too_large(send, limit, "a chunked body")
        return await self.app(scope, _replay(body, receive), send)


def _is_json(content_type: bytes | None) -> bool:
    """No content type (BentoML reads the body as JSON), or application/json."""
    if content_type is None:
        return True
    media_type = content_type.split(b";")[0].strip().lower()
    return media_type == b"application/json"


def max_body_bytes() -> int:
    """The running service's limit (the default while it is still starting)."""
    try:
        return bentoml.get_current_service().settings.serving.max_body_bytes
    except (bentoml.exceptions.BentoMLException, AttributeError):
        return ServingConfig().max_body_bytes


async def too_large(send: Any, limit: int, what: str) -> None:
    message = (
        f"request body too large: {what}, over the limit of {limit:,} bytes "
        "(serving.max_body_bytes); split the journeys into smaller requests"
    )
    await send_json(send, 413, {"error": message})


async def _read_at_most(receive: Any, limit: int) -> bytes | None:
    """The whole body of a request without a length, or None once it passes `limit`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that gives the body read already, in one message, then the server's own
    (which tells of a disconnect)."""
    sent = False

    async def replayed() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
