"""A small real webhook receiver: checks Standard Webhooks signatures and drops duplicates.

It stands in for the customer-messaging system in tests, in `make demo` and behind
`journeyguard outreach receive`. Delivery is at least once, so the receiver is where "never sent
twice" is finally made true: a `webhook-id` seen before is answered 200 and not recorded again.
Its failures can be scripted (`fail_next`) so tests drive outages, rate limits and slowness
through real HTTP rather than mocks.
"""

from __future__ import annotations

import binascii
import datetime
import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

POLL_SECONDS = 0.05  # how soon stop() is noticed (the stdlib default, 0.5 s, slows tests)
HUNG_UP = 0  # the status of a request whose connection was closed without an answer


@dataclass(frozen=True)
class CannedResponse:
    """One scripted answer: wait `delay` seconds, then answer `status` with `headers` without
    recording anything; with `status=None`, handle the request normally after the delay. With
    `hang_up`, close the connection instead of answering (after recording the message when
    `status` is None: the sender cannot tell whether it got through)."""

    status: int | None = 500
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang_up: bool = False


@dataclass(frozen=True)
class Request:
    """One POST as it arrived, whatever was answered (for tests to inspect)."""

    webhook_id: str | None
    headers: dict[str, str]
    body: bytes
    status: int  # HUNG_UP when the connection was closed instead


class Receiver:
    """A threaded HTTP server on `host:port` (0: any free port) that accepts signed webhooks.

    `.received` holds each new message once as (webhook_id, payload); `.requests` every POST,
    duplicates and refusals included. With `log_path`, each new message is also appended to
    that file as one JSON line.
    """

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: Path | None = None,
    ) -> None:
        self.webhook = Webhook(secret)
        self.host = host
        self.port = port
        self.log_path = log_path
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[Request] = []
        self._ids: set[str] = set()
        self._script: deque[CannedResponse] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to post; known once started (the port may have been chosen by the system), and
        kept after `stop()` so a test can aim at a receiver that is down."""
        if self.port == 0:
            raise RuntimeError("the receiver has no port yet: call start() first")
        return f"http://{self.host}:{self.port}/"

    @property
    def attempts(self) -> int:
        """POSTs received, duplicates and failures included."""
        with self._lock:
            return len(self.requests)

    @property
    def seen_ids(self) -> list[str | None]:
        """The `webhook-id` of every POST, in arrival order (a retry shows up twice)."""
        with self._lock:
            return [request.webhook_id for request in self.requests]

    def fail_next(self, *responses: CannedResponse) -> None:
        """Queues canned answers for the next POSTs, in order; then normal service resumes."""
        with self._lock:
            self._script.extend(responses)

    def start(self) -> Receiver:
        """Binds the port and serves in a background thread."""
        server = _Server((self.host, self.port), _Handler)
        server.receiver = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(POLL_SECONDS,), name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and frees the port (requests still sleeping in a canned delay are
        abandoned: their threads are daemons)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        """The answer to one POST: scripted, 401 for a bad signature, else 200 (recorded once);
        `HUNG_UP` to close the connection without an answer."""
        webhook_id = headers.get("webhook-id")
        canned = self.next_response(webhook_id)
        if canned is not None:
            time.sleep(canned.delay)
            if canned.status is not None:
                status = HUNG_UP if canned.hang_up else canned.status
                self._note(Request(webhook_id, headers, body, status))
                return status, dict(canned.headers)
        status = 200 if self._accept(webhook_id, headers, body) else 401
        if canned is not None and canned.hang_up:
            status = HUNG_UP
        self._note(Request(webhook_id, headers, body, status))
        return status, {}

    def next_response(self, webhook_id: str | None) -> CannedResponse | None:
        """The scripted answer to this POST, None for normal service: the next of `fail_next`
        (a subclass may choose otherwise, e.g. at random)."""
        with self._lock:
            return self._script.popleft() if self._script else None

    def _accept(self, webhook_id: str | None, headers: dict[str, str], body: bytes) -> bool:
        """Verifies the signature and records a message seen for the first time."""
        try:
            payload = self.webhook.verify(body, headers)
        except (WebhookVerificationError, ValueError, binascii.Error):
            return False
        assert webhook_id is not None  # verify() insists on the header
        with self._lock:
            if webhook_id in self._ids:
                return True
            self._ids.add(webhook_id)
            self.received.append((webhook_id, payload))
            if self.log_path is not None:
                self._append_line(webhook_id, payload)
        return True

    def _note(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _append_line(self, webhook_id: str, payload: dict[str, Any]) -> None:
        line = {
            "webhook_id": webhook_id,
            "received_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "payload": payload,
        }
        with Path(self.log_path).open("a", encoding="utf-8") as file:
            file.write(json.dumps(line, sort_keys=True) + "\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: Receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a client that timed out and hung up is part of the tests, not an error."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, extra = self.server.receiver.handle(headers, body)
        if status == HUNG_UP:
            self.close_connection = True
            return
        self.send_response(status)
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the receiver's record is `.requests`, not stderr."""
