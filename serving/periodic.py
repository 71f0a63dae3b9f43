"""Work the service repeats in the background: checking the registry and the monitor files."""

from __future__ import annotations

import threading
from collections.abc import Callable


def every(seconds: float, work: Callable[[], object], name: str) -> threading.Event:
    """Runs `work` now and then every `seconds` in a daemon thread, until the returned event
    is set."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            work()
            if stop.wait(seconds):
                return

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop
