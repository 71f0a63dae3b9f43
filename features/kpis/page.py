"""The KPI page of `journeyguard kpis`: one self-contained HTML file from `kpis.json`.

Per KPI a caption in words, an inline SVG of the value of every group with its 95 % interval as
a whisker (the overall value as a dashed line), and a table of the numbers. Same CSS and
formatting as the analysis report; no external references.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from journeyguard.features.analysis.report import page_environment
from journeyguard.features.analysis.svg import (
    DASH,
    PALETTE,
    fmt_hours,
    fmt_int,
    fmt_pct,
    missing,
    shorten,
)

TITLES = {
    "csat": "CSAT (mean score)",
    "nps": "NPS",
    "resolution": "Resolution time (Kaplan-Meier median)",
    "churn": "Churn rate",
    "repeat": "Repeat purchase rate",
}
LABEL_W, PLOT_W, ROW_H = 260, 520, 24
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"


def write_kpis(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """kpis.json and kpis.html into `out` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "kpis.json", out / "kpis.html"
    json_path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    html_path.write_text(render_kpis(result), encoding="utf-8")
    return json_path, html_path


def render_kpis(result: dict[str, Any]) -> str:
    """The page as one complete HTML document."""
    sections = [_section(name, kpi) for name, kpi in result["kpis"].items()]
    template = page_environment(TEMPLATE_DIR).get_template("kpis.html.j2")
    return template.render(
        meta=result["meta"], sections=sections, variants=result["variants"], cell=cell
    )


def fmt_value(name: str, value: float | None) -> str:
    """A KPI's headline value in its unit: a score, NPS points, hours or a share."""
    if missing(value):
        return DASH
    if name == "csat":
        return f"{value:.2f}"
    if name == "nps":
        return f"{value:+.0f}"
    if name == "resolution":
        return fmt_hours(value)
    return fmt_pct(value)


def summary_lines(result: dict[str, Any]) -> list[str]:
    """One line per KPI for the terminal."""
    lines = []
    for name, kpi in result["kpis"].items():
        if not kpi["available"]:
            lines.append(f"  {name:<11} unavailable: {kpi['reason']}")
            continue
        lines.append(f"  {name:<11} {_overall_text(name, kpi)}")
    return lines


def _overall_text(name: str, kpi: dict[str, Any]) -> str:
    o = kpi["overall"]
    text = (
        f"{fmt_value(name, o['value'])} [{fmt_value(name, o['ci_low'])}, "
        f"{fmt_value(name, o['ci_high'])}] n = {fmt_int(o['n'])}"
    )
    if name == "csat":
        text += f", {fmt_pct(o['share_satisfied'])} satisfied"
    if name == "resolution":
        text += (
            f" ({fmt_int(o['resolved'])} resolved, {fmt_int(o['censored'])} open/censored; "
            f"p90 {fmt_hours(o['p90_hours'])}; median of resolved only "
            f"{fmt_hours(o['resolved_median_hours'])})"
        )
    if name == "repeat":
        text += f"; {fmt_int(kpi['excluded_open_window'])} excluded, window still open"
    return text


def _section(name: str, kpi: dict[str, Any]) -> dict[str, Any]:
    title = TITLES.get(name, name)
    if not kpi["available"]:
        return {"name": name, "title": title, "available": False, "reason": kpi["reason"]}
    rows = [
        row
        | {
            "shown": fmt_value(name, row["value"]),
            "interval": f"{fmt_value(name, row['ci_low'])} to {fmt_value(name, row['ci_high'])}",
        }
        for row in [kpi["overall"], *kpi["groups"]]
    ]
    caption = f"Overall {_overall_text(name, kpi)}; unit: {kpi['unit']}."
    if kpi["groups"] and len(kpi["groups"]) > 1:
        caption += f" Groups by {kpi['time']} (time) or the unit's value/variant."
    chart = interval_chart(name, kpi["groups"], kpi["overall"]["value"]) if kpi["groups"] else None
    return {
        "name": name,
        "title": title,
        "available": True,
        "caption": caption,
        "svg": chart,
        "rows": rows,
        "extra": _extra_columns(name),
    }


