"""The console's models page: the candidate that won training, why, and its reliability
diagram, from the run's tags (no service, no registry: the page's pure parts)."""

from __future__ import annotations

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
