"""Server-side SVG for the HTML report: number formatting and small chart builders.

Every builder takes plain names and numbers, escapes all text and returns `Markup`, so the
autoescaping Jinja template embeds the drawing as is. Nothing refers outside the page: the SVG
is inline HTML5 SVG (no xmlns URL), styled by the page's CSS classes.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from markupsafe import Markup, escape

PALETTE = (
    "#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed",
    "#0891b2", "#65a30d", "#dc2626", "#9333ea", "#ca8a04",
)  # fmt: skip
OTHER, OTHER_COLOUR = "(other)", "#9ca3af"  # bracketed, like "(ended)": no step clash
KIND_COLOURS = {"step": "#2563eb", "transition": "#d97706", "sequence": "#7c3aed"}
MINUS, DASH = "\u2212", "\u2013"  # typographic minus sign and en dash


def missing(value: object) -> bool:
    """True for None and NaN (JSON null, or NaN written by `json.dump`)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_hours(hours: float | None) -> str:
    """Hours for people: '42 s', '36 min', '5.2 h', '3.1 d', '1,204 d'."""
    if missing(hours):
        return DASH
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 24:
        return f"{hours:.1f} h" if hours < 10 else f"{hours:.0f} h"
    days = hours / 24
    return f"{days:.1f} d" if days < 10 else f"{days:,.0f} d"


def fmt_pct(share: float | None) -> str:
    """A share in [0, 1] as a percentage: '41 %', '0.4 %'."""
    if missing(share):
        return DASH
    value = 100 * share
    if 0 < abs(value) < 0.05:
        return "<0.1 %"
    return f"{value:.1f} %" if 0 < abs(value) < 1 else f"{value:.0f} %"


def fmt_int(count: float | None) -> str:
    """A count with thousands separators."""
    return DASH if missing(count) else f"{int(count):,}"


def fmt_points(value: float, decimals: int, sign: bool = False) -> str:
    """A rate difference in percentage points ('+29', '-3.5' with a minus sign)."""
    number = f"{abs(100 * value):.{decimals}f}"
    if value < 0 and number.strip("0."):
        return MINUS + number
    return ("+" if sign else "") + number


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(x: float, y: float, content: str, css: str = "", anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">'
        f"{escape(content)}</text>"
    )


def _svg(width: float, height: float, body: Sequence[str], label: str) -> Markup:
    head = (
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="{escape(label)}">'
    )
    return Markup(head + "".join(body) + "</svg>")


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


class Node(NamedTuple):
    """A step of the transition graph, in the column of its typical position (level)."""

    step: str
    count: int
    column: int
    level: int = 0


class Edge(NamedTuple):
    """A directly-follows transition of the graph."""

    source: str
    target: str
    count: int
    probability: float
    median_hours: float | None


NODE_H, ROW_PITCH, TOP, GRAPH_WIDTH, COLUMN_GAP = 36, 54, 34, 1240, 52


class _Layout(NamedTuple):
    """Where the graph's nodes go: left x and centre y per step, and the box width."""

    where: dict[str, tuple[float, float]]
    node_w: float


def transition_graph(nodes: Sequence[Node], edges: Sequence[Edge]) -> Markup:
    """Steps as boxes in columns, transitions as curves of width proportional to their count."""
    layout = _graph_layout(nodes, edges)
    rows = Counter(n.column for n in nodes)
    height = TOP + max(rows.values(), default=1) * ROW_PITCH + 40
    top_count = max((e.count for e in edges), default=1)
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#475569"/></marker></defs>'
    ]
    for rank, edge in enumerate(sorted(edges, key=lambda e: (e.count, e.source, e.target))):
        labelled = rank >= len(edges) - 6
        body.append(_edge(edge, layout, 1.2 + 10 * edge.count / top_count, labelled))
    peak = max((n.count for n in nodes), default=1) or 1
    characters = int((layout.node_w - 6) / 6.4)
    for node in nodes:
        x, y = layout.where[node.step]
        shade = 0.10 + 0.5 * node.count / peak
        middle = x + layout.node_w / 2
        body.append(
            f'<g class="node">{_title(f"{node.step}: {node.count:,} events")}'
            f'<rect x="{x:.1f}" y="{y - NODE_H / 2:.1f}" width="{layout.node_w:.1f}" '
            f'height="{NODE_H}" rx="6" fill="rgba(37,99,235,{shade:.2f})" stroke="#1e3a8a"/>'
            + _text(middle, y - 3, shorten(node.step, characters), "node-label", "middle")
            + _text(middle, y + 12, f"{node.count:,}", "node-count", "middle")
            + "</g>"
        )
    return _svg(GRAPH_WIDTH, height, body, "Transition graph")


def _graph_layout(nodes: Sequence[Node], edges: Sequence[Edge]) -> _Layout:
    """Columns spread over the width; in a column, rows by level, then by the mean row of the
    predecessors in earlier columns (weighted by count), then by count: deterministic."""
    columns = max((n.column for n in nodes), default=0) + 1
    pitch = min(240.0, (GRAPH_WIDTH - 80) / columns)
    where: dict[str, tuple[float, float]] = {}
    incoming: dict[str, list[Edge]] = {}
    for edge in edges:
        incoming.setdefault(edge.target, []).append(edge)
    for column in sorted({n.column for n in nodes}):

        def order(node: Node) -> tuple[int, float, int, str]:
            placed = [e for e in incoming.get(node.step, []) if e.source in where]
            weight = sum(e.count for e in placed)
            mean = sum(where[e.source][1] * e.count for e in placed) / weight if weight else 1e9
            return (node.level, mean, -node.count, node.step)

        members = sorted((n for n in nodes if n.column == column), key=order)
        for row, node in enumerate(members):
            where[node.step] = (40 + column * pitch, TOP + row * ROW_PITCH + NODE_H / 2)
    return _Layout(where, pitch - COLUMN_GAP)


def _edge(edge: Edge, layout: _Layout, width: float, label: bool) -> str:
    """One transition as a cubic curve with an arrow and a tooltip."""
    w = layout.node_w
    (xa, ya), (xb, yb) = layout.where[edge.source], layout.where[edge.target]
    backward = xb < xa or (xb == xa and yb < ya)
    if edge.source == edge.target:
        x, top = xa + w - 30, ya - NODE_H / 2
        points = [(x, top), (x - 6, top - 24), (x + 30, top - 24), (x + 20, top)]
    elif xb > xa:
        mid = (xa + w + xb) / 2
        points = [(xa + w, ya), (mid, ya), (mid, yb), (xb, yb)]
    elif xb == xa:
        bulge = COLUMN_GAP / 2 + abs(yb - ya) / 8
        side, bulge = (xa + w, bulge) if yb > ya else (xa, -bulge)
        points = [(side, ya), (side + bulge, ya), (side + bulge, yb), (side, yb)]
    else:
        mid = (xa + xb + w) / 2
        points = [(xa, ya + 8), (mid, ya + 40), (mid, yb + 40), (xb + w, yb + 8)]
    path = "M{:.1f},{:.1f} C{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}".format(
        *(c for point in points for c in point)
    )
    tip = (
        f"{edge.source} → {edge.target}: {edge.count:,} times, "
        f"{fmt_pct(edge.probability)} of what follows {edge.source}, "
        f"median {fmt_hours(edge.median_hours)}"
    )
    text = ""
    if label and 0 < xb - xa < 1.5 * (w + COLUMN_GAP):  # between neighbouring columns only
        mx = (points[0][0] + 3 * points[1][0] + 3 * points[2][0] + points[3][0]) / 8
        my = (points[0][1] + 3 * points[1][1] + 3 * points[2][1] + points[3][1]) / 8
        text = _text(mx, my + 4, f"{edge.count:,}", "edge-label", "middle")
    return (
        f'<g class="{"edge back" if backward else "edge"}">{_title(tip)}<path d="{path}" '
        f'stroke-width="{width:.1f}" fill="none" marker-end="url(#arrow)"/>{text}</g>'
    )


def sankey_flows(
    first_steps: dict, depth: int = 4, top: int = 6
) -> tuple[list[list[tuple[str, int]]], dict[tuple[int, str, str], int]]:
    """Columns [(label, journeys)] of the first `depth` positions (top steps, then '(other)')
    and flows {(k, label at k, label at k + 1): journeys} from the analysis' `first_steps`
    (exact counts over every journey); journeys that have ended by a position leave it."""
    totals: list[Counter[str]] = [Counter() for _ in range(depth)]
    for row in first_steps.get("nodes") or []:
        if row["position"] <= depth:
            totals[row["position"] - 1][row["step"]] += row["journeys"]
    keep = [{s for s, _ in sorted(t.items(), key=lambda i: (-i[1], i[0]))[:top]} for t in totals]

    def label(k: int, step: str) -> str:
        return step if step in keep[k] else OTHER

    columns: list[Counter[str]] = [Counter() for _ in range(depth)]
    for k, counts in enumerate(totals):
        for step, journeys in counts.items():
            columns[k][label(k, step)] += journeys
    flows: Counter[tuple[int, str, str]] = Counter()
    for row in first_steps.get("flows") or []:
        k = row["position"] - 1
        if k + 1 < depth:
            flows[k, label(k, row["from"]), label(k + 1, row["to"])] += row["journeys"]
    ordered = [sorted(c.items(), key=lambda i: (i[0] == OTHER, -i[1], i[0])) for c in columns if c]
    return ordered, dict(flows)


SANKEY_H, SANKEY_PITCH, SANKEY_NODE_W, SANKEY_GAP = 420, 300, 14, 12


def sankey(
    columns: Sequence[Sequence[tuple[str, int]]],
    flows: dict[tuple[int, str, str], int],
    colours: dict[str, str],
) -> Markup:
    """Nodes per position (label, journeys), bands between consecutive positions."""
    total = max(sum(n for _, n in columns[0]), 1) if columns else 1
    tallest = max((len(c) for c in columns), default=1)
    scale = (SANKEY_H - SANKEY_GAP * (tallest - 1)) / total
    boxes: dict[tuple[int, str], list[float]] = {}  # x, y, height, used out, used in
    body: list[str] = []
    for k, column in enumerate(columns):
        x, y = 20 + k * SANKEY_PITCH, 40.0
        body.append(_text(x, 20, f"event {k + 1}", "axis-title"))
        for label, journeys in column:
            boxes[k, label] = [x, y, journeys * scale, 0.0, 0.0]
            y += journeys * scale + SANKEY_GAP
    for (k, source, target), journeys in sorted(flows.items(), key=_flow_order(columns)):
        body.append(
            _band(
                boxes[k, source],
                boxes[k + 1, target],
                journeys * scale,
                colours.get(source, OTHER_COLOUR),
                f"{source} → {target}: {journeys:,} journeys ({fmt_pct(journeys / total)})",
            )
        )
    for k, column in enumerate(columns):
        last_y = -100.0
        for label, journeys in column:
            x, y, h, _, _ = boxes[k, label]
            tip = f"{label} at event {k + 1}: {journeys:,} journeys ({fmt_pct(journeys / total)})"
            body.append(
                f'<g>{_title(tip)}<rect x="{x}" y="{y:.1f}" width="{SANKEY_NODE_W}" '
                f'height="{max(h, 1):.1f}" fill="{colours.get(label, OTHER_COLOUR)}"/>'
            )
            if y + h / 2 - last_y >= 13:
                last_y = y + h / 2
                text = f"{shorten(label, 26)} · {fmt_pct(journeys / total)}"
                body.append(_text(x + SANKEY_NODE_W + 4, last_y + 4, text, "halo"))
            body.append("</g>")
    width = 20 + (len(columns) - 1) * SANKEY_PITCH + 240
    return _svg(width, SANKEY_H + 60, body, "Sankey diagram of the first events")


def _flow_order(columns: Sequence[Sequence[tuple[str, int]]]):
    rank = {
        (k, label): i for k, column in enumerate(columns) for i, (label, _) in enumerate(column)
    }

    def key(item: tuple[tuple[int, str, str], int]) -> tuple[int, int, int]:
        (k, source, target), _ = item
        return (k, rank[k, source], rank[k + 1, target])

    return key


def _band(source: list[float], target: list[float], h: float, colour: str, tip: str) -> str:
    """A band from the right of `source` to the left of `target`, stacking in both boxes."""
    x0, y0 = source[0] + SANKEY_NODE_W, source[1] + source[3]
    x1, y1 = target[0], target[1] + target[4]
    source[3] += h
    target[4] += h
    mid = (x0 + x1) / 2
    path = (
        f"M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f} "
        f"L{x1:.1f},{y1 + h:.1f} C{mid:.1f},{y1 + h:.1f} {mid:.1f},{y0 + h:.1f} "
        f"{x0:.1f},{y0 + h:.1f} Z"
    )
    return f'<path class="band" d="{path}" fill="{colour}">{_title(tip)}</path>'


