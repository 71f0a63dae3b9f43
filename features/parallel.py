"""A computation in a forked child process, for the few steps worth a second core.

The child inherits the parent's memory (a large log is not copied or pickled), computes, and
leaves its result pickled in a file in memory that both share. Not a pipe: through a pipe the
child waits for the parent to read, so tens of megabytes would cross in 64 KiB turns after
the parent's own work instead of during it. Where `fork` does not exist the computation
runs in the calling process when its result is asked for; either way the result is the same.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
# Below, a second process costs more than it saves (the analysis's step tables, the value
# models' fit and its import of scipy.optimize: each some tenths of a second at 1.6M events).
PARALLEL_FROM_EVENTS = 200_000


class InChild(Generic[T]):
    """`function(*args)`, started now in a child process (with `fork`); `result()` waits for
    it. Without `fork`, or where it cannot, `result()` computes it in this process. As a
    context manager, it stops the child on the way out if its result was never taken."""

    def __init__(self, function: Callable[..., T], *args: Any, fork: bool = True) -> None:
        self._function, self._args = function, args
        self._pid: int | None = None
        if fork and can_fork():
            self._file = os.memfd_create("journeyguard-result", os.MFD_CLOEXEC)
            self._pid = os.fork()
            if self._pid == 0:  # the child: compute, send, leave without the parent's cleanup
                _send(self._file, function, args)
                os._exit(0)

    def __enter__(self) -> InChild[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stops a child whose result was never asked for (the caller failed meanwhile)."""
        if self._pid is not None:
            os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            os.close(self._file)
            self._pid = None

    def result(self) -> T:
        """The function's value; its exception's traceback (as a RuntimeError) if it raised."""
        if self._pid is None:
            return self._function(*self._args)
        pid, self._pid = self._pid, None
        os.waitpid(pid, 0)
        with os.fdopen(self._file, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size == 0:
                raise RuntimeError(
                    f"{self._function.__name__} ended in its child process unanswered"
                )
            with mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) as payload:
                ok, value = pickle.loads(payload)
        if not ok:
            raise RuntimeError(f"{self._function.__name__} failed in its child process:\n{value}")
        return value


def worth_a_child(n_events: int) -> bool:
    """Whether work on a log of `n_events` goes to a child by default: from
    PARALLEL_FROM_EVENTS, and only in a process without other threads, one of which a fork
    could leave holding a lock the child then waits on forever (the scheduler's jobs)."""
    return n_events >= PARALLEL_FROM_EVENTS and threading.active_count() == 1 and can_fork()


def can_fork() -> bool:
    """Linux only: fork elsewhere is missing (Windows) or unsafe once threads run (macOS)."""
    return sys.platform == "linux" and hasattr(os, "fork")


def _send(file: int, function: Callable[..., Any], args: tuple) -> None:
    try:
        payload = pickle.dumps((True, function(*args)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # everything goes back to the parent, to raise there
        payload = pickle.dumps((False, traceback.format_exc()))
    with os.fdopen(file, "wb") as out:
        out.write(payload)