def _extra_columns(name: str) -> list[tuple[str, str]]:
    """(key, header) of the per-KPI columns of the table."""
    return {
        "csat": [("share_satisfied", "Satisfied")],
        "nps": [("share_promoters", "Promoters"), ("share_detractors", "Detractors")],
        "resolution": [
            ("resolved", "Resolved"),
            ("censored", "Open (censored)"),
            ("p90_hours", "KM p90"),
            ("resolved_median_hours", "Median of resolved"),
        ],
        "churn": [("positives", "Churned")],
        "repeat": [("positives", "Repeated")],
    }.get(name, [])


def interval_chart(name: str, groups: list[dict[str, Any]], overall: float | None) -> Markup:
    """A dot per group at its value, a whisker over its interval, the overall value dashed."""
    values = [v for g in groups for v in (g["value"], g["ci_low"], g["ci_high"]) if not missing(v)]
    if not values:
        return Markup("")
    low, high = min(values), max(values)
    if name in ("churn", "repeat"):
        low, high = min(low, 0.0), max(high, 0.0)
    span = high - low or 1.0
    low, high = low - 0.05 * span, high + 0.05 * span

    def x_of(value: float) -> float:
        return LABEL_W + (value - low) / (high - low) * PLOT_W

    height = 30 + len(groups) * ROW_H + 10
    body = [
        _text(LABEL_W, 14, fmt_value(name, low), "tick", "start"),
        _text(LABEL_W + PLOT_W, 14, fmt_value(name, high), "tick", "end"),
    ]
    if not missing(overall):
        x = x_of(overall)
        body.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="20" y2="{height - 6}" '
            f'stroke-dasharray="4 3"/>'
        )
    for i, group in enumerate(groups):
        y, colour = 30 + (i + 0.5) * ROW_H, PALETTE[0]
        value, a, b = (fmt_value(name, group[k]) for k in ("value", "ci_low", "ci_high"))
        tip = f"{group['group']}: {value} [{a}, {b}], n = {fmt_int(group['n'])}"
        parts = [f"<g><title>{escape(tip)}</title>"]
        parts.append(_text(LABEL_W - 10, y + 4, shorten(str(group["group"]), 36), "label", "end"))
        if not missing(group["ci_low"]) and not missing(group["ci_high"]):
            a, b = x_of(group["ci_low"]), x_of(group["ci_high"])
            parts.append(
                f'<line x1="{a:.1f}" x2="{b:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="{colour}" stroke-width="2"/>'
            )
        if not missing(group["value"]):
            parts.append(
                f'<circle cx="{x_of(group["value"]):.1f}" cy="{y:.1f}" r="4.5" fill="{colour}"/>'
            )
        parts.append(_text(LABEL_W + PLOT_W + 10, y + 4, f"n = {fmt_int(group['n'])}", "tick"))
        body.append("".join(parts) + "</g>")
    width = LABEL_W + PLOT_W + 90
    head = (
        f'<svg class="chart" viewBox="0 0 {width} {height:.0f}" width="{width}" '
        f'height="{height:.0f}" role="img" aria-label="{escape(TITLES.get(name, name))} by group">'
    )
    return Markup(head + "".join(body) + "</svg>")


def _text(x: float, y: float, content: str, css: str, anchor: str = "start") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{css}" text-anchor="{anchor}">'
        f"{escape(content)}</text>"
    )


def cell(name: str, key: str, value: Any) -> str:
    """A table cell of an extra column: counts, shares or hours."""
    if missing(value):
        return DASH
    if key.endswith("hours"):
        return fmt_hours(value)
    if key.startswith("share"):
        return fmt_pct(value)
    return fmt_int(value) if isinstance(value, int) or float(value).is_integer() else f"{value:g}"
