"""The cycle's lease (issue 18, row 7): renewed by a heartbeat while its holder works, lost soon
after the holder is killed, and shown or broken by `journeyguard outreach lease`."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from journeyguard.features.cli import app
from journeyguard.outreach.cycle import LEASE_NAME, utc_now
from journeyguard.outreach.lease import Holder, Lease, break_lease, lease_state, owner_name
from journeyguard.outreach.outbox import acquire_lease, lease_holder

REPO = Path(__file__).resolve().parents[2]
TTL = datetime.timedelta(seconds=1)
HOLDER = """
import sys, time
from journeyguard.outreach.cycle import utc_now
from journeyguard.outreach.lease import Lease, owner_name
from journeyguard.outreach.outbox import open_outbox
import datetime
lease = Lease(open_outbox(sys.argv[1]), "outreach-cycle", owner_name(), utc_now,
              ttl=datetime.timedelta(seconds=float(sys.argv[2])))
assert lease.acquire()
with lease.heartbeat():
    print("held", flush=True)
    time.sleep(600)  # a cycle at work, until killed
"""


def held_by_a_child(outbox_url: str) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, outbox_url, str(TTL.total_seconds())],
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "held\n"
    return child


def test_a_working_holder_keeps_the_lease_and_a_killed_one_loses_it_within_the_ttl(
    outbox_url, engine
):
    child = held_by_a_child(outbox_url)
    try:
        time.sleep(3 * TTL.total_seconds())  # three times its time to live: renewed meanwhile
        state = lease_state(engine, LEASE_NAME, utc_now())
        assert not acquire_lease(engine, LEASE_NAME, "next", now=utc_now(), ttl=TTL)
        assert Holder.parse(state.owner).pid == child.pid
        assert (state.expired, state.holder_runs, state.stale) == (False, True, False)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert lease_state(engine, LEASE_NAME, utc_now()).stale  # its process is gone
    time.sleep(TTL.total_seconds())
    assert acquire_lease(engine, LEASE_NAME, "next", now=utc_now(), ttl=TTL)


def test_a_lease_taken_over_is_lost_and_not_renewed(engine, clock):
    lease = Lease(engine, LEASE_NAME, owner_name(), clock, ttl=TTL)
    assert lease.acquire()
    clock.advance(2)
    assert acquire_lease(engine, LEASE_NAME, "other", now=clock(), ttl=TTL)
    assert not lease.renew()
    assert not lease.renew()  # lost for good, even once the other's expires
    assert lease_holder(engine, LEASE_NAME)[0] == "other"


def test_the_owner_names_host_process_and_start():
    holder = Holder.parse(owner_name())
    assert holder is not None and holder.pid == os.getpid() and holder.runs_here()
    assert holder.started.endswith("Z") and len(holder.token) == 8
    assert owner_name() != owner_name()
    assert Holder.parse("elsewhere") is None


def config(tmp_path: Path, outbox_url: str) -> str:
    path = tmp_path / "jg.toml"
    path.write_text(
        f"[source]\npath = 'e.csv'\n[output]\ndir = '{tmp_path}'\n"
        f"[outreach]\ndatabase = '{outbox_url}'\n"
    )
    return str(path)


def lease_command(*arguments: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["outreach", "lease", *arguments])
    assert result.exit_code == code, result.output
    return result.output


def test_the_lease_command_shows_and_breaks_a_stale_lease_only(outbox_url, engine, tmp_path):
    path = config(tmp_path, outbox_url)
    assert lease_command("--config", path).strip() == "lease 'outreach-cycle': free"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_owner = (
        f"{Holder.parse(owner_name()).host}:{gone.stdout.strip()}:20261205T000000Z:dead0000"
    )
    assert acquire_lease(
        engine, LEASE_NAME, dead_owner, now=utc_now(), ttl=datetime.timedelta(hours=1)
    )
    shown = lease_command("--config", path)
    assert "stale: break it with --break" in shown and "its process is gone" in shown
    assert dead_owner in lease_command("--config", path, "--break")
    assert lease_holder(engine, LEASE_NAME) is None

    alive = owner_name()  # this process: it runs
    assert acquire_lease(engine, LEASE_NAME, alive, now=utc_now(), ttl=datetime.timedelta(hours=1))
    refused = lease_command("--config", path, "--break", code=1)
    assert "not stale; pass --force" in refused
    assert lease_holder(engine, LEASE_NAME)[0] == alive
    lease_command("--config", path, "--break", "--force")
    assert lease_holder(engine, LEASE_NAME) is None


def test_an_expired_lease_is_stale_wherever_its_holder_runs(engine, clock):
    assert acquire_lease(
        engine, LEASE_NAME, "far:1:20261205T000000Z:abcd0123", now=clock(), ttl=TTL
    )
    state = lease_state(engine, LEASE_NAME, clock())
    assert (state.holder_runs, state.stale) == (None, False)  # another host: cannot tell
    clock.advance(2)
    assert break_lease(engine, LEASE_NAME, clock(), force=False).expired
    assert lease_holder(engine, LEASE_NAME) is None
