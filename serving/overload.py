"""Overload: shed early, say so, log one line.

At three times its capacity the service used to accept work it could not finish in time:
BentoML's batcher shed late (503, "An unexpected error has occurred", no Retry-After), each
shed or invalid request logged a 30-line traceback, accepted requests waited up to 5.7 s and
the backlog took ~90 s to drain. Here each worker scores at most `serving.max_in_flight_bytes`
of request bodies at once (the work of a request grows with its body: 6 MiB, two requests of
500 journeys as objects, is about 0.7 s of one worker's scoring on 2 cores); a request that
would pass it answers 503 at once, before its body is read, with `Retry-After` and a reason,
and logs one line. A request alone is always admitted. The backlog is bounded, so the service
recovers as soon as the load falls. Client errors (4xx) and sheds are logged as one line each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from journeyguard.serving.responses import send_json

SCORING_ENDPOINTS = frozenset({"/predict", "/predict_customer"})
RETRY_AFTER_SECONDS = 1
UNDECLARED_BYTES = 1024 * 1024  # a chunked body's share of the limit
# BentoML's logger of request exceptions (`log_exception` in its http_app module).
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"

logger = logging.getLogger("journeyguard.serving")


class AdmissionMiddleware:
    """Admits a scoring request while the bodies in flight in this worker, its own included,
    stay within the limit (or none is in flight); the others answer 503."""

    def __init__(self, app: Any, max_in_flight_bytes: Callable[[], int]) -> None:
        self.app = app
        self._limit = max_in_flight_bytes  # read when needed: the config is read at start
        self.in_flight_bytes = 0
        self.in_flight = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in SCORING_ENDPOINTS:
            return await self.app(scope, receive, send)
        size = _declared_size(scope)
        limit = self._limit()
        if self.in_flight and self.in_flight_bytes + size > limit:
            logger.warning(
                "shed %s of %d bytes: %d requests of %d bytes in flight in this worker "
                "(serving.max_in_flight_bytes = %d)",
                scope["path"], size, self.in_flight, self.in_flight_bytes, limit,
            )  # fmt: skip
            reason = (
                f"overloaded: this worker is scoring {self.in_flight} requests already "
                f"(serving.max_in_flight_bytes); retry in {RETRY_AFTER_SECONDS} s"
            )
            retry = [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
            return await send_json(send, 503, {"error": reason}, retry)
        self.in_flight += 1
        self.in_flight_bytes += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.in_flight_bytes -= size


def _declared_size(scope: dict) -> int:
    """The body's `content-length`; a body without one counts as `UNDECLARED_BYTES`."""
    declared = dict(scope.get("headers") or []).get(b"content-length", b"")
    return int(declared) if declared.isdigit() else UNDECLARED_BYTES


class OneLineClientErrors(logging.Filter):
    """A request that failed for the client's reason (4xx) or was shed (503) is logged as one
    line with the status and the error's first line, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        status = _status_of(error) if error is not None else None
        if status is not None and (status < 500 or status == 503):
            first_line = str(error).splitlines()[0] if str(error) else ""
            record.msg = f"{record.getMessage()}: {status} {type(error).__name__}: {first_line}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _status_of(error: BaseException) -> int | None:
    from bentoml.exceptions import BentoMLException
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, BentoMLException):
        return int(error.error_code)
    return None


def log_client_errors_in_one_line() -> None:
    """Adds `OneLineClientErrors` to BentoML's request logger (once)."""
    target = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, OneLineClientErrors) for f in target.filters):
        target.addFilter(OneLineClientErrors())
