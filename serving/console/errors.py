"""The console's one exception, free of heavy imports so the service can register its handler
at import time."""

from __future__ import annotations


class ConsoleError(Exception):
    """A request the console cannot answer, with the HTTP status and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
