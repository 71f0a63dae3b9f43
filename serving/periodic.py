"""Work the service repeats in the background: checking the registry and the monitor files."""

from __future__ import annotations

import threading
from collections.abc import Callable


def every(
    seconds: float, work: Callable[[], object], name: str, *, first_now: bool = True
) -> threading.Event:
    """Runs `work` now (unless `first_now` is False) and then every `seconds` in a daemon
    thread, until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        if not first_now and stop.wait(seconds):
            return
        while True:
            work()
            if stop.wait(seconds):
                return

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop
