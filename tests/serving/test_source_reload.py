"""The service's event log while its source changes under it (issue 18, row 5): a bad row
appended costs that row; a source that cannot be read leaves the last good log in service and
says why, instead of failing every request that needs the log."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from journeyguard.features.config.model import Config
from journeyguard.features.config.reader import load_config
from journeyguard.serving.sources import CustomerEvents, SourceUnreadable

HEADER = "id,when,what\n"
ROWS = "a,2024-01-01T00:00:00Z,visit\nb,2024-01-02T00:00:00Z,order\n"
CONFIG = """
[source]
path = "events.csv"
[source.columns]
customer_id = "id"
timestamp = "when"
event = "what"
[output]
dir = "out"
"""


def settings_for(tmp_path: Path, text: str) -> Config:
    rewrite(tmp_path / "events.csv", text)
    (tmp_path / "jg.toml").write_text(CONFIG)
    return load_config(tmp_path / "jg.toml")


def rewrite(path: Path, text: str | bytes) -> None:
    """Writes the file and moves its modification time on, as a later write would."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    stamp = max(path.stat().st_mtime_ns, before + 1_000_000_000)
    os.utime(path, ns=(stamp, stamp))


def test_a_bad_row_appended_is_quarantined_and_the_log_still_reads(tmp_path):
    settings = settings_for(tmp_path, HEADER + ROWS)
    events = CustomerEvents(settings, refresh_every=0.0)
    assert events.log().n_events == 2
    rewrite(settings.source.path, HEADER + ROWS + "c,2024-01-03T00:00:00Z,visit,extra\n")
    assert events.log().n_events == 2
    assert events.problem is None
    assert "wrong number of fields" in settings.workspace.quarantine.read_text()
    assert events.snapshot("a", 2 * 10**18) is not None


@pytest.mark.parametrize(
    "broken",
    [b"", HEADER.encode() + b'a,2024-01-01T00:00:00Z,"visit\n' + ROWS.encode(), None],
    ids=["emptied", "unclosed quote", "removed"],
)
def test_an_unreadable_source_keeps_the_last_good_log_and_says_why(tmp_path, broken):
    settings = settings_for(tmp_path, HEADER + ROWS)
    path = settings.source.path
    events = CustomerEvents(settings, refresh_every=0.0)
    good = events.log()
    if broken is None:
        path.unlink()
    else:
        rewrite(path, broken)
    assert events.log() is good
    assert events.snapshot("b", 2 * 10**18) is not None
    assert events.problem is not None and str(path) in events.problem
    rewrite(path, HEADER + ROWS + "c,2024-01-03T00:00:00Z,visit\n")
    assert events.log().n_events == 3 and events.problem is None


def test_a_source_unreadable_from_the_start_is_a_clear_error(tmp_path):
    settings = settings_for(tmp_path, "")
    events = CustomerEvents(settings, refresh_every=0.0)
    with pytest.raises(SourceUnreadable, match=r"events\.csv: the file is empty"):
        events.snapshot("a", 0)
    assert "the file is empty" in events.problem


def test_the_watch_notices_an_unreadable_source_without_a_request(tmp_path):
    settings = settings_for(tmp_path, HEADER + ROWS)
    events = CustomerEvents(settings, refresh_every=0.05)
    events.watch()
    try:
        good = events.log()
        rewrite(settings.source.path, b"")
        deadline = time.monotonic() + 20
        while events.problem is None:  # only the watch reads the source now
            assert time.monotonic() < deadline, "the watch never read the source again"
            time.sleep(0.05)
        assert "the file is empty" in events.problem
        assert events.log() is good
    finally:
        events.stop()


@pytest.mark.slow
def test_the_service_answers_through_a_bad_row_and_an_emptied_source(workspace, tmp_path):
    import httpx

    from journeyguard.features.eventlog.frames import log_to_frame
    from tests.serving.conftest import CONFIG as SERVING_CONFIG
    from tests.serving.conftest import TOKEN, served

    events = tmp_path / "events.csv"
    log_to_frame(workspace.log).to_csv(events, index=False)
    config = workspace.folder / "csv_source.toml"
    config.write_text(SERVING_CONFIG.format(events=events, extra=f'api_token = "{TOKEN}"'))
    customer = str(workspace.log.journey_ids[0])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with served(workspace, config, tmp_path / "server.log") as base:

        def predict() -> httpx.Response:
            body = {"customer_id": customer}
            return httpx.post(f"{base}/predict_customer", json=body, headers=auth, timeout=60)

        assert predict().status_code == 200
        with events.open("a") as handle:
            handle.write(
                f"{customer},2025-01-01T00:00:00Z,order_placed,a field too many" + "," * 20 + "\n"
            )
        rewrite(events, events.read_bytes())
        assert predict().status_code == 200, predict().text
        assert "source_problem" not in httpx.get(f"{base}/readyz", timeout=10).text
        rewrite(events, b"")
        assert predict().status_code == 200, predict().text
        ready = readiness_with_a_source_problem(base)
        assert ready.status_code == 200
        assert "the file is empty" in ready.json()["source_problem"]
        page = httpx.get(f"{base}/console/customer/{customer}", headers=auth, timeout=60)
        assert page.status_code == 200


def readiness_with_a_source_problem(base: str, seconds: float = 30):
    """/readyz once a worker has seen the source fail: each worker re-reads it in the
    background, so the worker answering may not have noticed the change yet."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        ready = httpx.get(f"{base}/readyz", timeout=10)
        if "source_problem" in ready.text or time.monotonic() > deadline:
            return ready
        time.sleep(0.1)


def test_the_console_answers_503_while_the_source_was_never_read(tmp_path):
    from journeyguard.serving.console.data import ConsoleData
    from journeyguard.serving.console.errors import ConsoleError
    from journeyguard.serving.sources import RiskLists

    settings = settings_for(tmp_path, "")
    console = ConsoleData(settings, CustomerEvents(settings, 0.0), RiskLists(settings))
    with pytest.raises(ConsoleError) as error:
        console.log()
    assert error.value.status == 503 and "the file is empty" in error.value.message
