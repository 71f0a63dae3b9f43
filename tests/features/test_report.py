"""The HTML report: one self-contained page whose captions state the numbers, escaped text."""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from journeyguard.features.analysis.report import divergence, render_report, write_report
from journeyguard.features.analysis.svg import fmt_hours, fmt_pct, sankey_flows

ODD = "<b>refund & co</b>"
VARIANTS = [  # (steps, journeys): every journey of the fixture, 100 in all
    (["order_placed", "delivered", "repeat_purchase"], 50),
    (["order_placed", "delivered", "ticket_opened", "refund_denied"], 20),
    (["order_placed", "delivered", "ticket_opened", ODD, "repeat_purchase"], 15),
    (["order_placed", "ticket_opened", "refund_denied"], 10),
    (["order_placed"], 5),
]


def _item(item: str, kind: str, rate_with: float, rate_without: float, share: float) -> dict:
    difference = rate_with - rate_without
    return {
        "item": item, "kind": kind, "journeys_with": 40, "positives_with": 16,
        "rate_with": rate_with, "journeys_without": 60, "rate_without": rate_without,
        "difference": difference, "ci_low": difference - 0.03, "ci_high": difference + 0.03,
        "share_of_positives": share, "time_cost_hours": 30.0,
    }  # fmt: skip


def _matrix(positions: int) -> dict:
    counts = [Counter() for _ in range(positions)]
    for steps, journeys in VARIANTS:
        for k in range(positions):
            counts[k][steps[k] if k < len(steps) else "(ended)"] += journeys
    names = sorted({s for c in counts for s in c})
    return {
        "positions": list(range(1, positions + 1)),
        "rows": [{"step": s, "shares": [c[s] / 100 for c in counts]} for s in names],
    }


def _transitions() -> list[dict]:
    pairs = Counter()
    for steps, journeys in VARIANTS:
        for a, b in itertools.pairwise(steps):
            pairs[a, b] += journeys
    out = Counter()
    for (a, _), n in pairs.items():
        out[a] += n
    return [
        {"from": a, "to": b, "count": n, "journeys": n, "probability": n / out[a],
         "median_hours": 5.2, "p95_hours": 74.4, "total_hours": 5.2 * n}
        for (a, b), n in sorted(pairs.items(), key=lambda i: (-i[1], i[0]))
    ]  # fmt: skip


def _first_steps(depth: int = 4) -> dict:
    nodes, flows = Counter(), Counter()
    for steps, journeys in VARIANTS:
        for k, step in enumerate(steps[:depth]):
            nodes[k + 1, step] += journeys
        for k, (a, b) in enumerate(itertools.pairwise(steps[:depth])):
            flows[k + 1, a, b] += journeys
    return {
        "nodes": [{"position": k, "step": s, "journeys": n} for (k, s), n in nodes.items()],
        "flows": [
            {"position": k, "from": a, "to": b, "journeys": n} for (k, a, b), n in flows.items()
        ],
    }


