"""The console's models page: the candidate that won training, why, and its reliability
diagram, from the run's tags (no service, no registry: the page's pure parts)."""

from __future__ import annotations

import datetime
import json
from types import SimpleNamespace

from journeyguard.serving.console import pages
from journeyguard.serving.console.views import models_html

BINS = [
    {"n": 500, "predicted": 0.1, "realised": 0.12, "realised_low": 0.09, "realised_high": 0.15},
    {"n": 500, "predicted": 0.6, "realised": 0.55, "realised_low": 0.5, "realised_high": 0.6},
]
VERSIONS = {
    "churn": {
        "model_name": "journeyguard-churn",
        "champion": {
            "version": 3,
            "run_id": "abc",
            "created": "2026-01-01T00:00:00+00:00",
            "metrics": {"test_roc_auc": 0.82, "test_pr_auc": 0.9, "test_brier": 0.12},
            "tags": {
                "winner": "blend",
                "winner_reason": "blend has the lowest validation log loss",
                "reliability": json.dumps(BINS),
            },
        },
        "challenger": None,
    }
}


def test_the_reliability_chart_puts_each_bin_at_its_predicted_and_realised_rates():
    chart = pages.reliability_chart(json.dumps(BINS), size=112)
    first, second = chart["points"]
    assert (first["x"], first["y"]) == (6 + 100 * 0.1, 112 - 6 - 100 * 0.12)
    assert first["low"] > first["y"] > first["high"]  # SVG's y grows downwards
    assert second["x"] > first["x"] and second["y"] < first["y"]
    assert pages.reliability_chart(None) is None  # a run from before the tag existed


def test_the_models_page_shows_the_winner_its_reason_and_the_diagram():
    html = models_html(SimpleNamespace(tasks=["churn"]), VERSIONS, {"churn": 3}, "sqlite:///x")
    assert "<strong>blend</strong>" in html and "lowest validation log loss" in html
    assert html.count("<circle") == 2 and 'class="reliability"' in html
    assert "500 rows: predicted 10.0%, realised 12.0%" in html
    assert "no challenger registered" in html


NOW = datetime.datetime(2025, 12, 16, 9, 0, tzinfo=datetime.UTC)
LAST_RUNS = {
    "score": {
        "job": "score", "cause": "schedule", "attempt": 1,
        "as_of": NOW.replace(hour=5), "started_at": NOW.replace(hour=5),
        "ended_at": NOW.replace(hour=5, minute=2), "outcome": "ok",
        "counts": {"churn": {"scored": 3000}}, "error": None,
    },
    "ingest": {
        "job": "ingest", "cause": "retry", "attempt": 2,
        "as_of": NOW.replace(hour=3, minute=10), "started_at": NOW.replace(hour=3, minute=10),
        "ended_at": NOW.replace(hour=3, minute=11), "outcome": "failed",
        "counts": {}, "error": "OSError: the export is not there yet",
    },
    "retrain:churn": {
        "job": "retrain:churn", "cause": "breach", "attempt": 1,
        "as_of": NOW.replace(hour=8, minute=59, second=30),
        "started_at": NOW.replace(hour=8, minute=59, second=30),
        "ended_at": None, "outcome": "running", "counts": {}, "error": None,
    },
}  # fmt: skip


def test_each_jobs_last_run_shows_its_outcome_and_age_in_the_pipelines_order():
    rows = pages.job_rows(LAST_RUNS, NOW)
    assert [r["job"] for r in rows] == ["ingest", "retrain:churn", "score"]
    ingest, retrain, score = rows
    assert (ingest["age"], ingest["outcome"], ingest["attempt"]) == ("5 h", "failed", 2)
    assert (retrain["age"], retrain["ended"]) == ("30 s", None)  # running: since it started
    assert (score["age"], score["age_seconds"]) == ("3 h", 3 * 3600 + 58 * 60)
    assert [pages.age_text(s) for s in (59, 60, 7200, 3 * 86_400)] == [
        "59 s",
        "1 min",
        "2 h",
        "3 d",
    ]


def test_the_models_page_lists_the_scheduled_jobs():
    jobs = pages.job_rows(LAST_RUNS, NOW)
    html = models_html(SimpleNamespace(tasks=["churn"]), VERSIONS, {}, "sqlite:///x", jobs)
    assert html.count('class="job-') == 3 and 'class="job-failed"' in html
    assert "OSError: the export is not there yet" in html and "5 h" in html
    empty = models_html(SimpleNamespace(tasks=["churn"]), VERSIONS, {}, "sqlite:///x")
    assert "no scheduled run recorded yet" in empty


def test_the_job_gauges_carry_each_last_runs_end_age_and_success():
    from journeyguard.serving.jobs import gauge_values

    values = gauge_values(LAST_RUNS, NOW)
    assert values["score"] == (NOW.replace(hour=5, minute=2).timestamp(), 3 * 3600 + 58 * 60, 1.0)
    assert values["ingest"][2] == 0.0
    stamp, age, success = values["retrain:churn"]
    assert (stamp, age) == (NOW.replace(hour=8, minute=59, second=30).timestamp(), 30.0)
    assert success != success  # NaN while it runs
