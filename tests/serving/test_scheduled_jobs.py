"""The service shows the scheduled jobs' last runs: gauges on /metrics and a table on the
console's models page, read from the outbox database's `job_runs`."""

from __future__ import annotations

import datetime
import re
import time

from journeyguard.outreach import runs
from journeyguard.outreach.outbox import open_outbox
from tests.serving.conftest import AUTH

UTC = datetime.UTC


def gauge(text: str, name: str, job: str) -> float | None:
    found = re.search(rf'^{name}\{{job="{re.escape(job)}"\}} (\S+)$', text, re.MULTILINE)
    return None if found is None else float(found[1])


def wait_for_gauges(client, job: str, success: float, seconds: float = 20) -> str:
    """/metrics once `job`'s last run shows `success`: the service re-reads the runs every
    reload_every (0.2 s), and may have read a run between its start and its end."""
    deadline = time.monotonic() + seconds
    while True:
        text = client.get("/metrics", headers=AUTH).text
        if gauge(text, "journeyguard_job_last_run_success", job) == success:
            return text
        assert time.monotonic() < deadline, "no job gauges on /metrics"
        time.sleep(0.2)


def test_metrics_and_the_models_page_show_each_jobs_last_run(client, workspace):
    engine = open_outbox(f"sqlite:///{workspace.settings.workspace.outbox}")
    runs.create_runs_table(engine)
    ended = datetime.datetime.now(UTC).replace(microsecond=0) - datetime.timedelta(hours=2)
    for job, outcome in (("score", runs.OK), ("ingest", runs.FAILED)):
        started = ended - datetime.timedelta(minutes=3)
        run_id = runs.start_run(
            engine, job, cause="schedule", attempt=1, as_of=started, started_at=started
        )
        error = "OSError: the export is not there yet" if outcome == runs.FAILED else None
        runs.end_run(engine, run_id, ended_at=ended, outcome=outcome, counts={}, error=error)
    engine.dispose()

    text = wait_for_gauges(client, "ingest", 0.0)
    assert gauge(text, "journeyguard_job_last_run_success", "score") == 1.0
    assert gauge(text, "journeyguard_job_last_run_success", "ingest") == 0.0
    assert gauge(text, "journeyguard_job_last_run_timestamp_seconds", "score") == ended.timestamp()
    age = gauge(text, "journeyguard_job_last_run_age_seconds", "score")
    assert 2 * 3600 <= age < 2 * 3600 + 60

    page = client.get("/console/models", headers=AUTH)
    assert page.status_code == 200
    assert 'id="jobs"' in page.text and 'class="job-failed"' in page.text
    assert "OSError: the export is not there yet" in page.text and "2 h" in page.text