def _first_positions() -> dict[str, int]:
    first: dict[str, list[int]] = {}
    for steps, journeys in VARIANTS:
        seen: dict[str, int] = {}
        for k, step in enumerate(steps):
            seen.setdefault(step, k + 1)
        for step, k in seen.items():
            first.setdefault(step, []).extend([k] * journeys)
    return {step: sorted(ks)[len(ks) // 2] for step, ks in first.items()}


def _critical() -> dict:
    return {
        "task": "churn", "label": "absent", "match": ["repeat_purchase"],
        "as_of": "2025-06-01T00:00:00+00:00", "horizon_hours": 1440.0,
        "journeys": 100, "positives": 35, "rate": 0.35,
        "excluded": {"already_happened": 7, "censored": 3},
        "steps": [_item("refund_denied", "step", 0.41, 0.12, 0.18),
                  _item(ODD, "step", 0.30, 0.20, 0.10),
                  _item("ticket_opened", "step", 0.2, 0.21, 0.3)],
        "transitions": [_item("ticket_opened → refund_denied", "transition", 0.35, 0.15, 0.12),
                        _item("delivered → ticket_opened", "transition", 0.25, 0.2, 0.2),
                        _item("order_placed → delivered", "transition", 0.2, 0.25, 0.5)],
        "sequences": [_item("ticket_opened … ticket_opened", "sequence", 0.33, 0.2, 0.05),
                      _item("order_placed … refund_denied", "sequence", 0.3, 0.2, 0.2),
                      _item("delivered … repeat_purchase", "sequence", 0.1, 0.4, 0.1)],
        "paths": {
            "positive": {"journeys": 35, "route": [
                {"step": "order_placed", "journeys": 35, "share": 1.0},
                {"step": "delivered", "journeys": 30, "share": 0.857},
                {"step": "ticket_opened", "journeys": 20, "share": 0.571},
                {"step": "refund_denied", "journeys": 18, "share": 0.514}],
                "top_variants": [{"steps": VARIANTS[1][0], "journeys": 18, "share": 0.514}]},
            "negative": {"journeys": 65, "route": [
                {"step": "order_placed", "journeys": 65, "share": 1.0},
                {"step": "delivered", "journeys": 60, "share": 0.923},
                {"step": "repeat_purchase", "journeys": 45, "share": 0.692}],
                "top_variants": [{"steps": VARIANTS[0][0], "journeys": 45, "share": 0.692}]},
            "divergence": [
                {"position": 3, "step": "ticket_opened", "share_positive": 0.57,
                 "share_negative": 0.1, "difference": 0.47},
                {"position": 4, "step": "refund_denied", "share_positive": 0.51,
                 "share_negative": 0.0, "difference": 0.51}],
        },
    }  # fmt: skip


@pytest.fixture
def analysis() -> dict:
    """A small, complete analysis following docs/analysis-format.md."""
    steps = sorted({s for v, _ in VARIANTS for s in v})
    transitions = _transitions()
    return {
        "meta": {"source": "events.parquet", "events": 340, "journeys": 100, "steps": steps,
                 "first_event": "2025-01-01T00:00:00+00:00",
                 "last_event": "2025-12-31T00:00:00+00:00", "as_of": None, "task": "churn"},
        "transitions": transitions,
        "start_steps": [{"step": "order_placed", "journeys": 100, "share": 1.0}],
        "end_steps": [{"step": "repeat_purchase", "journeys": 65, "share": 0.65},
                      {"step": "refund_denied", "journeys": 30, "share": 0.3},
                      {"step": "order_placed", "journeys": 5, "share": 0.05}],
        "variants": [{"rank": i + 1, "steps": s, "journeys": n, "share": n / 100,
                      "median_duration_hours": 36.0 * (i + 1)}
                     for i, (s, n) in enumerate(VARIANTS)],
        "step_matrix": _matrix(5),
        "first_steps": _first_steps(),
        "anchored_step_matrix": None,
        "funnels": [{"name": "support", "stages": [
            {"step": "delivered", "journeys": 85, "conversion": 1.0, "drop_off": 0,
             "median_hours_from_previous": math.nan},
            {"step": "ticket_opened", "journeys": 35, "conversion": 35 / 85, "drop_off": 50,
             "median_hours_from_previous": 30.0},
            {"step": "refund_denied", "journeys": 20, "conversion": 20 / 35, "drop_off": 15,
             "median_hours_from_previous": 0.6}]}],
        "durations": {
            "steps": [{"step": s, "journeys": 50, "median_hours_from_first": 10.0 * i,
                       "p95_hours_from_first": 20.0 * i,
                       "median_position": _first_positions()[s]} for i, s in enumerate(steps)],
            "journey": {"events_median": 3.0, "events_p95": 5.0, "duration_median_hours": 40.0,
                        "duration_p95_hours": 300.0}},
        "bottlenecks": {
            "transitions": sorted(transitions, key=lambda t: -t["total_hours"]),
            "steps": [{"step": s, "count": 10, "median_dwell_hours": 2.0, "p95_dwell_hours": 9.0,
                       "total_dwell_hours": 100.0 - i} for i, s in enumerate(steps)]},
        "critical": _critical(),
    }  # fmt: skip


def _section(page: str, name: str) -> str:
    found = re.search(rf'<section id="{name}">(.*?)</section>', page, re.S)
    assert found, f"no section {name}"
    return found.group(1)


def test_one_self_contained_document(analysis: dict) -> None:
    page = render_report(analysis)
    assert page.lstrip().startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("<html") == 1 and page.count("<body") == 1
    for external in ("http://", "https://", "src=", "<script src", "<link", "@import", "url(http"):
        assert external not in page
    assert set(re.findall(r'href="([^"]*)"', page)) <= {
        f"#{s}" for s in ("graph", "sankey", "critical", "bottlenecks", "routes", "variants",
                          "funnels", "durations", "matrix")
    }  # fmt: skip


def test_every_chart_section_has_an_svg(analysis: dict) -> None:
    page = render_report(analysis)
    for name in ("graph", "sankey", "critical", "bottlenecks", "funnels"):
        assert "<svg" in _section(page, name), name
    graph = _section(page, "graph")
    assert graph.count('class="node"') == len(analysis["meta"]["steps"])
    assert graph.count('<g class="edge') == len(analysis["transitions"])
    assert "<title>delivered → repeat_purchase: 50 times, 59 % of what follows delivered" in graph


def test_captions_state_the_numbers(analysis: dict) -> None:
    page = render_report(analysis)
    assert (
        "Journeys that pass through refund_denied have a churn rate of 41 % against 12 % for the "
        "others (+29 points, 95 % CI 26\u201332); they account for 18 % of all churn." in page
    )
    critical = _section(page, "critical")
    assert "Of 100 journeys with a known outcome, 35 are positive (base rate 35 %)" in critical
    assert "excluded: 7 where it had already happened, 3 censored" in critical
    assert "The routes diverge at event 3, after order_placed → delivered" in page
    assert (
        "journeys with churn go on to ticket_opened, those without go on to repeat_purchase" in page
    )
    assert (
        "the widest gap is at event 4: refund_denied for 51 % of journeys with churn against "
        "0 % of those without." in page
    )
    assert '<td>refund_denied</td><td class="kind-step">step</td>' in critical
    assert '<td class="num">1.2 d</td></tr>' in critical  # the time cost, 30 h
    assert "The most frequent transition is order_placed → delivered (85 times" in page
    assert "All journeys start with order_placed." in page
    assert "Of 85 journeys reaching delivered, 20 (24 %) go on to refund_denied." in page
    assert "A journey has a median of 3 events (p95 5) and lasts 1.7 d (p95 12 d)." in page


def test_step_names_are_escaped_everywhere(analysis: dict) -> None:
    page = render_report(analysis)
    assert "<b>" not in page and "refund & co" not in page
    escaped = "&lt;b&gt;refund &amp; co&lt;/b&gt;"
    for name in ("graph", "sankey", "critical", "variants", "matrix", "bottlenecks"):
        assert escaped in _section(page, name), name


def test_without_a_task_the_critical_sections_show_how_to_get_them(analysis: dict) -> None:
    analysis["critical"] = None
    page = render_report(analysis)
    for name in ("critical", "routes"):
        section = _section(page, name)
        assert "--task" in section and "<svg" not in section and "<table" not in section
    assert "<svg" in _section(page, "graph") and "Variants" in page


def test_rendering_is_deterministic_and_leaves_the_input_alone(analysis: dict) -> None:
    before = copy.deepcopy(analysis)
    assert render_report(analysis) == render_report(analysis)
    assert repr(analysis) == repr(before)  # repr: NaN != NaN would fail a plain ==


def test_missing_values_render_as_a_dash(analysis: dict) -> None:
    funnels = _section(render_report(analysis), "funnels")
    assert "nan" not in funnels.lower()
    assert "median 36 min later" in funnels


def test_write_report_writes_the_page(analysis: dict, tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.html"
    write_report(analysis, path)
    assert path.read_text(encoding="utf-8") == render_report(analysis)


def test_sankey_flows_are_exact_from_the_first_steps(analysis: dict) -> None:
    columns, flows = sankey_flows(analysis["first_steps"], depth=4, top=2)
    assert [sum(n for _, n in column) for column in columns] == [100, 95, 95, 35]
    assert columns[1] == [("delivered", 85), ("ticket_opened", 10)]
    assert columns[2][-1] == ("(other)", 10)  # refund_denied is not in the top 2 there
    for k in range(3):
        assert sum(n for (j, _, _), n in flows.items() if j == k) == sum(
            n for _, n in columns[k + 1]
        )


def test_many_steps_keep_the_graph_capped(analysis: dict) -> None:
    steps = [f"step_{i:02d}" for i in range(36)]
    analysis["meta"]["steps"] = steps
    analysis["variants"] = [{"rank": 1, "steps": steps, "journeys": 10, "share": 1.0}]
    analysis["durations"]["steps"] = [
        {
            "step": s,
            "journeys": 10,
            "median_position": i + 1,
            "median_hours_from_first": 1.0 * i,
            "p95_hours_from_first": 2.0 * i,
        }
        for i, s in enumerate(steps)
    ]
    pairs = enumerate(itertools.pairwise(steps))
    analysis["transitions"] = [
        {"from": a, "to": b, "count": 10 + i, "journeys": 10, "probability": 1.0,
         "median_hours": 1.0, "p95_hours": 2.0} for i, (a, b) in pairs
    ][::-1]  # fmt: skip
    analysis["start_steps"] = [{"step": "step_00", "journeys": 10, "share": 1.0}]
    graph = _section(render_report(analysis), "graph")
    assert graph.count('class="node"') == 36 and graph.count('<g class="edge') == 25
    assert "10 other edges hidden" in graph
    columns = {
        float(x)
        for x in re.findall(r'<g class="node"><title>[^<]*</title><rect x="([\d.]+)"', graph)
    }
    assert len(columns) == 7


def test_divergence_and_formats() -> None:
    assert divergence(["a", "b"], ["a", "b"], "churn").startswith("Journeys with and without")
    assert "at the first event" in divergence(["a"], ["b"], "churn")
    assert "those without most often end there" in divergence(["a", "b"], ["a"], "churn")
    assert [fmt_hours(h) for h in (0.6, 5.2, 74.4, 1e5, None)] == [
        "36 min", "5.2 h", "3.1 d", "4,167 d", "\u2013"
    ]  # fmt: skip
    assert [fmt_pct(s) for s in (0.41, 0.004, math.nan)] == ["41 %", "0.4 %", "\u2013"]


def test_an_empty_log_still_renders_a_page() -> None:
    meta = {"source": "x", "events": 0, "journeys": 0, "steps": [], "first_event": None,
            "last_event": None, "as_of": None, "task": None}  # fmt: skip
    page = render_report({"meta": meta, "variants": [], "transitions": [], "critical": None})
    assert page.rstrip().endswith("</html>")
    assert "No journeys to draw." in page and "No funnels are configured" in page
