"""The console's uplift page: its chart and template on hand-made numbers."""

from __future__ import annotations

import numpy as np

from journeyguard.serving.console import pages, render
from journeyguard.training.uplift_metrics import qini_curve, uplift_by_decile


def _entry() -> dict:
    rng = np.random.default_rng(0)
    good, treated = rng.random(400) < 0.4, rng.random(400) < 0.5
    score = rng.random(400)
    curve = qini_curve(good, treated, score).assign(risk=0.0).to_dict("list")
    deciles = uplift_by_decile(good, treated, score).to_dict("records")
    return {
        "action": "discount",
        "model": "journeyguard-uplift-discount_campaign v3",
        "rows": 400,
        "realised": {"effect": 0.05, "effect_low": -0.02, "effect_high": 0.12,
                     "treated_n": 200, "control_n": 200},
        "qini": 0.0123,
        "risk_qini": -0.004,
        "deciles": deciles,
        "risk_deciles": deciles,
        "chart": pages.qini_chart(curve),
    }  # fmt: skip


def test_the_qini_chart_draws_three_lines_inside_its_square():
    curve = {"share": [0, 0.5, 1], "qini": [0, 0.2, 0.1], "random": [0, 0.05, 0.1]}
    chart = pages.qini_chart(curve | {"risk": [0, -0.1, 0.1]})
    for key in ("qini", "risk", "random"):
        xs, ys = zip(*(map(float, p.split(",")) for p in chart[key].split()), strict=True)
        assert min(xs) == chart["pad"] and max(xs) == chart["size"] - chart["pad"]
        assert all(chart["pad"] <= y <= chart["size"] - chart["pad"] for y in ys)
    assert pages.qini_chart(None) is None


def test_the_page_shows_the_realised_uplift_by_decile_beside_the_risk_ranking():
    html = render("uplift", active="uplift", actions=[_entry()], as_of="2025-12-31T00:00:00")
    assert "journeyguard-uplift-discount_campaign v3" in html
    assert html.count('<tr><td class="num">') == 10
    assert "Realised, ranked by risk" in html and "<polyline" in html
    empty = render(
        "uplift",
        active="uplift",
        actions=[{"action": "follow_up", "model": None, "reason": "no uplift champion of x yet"}],
        as_of="2025-12-31T00:00:00",
    )
    assert "no uplift champion of x yet" in empty
