"""The console's login: a signed session cookie, and a limit on wrong tokens per client.

The cookie holds `<generation>.<expiry>.<signature>`: an HMAC-SHA256 of the first two under a
key derived from the API token, never the token itself (a stolen cookie ends at its expiry and
never gives the bearer token of the JSON endpoints). A session is valid while its signature
matches, its expiry (`serving.session_lifetime` after the login) has not passed, and its
generation is the current one. Logging out moves the generation on, in a file of the output
folder that every worker reads: one token means one identity, so logout ends every session.
Changing the token ends them too (the key changes).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import deque
from pathlib import Path

SESSION_COOKIE = "journeyguard_session"
_KEY_CONTEXT = b"journeyguard console session v1"


class Sessions:
    """Issues and checks session cookies; `now` is the caller's clock (seconds since the epoch)."""

    def __init__(self, token: str, lifetime_seconds: float, generation_file: Path) -> None:
        self._key = hmac.new(token.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self.lifetime_seconds = lifetime_seconds
        self._generation_file = generation_file

    def issue(self, now: float) -> str:
        payload = f"{self.generation()}.{int(now + self.lifetime_seconds)}"
        return f"{payload}.{self._sign(payload)}"

    def valid(self, cookie: str, now: float) -> bool:
        payload, _, signature = cookie.rpartition(".")
        generation, _, expiry = payload.partition(".")
        if not (generation.isdigit() and expiry.isdigit()):
            return False
        if not hmac.compare_digest(signature.encode(), self._sign(payload).encode()):
            return False
        return int(expiry) > now and int(generation) == self.generation()

    def end_all(self) -> None:
        """Logout: every cookie issued so far stops opening the console, in every worker."""
        self._generation_file.parent.mkdir(parents=True, exist_ok=True)
        written = self._generation_file.with_suffix(f".{os.getpid()}.tmp")
        written.write_text(str(self.generation() + 1))
        written.replace(self._generation_file)  # atomic: a reader sees the old or the new

    def generation(self) -> int:
        try:
            text = self._generation_file.read_text().strip()
        except FileNotFoundError:
            return 0
        return int(text) if text.isdigit() else 0

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()


class LoginThrottle:
    """At most `attempts` wrong tokens per client (its address) in any `window` seconds; the
    next is refused until the oldest leaves the window. Kept per worker process, in memory,
    for at most `clients` addresses (the least recently seen are forgotten first)."""

    def __init__(self, attempts: int = 5, window: float = 60.0, clients: int = 10_000) -> None:
        self.attempts, self.window, self.clients = attempts, window, clients
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until `client` may try again, or None when it may now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) < self.attempts:
            return None
        return failures[0] + self.window - now

    def failed(self, client: str, now: float) -> None:
        failures = self._failures.pop(client, None) or deque()
        failures.append(now)
        self._failures[client] = failures  # last in the dict: the most recently seen
        while len(self._failures) > self.clients:
            del self._failures[next(iter(self._failures))]