class Interval(NamedTuple):
    """One row of the forest plot: a rate difference and its 95 % interval."""

    label: str
    kind: str
    difference: float
    low: float
    high: float


FOREST_LABEL_W, FOREST_PLOT_W, FOREST_ROW = 380, 560, 26


def forest(rows: Sequence[Interval]) -> Markup:
    """Dots at the differences, whiskers over the intervals, a zero line; in percentage points."""
    low = min([0.0, *(r.low for r in rows)])
    high = max([0.0, *(r.high for r in rows)])
    step = _nice_step((high - low) * 100)
    low, high = math.floor(low * 100 / step) * step, math.ceil(high * 100 / step) * step
    left, height = FOREST_LABEL_W + 20, 40 + len(rows) * FOREST_ROW + 30

    def x_of(points: float) -> float:
        return left + (points - low) / max(high - low, 1e-9) * FOREST_PLOT_W

    body = [_text(x_of((low + high) / 2), height - 6, "difference in rate (percentage points)",
                  "axis-title", "middle")]  # fmt: skip
    for tick in (low + i * step for i in range(round((high - low) / step) + 1)):
        css, x = ("zero" if abs(tick) < 1e-9 else "grid"), x_of(tick)
        body.append(f'<line class="{css}" x1="{x:.1f}" x2="{x:.1f}" y1="24" y2="{height - 30}"/>')
        body.append(_text(x, 16, f"{tick:+g}" if abs(tick) > 1e-9 else "0", "tick", "middle"))
    for i, row in enumerate(rows):
        y, colour = 40 + (i + 0.5) * FOREST_ROW, KIND_COLOURS.get(row.kind, OTHER_COLOUR)
        summary = (f"{fmt_points(row.difference, 1, True)} "
                   f"[{fmt_points(row.low, 1)}, {fmt_points(row.high, 1)}]")  # fmt: skip
        body.append(
            f"<g>{_title(f'{row.kind} {row.label}: {summary} points, 95 % CI in brackets')}"
            + _text(FOREST_LABEL_W - 70, y + 4, shorten(row.label, 44), "label", "end")
            + _text(FOREST_LABEL_W - 60, y + 4, row.kind, "kind", "start")
            + f'<line x1="{x_of(100 * row.low):.1f}" x2="{x_of(100 * row.high):.1f}" y1="{y}" '
            f'y2="{y}" stroke="{colour}" stroke-width="2"/><circle '
            f'cx="{x_of(100 * row.difference):.1f}" cy="{y}" r="5" fill="{colour}"/>'
            + _text(left + FOREST_PLOT_W + 12, y + 4, summary, "value")
            + "</g>"
        )
    return _svg(left + FOREST_PLOT_W + 170, height, body, "Forest plot of rate differences")


def _nice_step(span: float) -> float:
    """A round tick step giving about 5 to 10 ticks over `span`."""
    raw = max(span, 1e-9) / 6
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


class Bar(NamedTuple):
    """One bar of a horizontal bar chart."""

    label: str
    value: float
    text: str
    tooltip: str = ""


def hbars(bars: Sequence[Bar], label_width: int = 300, bar_width: int = 480) -> Markup:
    """Horizontal bars, longest = `bar_width`, with the label left and `text` right."""
    peak = max((b.value for b in bars if not missing(b.value)), default=0.0) or 1.0
    body = []
    for i, bar in enumerate(bars):
        y = 8 + i * 28
        length = 0.0 if missing(bar.value) else max(bar.value / peak * bar_width, 1.0)
        body.append(
            f"<g>{_title(bar.tooltip or bar.text)}"
            + _text(label_width - 10, y + 15, shorten(bar.label, 48), "label", "end")
            + f'<rect class="bar" x="{label_width}" y="{y}" width="{length:.1f}" height="20"/>'
            + _text(label_width + length + 8, y + 15, bar.text, "value")
            + "</g>"
        )
    return _svg(label_width + bar_width + 420, 16 + len(bars) * 28, body, "Bar chart")
