"""The HTML report of `journeyguard analyze`: one self-contained page from `analysis.json`.

`render_report` turns the analysis dictionary (see docs/analysis-format.md) into a page with
inline CSS and server-drawn inline SVG (`features.analysis.svg`), so it opens offline. Each
section gets a caption stating its finding in words computed from the numbers; tables are
formatted by the template (`templates/report.html.j2`), rendered with autoescaping on.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import jinja2

from journeyguard.features.analysis import svg as svg
from journeyguard.features.analysis.svg import (
    DASH,
    fmt_hours,
    fmt_int,
    fmt_pct,
    fmt_points,
    missing,
)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
MAX_EDGES, SANKEY_DEPTH, FOREST_PER_KIND, MAX_GRAPH_COLUMNS = 25, 4, 5, 7
ENDED, MATRIX_MIN_SHARE = "(ended)", 0.005


def render_report(analysis: dict) -> str:
    """The report as one complete HTML document with no external references."""
    return (
        page_environment(TEMPLATE_DIR)
        .get_template("report.html.j2")
        .render(**build_context(analysis))
    )


def write_report(analysis: dict, path: Path) -> None:
    """Renders the report and writes it to `path` (UTF-8), creating the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(analysis), encoding="utf-8")


@functools.cache
def page_environment(templates: Path) -> jinja2.Environment:
    """The report pages' environment for the templates in `templates` (the report's, the KPI
    page's). Autoescape on for every template (select_autoescape would miss the '.j2' suffix).
    Compiled templates are cached in the user's temporary folder (Jinja's own cache, keyed
    by the template's checksum): compiling the report's template is a large part of a
    one-shot command's time."""
    loader = jinja2.FileSystemLoader(templates)
    environment = jinja2.Environment(
        loader=loader,
        autoescape=True,
        trim_blocks=True,
        bytecode_cache=_bytecode_cache(),
    )
    environment.undefined, environment.lstrip_blocks = jinja2.StrictUndefined, True
    filters = {"hours": fmt_hours, "pct": fmt_pct, "int": fmt_int, "points": fmt_points}
    environment.filters.update(filters, heat=_heat)
    return environment


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """Jinja's cache in the temporary folder; none where that folder is unsafe or unwritable."""
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):
        return None


def build_context(analysis: dict) -> dict[str, Any]:
    """The template's variables: one entry per section, captions already in words."""
    critical = analysis.get("critical")
    return {
        "meta": analysis.get("meta") or {},
        "graph": _graph_section(analysis),
        "sankey": _sankey_section(analysis),
        "critical": _critical_section(critical) if critical else None,
        "paths": _paths_section(critical) if critical else None,
        "bottlenecks": _bottleneck_section(analysis.get("bottlenecks") or {}),
        "variants": _variants_section(
            analysis.get("variants") or [], (analysis.get("meta") or {}).get("variants")
        ),
        "funnels": [_funnel(f) for f in analysis.get("funnels") or []],
        "durations": _durations_section(analysis.get("durations") or {}),
        "matrices": _matrices(analysis),
    }


def step_counts(analysis: dict) -> dict[str, int]:
    """Events per step: each event either starts its journey or directly follows another."""
    counts: Counter[str] = Counter()
    for row in analysis.get("start_steps") or []:
        counts[row["step"]] += row["journeys"]
    for row in analysis.get("transitions") or []:
        counts[row["to"]] += row["count"]
    return dict(counts)


