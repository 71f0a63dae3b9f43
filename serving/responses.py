"""Answers sent from ASGI middleware, before any framework sees the request: JSON bodies with
a reason a person can read."""

from __future__ import annotations

import json
from typing import Any


async def send_json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
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


SHOWN_CHARACTERS = 80


def shown(value: object) -> str:
    """A value the caller sent, quoted for a message, cut to its first 80 characters: an error
    never echoes a megabyte back."""
    text = str(value)
    if len(text) <= SHOWN_CHARACTERS:
        return repr(text)
    return f"{text[:SHOWN_CHARACTERS]!r}... ({len(text):,} characters)"
