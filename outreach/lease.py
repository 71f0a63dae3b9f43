"""The cycle's lease: one cycle at a time, held while its holder works, gone soon after it dies.

A cycle takes the named lease in the outbox for a short time to live (`TTL`) and a heartbeat
thread renews it every third of that while the cycle works, so a long scoring keeps it and a
holder killed with SIGKILL (no `finally` runs) loses it within `TTL`, not an hour later. The
owner names the holder (host, process id, start time, and a token, since one process may run
several cycles), so `journeyguard outreach lease` can tell whether the holder still runs and
break a stale lease at once.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine

from journeyguard.outreach import outbox

TTL = datetime.timedelta(seconds=30)  # how long a dead holder blocks the next cycle at most
_STARTED = datetime.datetime.now(datetime.UTC)  # this process's start, near enough: its import
_STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the owner text split into its parts."""

    host: str
    pid: int
    started: str
    token: str

    @classmethod
    def parse(cls, owner: str) -> Holder | None:
        """The parts of an owner written by `owner_name`; None for any other text."""
        parts = owner.rsplit(":", 3)
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])

    def runs_here(self) -> bool | None:
        """Whether the holder's process still runs: None when it is on another host."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process: it exists
            return True
        return True


def owner_name() -> str:
    """host:pid:start:token, unique per call (two cycles in one process never share one)."""
    started = _STARTED.strftime(_STAMP)
    return f"{socket.gethostname()}:{os.getpid()}:{started}:{uuid.uuid4().hex[:8]}"


@dataclass
class Lease:
    """A hold on the named outbox lease, renewed by `heartbeat()` while the holder works."""

    engine: Engine
    name: str
    owner: str
    now: Callable[[], datetime.datetime]
    ttl: datetime.timedelta = TTL
    _lost: threading.Event = field(default_factory=threading.Event, init=False)

    @property
    def key(self) -> tuple[str, str]:
        """(name, owner): what `outbox.enqueue` checks is still held as it stores."""
        return self.name, self.owner

    def acquire(self) -> bool:
        """Takes the lease; False while another holder has it."""
        return outbox.acquire_lease(
            self.engine, self.name, self.owner, now=self.now(), ttl=self.ttl
        )

    def renew(self) -> bool:
        """Extends the lease; False if it was lost (expired and taken by another holder)."""
        if self._lost.is_set():
            return False
        if not self.acquire():
            self._lost.set()
        return not self._lost.is_set()

    def release(self) -> None:
        outbox.release_lease(self.engine, self.name, self.owner)

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Renews the lease every third of its time to live until the block ends."""
        stop = threading.Event()
        period = self.ttl.total_seconds() / 3

        def beat() -> None:
            while not stop.wait(period):
                try:
                    if not self.renew():
                        return
                except Exception:  # a database hiccup: the next beat tries again
                    continue

        thread = threading.Thread(target=beat, name=f"lease {self.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


@dataclass(frozen=True)
class LeaseState:
    """A lease as `journeyguard outreach lease` shows it."""

    name: str
    owner: str | None
    until: datetime.datetime | None
    expired: bool
    holder_runs: bool | None  # None: unknown (another host, or an owner of another form)

    @property
    def stale(self) -> bool:
        """Held, but by nobody alive: expired, or its process is gone from this host."""
        return self.owner is not None and (self.expired or self.holder_runs is False)

    def text(self, now: datetime.datetime) -> str:
        if self.owner is None or self.until is None:
            return f"lease {self.name!r}: free"
        left = (self.until - now).total_seconds()
        when = f"expired {-left:.0f} s ago" if left < 0 else f"expires in {left:.0f} s"
        runs = {True: "its process runs", False: "its process is gone", None: "on another host"}
        verdict = "stale: break it with --break" if self.stale else "held"
        return (
            f"lease {self.name!r}: {verdict}; holder {self.owner} ({runs[self.holder_runs]}), "
            f"until {self.until.isoformat()} ({when})"
        )


def lease_state(engine: Engine, name: str, now: datetime.datetime) -> LeaseState:
    """Who holds the named lease, until when, and whether the holder still runs."""
    held = outbox.lease_holder(engine, name)
    if held is None:
        return LeaseState(name, None, None, expired=False, holder_runs=None)
    owner, until = held
    holder = Holder.parse(owner)
    runs = holder.runs_here() if holder is not None else None
    return LeaseState(name, owner, until, expired=until < now, holder_runs=runs)


def break_lease(engine: Engine, name: str, now: datetime.datetime, *, force: bool) -> LeaseState:
    """Removes a stale lease (or any, with `force`) and returns what it was; raises
    RuntimeError naming the holder when it is alive and `force` is not given."""
    state = lease_state(engine, name, now)
    if state.owner is None:
        return state
    if not state.stale and not force:
        raise RuntimeError(
            f"{state.text(now)}: not stale; pass --force to break it anyway (the holder, if it "
            "runs, stops at its next renewal)"
        )
    outbox.release_lease(engine, name, state.owner)
    return state