def step_columns(analysis: dict, counts: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(column, level) per step: the level is the median position of the step's first
    occurrence in a journey (from `durations`), the levels merged into MAX_GRAPH_COLUMNS
    columns; steps without one go right of their most frequent predecessor."""
    rows = (analysis.get("durations") or {}).get("steps") or []
    median = {
        row["step"]: round(row["median_position"]) - 1
        for row in rows
        if row.get("median_position") is not None
    }
    for row in analysis.get("transitions") or []:  # by count: the most frequent first
        if row["to"] not in median and row["from"] in median:
            median[row["to"]] = median[row["from"]] + 1
    for step in (analysis.get("meta") or {}).get("steps") or []:
        median.setdefault(step, max(median.values(), default=-1) + 1)
    column = _merge_levels(median, counts)
    return {step: (column[value], value) for step, value in median.items()}


def _merge_levels(level: dict[str, int], counts: dict[str, int]) -> dict[int, int]:
    """Columns for the position levels: while there are too many, the adjacent pair with the
    fewest events merges (the rightmost on ties), unless that makes a column taller than both
    the tallest so far and an even share plus two: rare steps share columns, the busy main
    flow stays spread out, and no column grows much taller than it must."""
    groups = [[value] for value in sorted(set(level.values()))]
    steps, events = Counter(level.values()), Counter()
    for step, value in level.items():
        events[value] += counts.get(step, 0)

    def size(group: list[int]) -> tuple[int, int]:
        return sum(steps[v] for v in group), sum(events[v] for v in group)

    even = -(-len(level) // MAX_GRAPH_COLUMNS) + 2
    while len(groups) > MAX_GRAPH_COLUMNS:
        cap = max(even, *(size(group)[0] for group in groups))
        merged = [size(a + b) for a, b in itertools.pairwise(groups)]
        costs = [(rows > cap, traffic, rows, -i) for i, (rows, traffic) in enumerate(merged)]
        i = -min(costs)[3]
        groups[i : i + 2] = [groups[i] + groups[i + 1]]
    return {value: column for column, group in enumerate(groups) for value in group}


def _graph_section(analysis: dict) -> dict[str, Any]:
    transitions = analysis.get("transitions") or []
    counts = step_counts(analysis)
    columns = step_columns(analysis, counts)
    nodes = [svg.Node(step, counts.get(step, 0), *columns[step]) for step in sorted(columns)]
    keys = ("from", "to", "count", "probability", "median_hours")
    edges = [svg.Edge(*(t.get(key) for key in keys)) for t in transitions[:MAX_EDGES]]
    parts = []
    if transitions:
        top = transitions[0]
        parts.append(
            f"The most frequent transition is {top['from']} → {top['to']} "
            f"({fmt_int(top['count'])} times, {fmt_pct(top['probability'])} of what "
            f"follows {top['from']}, median {fmt_hours(top.get('median_hours'))})."
        )
    for key, verb in (("start_steps", "start with"), ("end_steps", "end with")):
        if rows := analysis.get(key):
            parts.append(f"{fmt_pct(rows[0]['share'])} of journeys {verb} {rows[0]['step']}.")
    drawing, shown, total = svg.transition_graph(nodes, edges), len(edges), len(transitions)
    return {"svg": drawing, "caption": " ".join(parts), "shown": shown, "total": total}


def _sankey_section(analysis: dict) -> dict[str, Any]:
    positions = len((analysis.get("step_matrix") or {}).get("positions") or []) or SANKEY_DEPTH
    columns, flows = svg.sankey_flows(
        analysis.get("first_steps") or {}, min(SANKEY_DEPTH, positions)
    )
    if not columns:
        return {"svg": None, "caption": "No journeys to draw."}
    total = sum(n for _, n in columns[0])
    steps = (analysis.get("meta") or {}).get("steps") or sorted({s for c in columns for s, _ in c})
    colours = {s: svg.PALETTE[i % len(svg.PALETTE)] for i, s in enumerate(steps)}
    start, count = columns[0][0]
    share = "All" if count == total else f"{fmt_pct(count / total)} of"
    parts = [f"{share} journeys start with {start}."]
    if flows:
        (_, a, b), n = max(flows.items(), key=lambda i: (i[0][0] == 0, i[1]))
        parts.append(f"The most common opening is {a} → {b} ({fmt_pct(n / total)} of journeys).")
    ended = 1 - sum(n for _, n in columns[-1]) / total
    parts.append(f"{fmt_pct(ended)} of journeys have ended before event {len(columns)}.")
    return {"svg": svg.sankey(columns, flows, colours), "caption": " ".join(parts)}


def item_phrase(item: str, kind: str) -> str:
    """How journeys relate to an item, in words: 'pass through x', 'repeat x', ..."""
    if kind == "transition":
        source, _, target = item.partition(" → ")
        return f"go directly from {source} to {target}"
    if kind == "sequence":
        source, _, target = item.partition(" … ")
        return f"repeat {source}" if source == target else f"have {source} and later {target}"
    return f"pass through {item}"


def finding(item: dict, task: str) -> str:
    """The headline of one ranked item: both rates, the difference with its interval, and
    its share of all positives."""
    decimals = 0 if abs(item["difference"]) >= 0.1 else 1
    low, high = fmt_points(item["ci_low"], decimals), fmt_points(item["ci_high"], decimals)
    interval = f"{low}{DASH}{high}" if item["ci_low"] >= 0 else f"{low} to {high}"
    text = (
        f"Journeys that {item_phrase(item['item'], item['kind'])} have a {task} rate of "
        f"{fmt_pct(item['rate_with'])} against {fmt_pct(item['rate_without'])} for the "
        f"others ({fmt_points(item['difference'], decimals, sign=True)} points, 95 % CI "
        f"{interval}); they account for {fmt_pct(item['share_of_positives'])} of all {task}."
    )
    if item["ci_low"] <= 0 <= item["ci_high"]:
        text += " The interval includes zero: this may be chance."
    return text


def _critical_section(critical: dict) -> dict[str, Any]:
    task, match = str(critical.get("task") or "outcome"), critical.get("match") or []
    if isinstance(match, dict):
        what = "; ".join(f"{c} in {', '.join(map(str, v))}" for c, v in match.items())
    else:
        what = ", ".join(map(str, match))
    verb = "does not occur" if critical.get("label") == "absent" else "occurs"
    horizon = fmt_hours(critical.get("horizon_hours"))
    excluded = critical.get("excluded") or {}
    base = (
        f"Task {task}: positive when {what} {verb} within {horizon} after {critical.get('as_of')}. "
        f"Of {fmt_int(critical.get('journeys'))} journeys with a known outcome, "
        f"{fmt_int(critical.get('positives'))} are positive (base rate "
        f"{fmt_pct(critical.get('rate'))}); excluded: "
        f"{fmt_int(excluded.get('already_happened', 0))} where it had already happened, "
        f"{fmt_int(excluded.get('censored', 0))} censored."
    )
    kinds = ("steps", "transitions", "sequences")
    items = [dict(row) for kind in kinds for row in (critical.get(kind) or [])[:FOREST_PER_KIND]]
    items.sort(key=lambda i: (-i["difference"], i["kind"], i["item"]))
    for item in items:  # an earlier analysis-format.md named the time cost median_dwell_hours
        item.setdefault("time_cost_hours", item.get("median_dwell_hours"))
    if not items:
        return {
            "base": base,
            "finding": "No item has enough support.",
            "svg": None,
            "rows": [],
            "effects": [],
        }
    keys = ("item", "kind", "difference", "ci_low", "ci_high")
    plot = svg.forest([svg.Interval(*(i[key] for key in keys)) for i in items])
    effects = kpi_effect_rows(critical.get("steps") or [])
    return {
        "base": base,
        "finding": finding(items[0], task),
        "svg": plot,
        "rows": items,
        "effects": effects,
    }


def kpi_effect_rows(steps: list[dict]) -> list[dict[str, Any]]:
    """Critical steps with their effect on CSAT, NPS and resolution time, formatted; empty
    when the analysis has none (no KPI columns, or an older analysis.json)."""
    rows = []
    for step in steps[: FOREST_PER_KIND * 2]:
        if all(missing(step.get(f"{k}_with")) for k in ("csat", "nps", "resolution_hours")):
            continue

        def pair(key: str, fmt: Any, step: dict = step) -> str:
            base = key.removesuffix("_hours")
            with_, without = step.get(f"{key}_with"), step.get(f"{key}_without")
            n_with, n_without = step.get(f"{base}_n_with"), step.get(f"{base}_n_without")
            if missing(with_) and missing(without):
                return DASH
            return f"{fmt(with_)} (n {fmt_int(n_with)}) vs {fmt(without)} (n {fmt_int(n_without)})"

        rows.append(
            {
                "item": step["item"],
                "rate": f"{fmt_pct(step['rate_with'])} vs {fmt_pct(step['rate_without'])}",
                "csat": pair("csat", lambda v: DASH if missing(v) else f"{v:.2f}"),
                "nps": pair("nps", lambda v: DASH if missing(v) else f"{v:+.0f}"),
                "resolution": pair("resolution_hours", fmt_hours),
            }
        )
    return rows


def _bottleneck_section(bottlenecks: dict) -> dict[str, Any]:
    transitions, steps = (bottlenecks.get(k) or [] for k in ("transitions", "steps"))
    bars = [
        svg.Bar(
            f"{t['from']} → {t['to']}",
            t["total_hours"],
            f"{fmt_hours(t['total_hours'])} in all · median {fmt_hours(t['median_hours'])} · "
            f"p95 {fmt_hours(t['p95_hours'])} · n = {fmt_int(t['count'])}",
        )
        for t in transitions[:10]
    ]
    parts = []
    if transitions:
        t = transitions[0]
        parts.append(
            f"Most waiting time is spent between {t['from']} and {t['to']}: "
            f"{fmt_hours(t['total_hours'])} in all over {fmt_int(t['count'])} transitions "
            f"(median {fmt_hours(t['median_hours'])}, p95 {fmt_hours(t['p95_hours'])})."
        )
    if steps:
        s = steps[0]
        parts.append(
            f"Journeys wait longest after {s['step']}: {fmt_hours(s['total_dwell_hours'])} "
            f"in all, a median of {fmt_hours(s['median_dwell_hours'])} per visit."
        )
    drawing = svg.hbars(bars) if bars else None
    return {"svg": drawing, "caption": " ".join(parts), "steps": steps[:10]}


def _paths_section(critical: dict) -> dict[str, Any]:
    task, paths = str(critical.get("task") or "outcome"), critical.get("paths") or {}
    sides = [
        {"key": key, "title": f"{word} {task}", **(paths.get(key) or {})}
        for key, word in (("positive", "with"), ("negative", "without"))
    ]
    positive, negative = ([r["step"] for r in side.get("route") or []] for side in sides)
    caption, gaps = divergence(positive, negative, task), paths.get("divergence") or []
    if steps := [g for g in gaps if not g["step"].startswith("(")]:
        gap = max(steps, key=lambda g: (g["difference"], -g["position"]))
        caption += (
            f" Event by event, the widest gap is at event {gap['position']}: {gap['step']} for "
            f"{fmt_pct(gap['share_positive'])} of journeys with {task} against "
            f"{fmt_pct(gap['share_negative'])} of those without."
        )
    common = _shared_length(positive, negative)
    return {"sides": sides, "common": common, "caption": caption, "gaps": gaps, "task": task}


def _shared_length(first: list[str], second: list[str]) -> int:
    common = 0
    while common < min(len(first), len(second)) and first[common] == second[common]:
        common += 1
    return common


def divergence(positive: list[str], negative: list[str], task: str) -> str:
    """Where the most frequent routes of journeys with and without the outcome part."""
    if positive == negative:
        return (
            f"Journeys with and without {task} follow the same most frequent route; "
            f"the difference lies in the items ranked above."
        )
    common = _shared_length(positive, negative)
    if common == 0:
        shared = "at the first event"
    elif common <= 3:
        shared = f"after {' → '.join(positive[:common])}"
    else:
        shared = f"after {common} shared steps (… → {' → '.join(positive[common - 2 : common])})"

    def next_of(route: list[str]) -> str:
        return f"go on to {route[common]}" if common < len(route) else "most often end there"

    return (
        f"The routes diverge at event {common + 1}, {shared}: journeys with {task} "
        f"{next_of(positive)}, those without {next_of(negative)}."
    )


def _variants_section(variants: list[dict], total: int | None) -> dict[str, Any]:
    """The top variants; `total` counts them all (analysis.json keeps the top ones only)."""
    top, caption, total = variants[:10], "", total or len(variants)
    if top:
        which = "All" if len(top) == total else f"The {len(top)} most common of"
        caption = (
            f"{which} {fmt_int(total)} variants cover "
            f"{fmt_pct(sum(v['share'] for v in top))} of journeys; the most common "
            f"({len(top[0]['steps'])} steps) is followed by {fmt_pct(top[0]['share'])}."
        )
    return {"rows": top, "caption": caption}


def _funnel(funnel: dict) -> dict[str, Any]:
    stages, bars, caption = funnel.get("stages") or [], [], ""
    for i, s in enumerate(stages):
        text = f"{fmt_int(s['journeys'])} · {fmt_pct(s['conversion'])} convert"
        if i:
            median = fmt_hours(s.get("median_hours_from_previous"))
            text += f" · {fmt_int(s['drop_off'])} drop off · median {median} later"
        bars.append(svg.Bar(f"{i + 1}. {s['step']}", s["journeys"], text))
    if stages:
        first, last = stages[0], stages[-1]
        overall = last["journeys"] / first["journeys"] if first["journeys"] else 0.0
        caption = (
            f"Of {fmt_int(first['journeys'])} journeys reaching {first['step']}, "
            f"{fmt_int(last['journeys'])} ({fmt_pct(overall)}) go on to {last['step']}."
        )
    if len(stages) > 1:
        worst = min(stages[1:], key=lambda s: s["conversion"])
        caption += (
            f" The weakest stage is {worst['step']}: {fmt_pct(worst['conversion'])} "
            f"convert, {fmt_int(worst['drop_off'])} drop off."
        )
    return {
        "name": funnel.get("name", ""),
        "svg": svg.hbars(bars) if bars else None,
        "caption": caption,
    }


def _durations_section(durations: dict) -> dict[str, Any]:
    journey, steps, parts = durations.get("journey") or {}, durations.get("steps") or [], []
    if journey:
        parts.append(
            f"A journey has a median of {journey['events_median']:g} events (p95 "
            f"{journey['events_p95']:g}) and lasts {fmt_hours(journey['duration_median_hours'])} "
            f"(p95 {fmt_hours(journey['duration_p95_hours'])})."
        )
    if timed := [s for s in steps if not missing(s.get("median_hours_from_first"))]:
        late = max(timed, key=lambda s: s["median_hours_from_first"])
        parts.append(
            f"{late['step']} comes latest: a median of "
            f"{fmt_hours(late['median_hours_from_first'])} after the first event."
        )
    return {"rows": steps, "caption": " ".join(parts)}


def _matrices(analysis: dict) -> list[dict[str, Any]]:
    matrices = []
    if (plain := analysis.get("step_matrix")) and plain.get("rows"):
        matrices.append(_matrix("The k-th event of each journey", plain, None))
    if (anchored := analysis.get("anchored_step_matrix")) and anchored.get("rows"):
        anchor, journeys = anchored.get("anchor"), fmt_int(anchored.get("journeys"))
        title = f"Around the first {anchor} ({journeys} journeys)"
        matrices.append(_matrix(title, anchored, anchor))
    return matrices


def _matrix(title: str, matrix: dict, anchor: str | None) -> dict[str, Any]:
    positions = list(matrix.get("positions") or [])
    rows = sorted(matrix["rows"], key=_matrix_order)
    steps = [r for r in rows if not r["step"].startswith("(")]
    columns = [positions.index(p) for p in (-1, 1) if p in positions] if anchor else [0]
    parts = []
    for column in columns if steps and positions else []:
        leader = max(steps, key=lambda r: (r["shares"][column], r["step"]))
        where = f"position {positions[column]}"
        if anchor:
            where = f"the event {'before' if positions[column] < 0 else 'after'} the first {anchor}"
        share = fmt_pct(leader["shares"][column])
        parts.append(f"At {where}, {leader['step']} is the most common step ({share}).")
    ended = next((r for r in rows if r["step"] == ENDED), None)
    if ended and positions and anchor is None:
        parts.append(f"By position {positions[-1]}, {fmt_pct(ended['shares'][-1])} have ended.")
    shown = [r for r in rows if r["step"].startswith("(") or _peak(r) >= MATRIX_MIN_SHARE]
    if hidden := len(rows) - len(shown):
        parts.append(
            f"{hidden} rare steps, under {fmt_pct(MATRIX_MIN_SHARE)} everywhere, are left out."
        )
    return {"title": title, "positions": positions, "rows": shown, "caption": " ".join(parts)}


def _peak(row: dict) -> float:
    return max((s for s in row["shares"] if not missing(s)), default=0.0)


def _matrix_order(row: dict) -> tuple[bool, int, float, str]:
    """Rows by the position where they peak, then by the height of the peak; '(...)' last."""
    shares = [0.0 if missing(s) else s for s in row["shares"]] or [0.0]
    peak = max(range(len(shares)), key=lambda i: (shares[i], -i))
    return (row["step"].startswith("("), peak, -shares[peak], row["step"])


def _heat(share: float | None) -> str:
    """Inline style of a heat-map cell: blue with the share as opacity."""
    value = 0.0 if missing(share) else min(max(float(share), 0.0), 1.0)
    return f"background:rgba(37,99,235,{value:.3f});color:{'#fff' if value > 0.55 else '#111'}"
