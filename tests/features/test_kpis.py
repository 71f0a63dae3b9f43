"""KPIs on tiny hand-computed logs, the CLI, and the critical steps' KPI effects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from journeyguard.features.analysis.critical import critical_path_analysis
from journeyguard.features.cli import app
from journeyguard.features.config.model import KpiConfig
from journeyguard.features.config.reader import load_config, parse_config
from journeyguard.features.eventlog.frames import log_from_frame
from journeyguard.features.eventlog.log import EventLog
from journeyguard.features.kpis.compute import Grouping, compute_kpis, parse_grouping
from journeyguard.features.measures import kaplan_meier
from journeyguard.features.sources.simulate import simulate

T0 = pd.Timestamp("2025-01-10", tz="UTC")
HOUR, DAY = pd.Timedelta(hours=1), pd.Timedelta(days=1)


def log_of(rows: list[tuple], columns: tuple[str, ...] = ()) -> EventLog:
    """Rows (journey, time, event, *columns) as a log."""
    names = ["customer_id", "timestamp", "event", *columns]
    return log_from_frame(pd.DataFrame(rows, columns=names))


def config(kpis: str = "", tasks: str = "") -> object:
    text = f'[source]\npath = "events.parquet"\n{tasks}\n{kpis}'
    import tomllib

    return parse_config(tomllib.loads(text), Path("/tmp/kpis-test.toml"))


DEFAULTS = parse_config({"source": {"path": "x.parquet"}}, Path("/tmp/defaults.toml"))


def test_csat_mean_t_interval_and_satisfied_share():
    rows = [(j, T0 + i * HOUR, "csat_submitted", s) for i, (j, s) in enumerate(
        [("a", 5.0), ("a", 4.0), ("b", 3.0), ("c", 4.0), ("c", 9.0)]  # 9: off the scale
    )]  # fmt: skip
    kpi = compute_kpis(log_of(rows, ("score",)), DEFAULTS)["kpis"]["csat"]["overall"]
    half = 3.182446305284263 * np.sqrt(2 / 3) / 2  # t(0.975, 3) * sd / sqrt(n)
    assert kpi["n"] == 4 and kpi["value"] == pytest.approx(4.0)
    assert (kpi["ci_low"], kpi["ci_high"]) == pytest.approx((4 - half, 4 + half))
    assert kpi["satisfied"] == 3 and kpi["share_satisfied"] == 0.75


@pytest.mark.parametrize(
    ("scores", "promoters", "detractors"),
    [([6, 7, 8, 9, 9], 2, 1), ([0, 6, 6, 10], 1, 3), ([7, 8, 8, 7], 0, 0), ([9, 10], 2, 0)],
)
def test_nps_edges(scores, promoters, detractors):
    rows = [("a", T0 + i * HOUR, "nps_submitted", float(s)) for i, s in enumerate(scores)]
    kpi = compute_kpis(log_of(rows, ("score",)), DEFAULTS)["kpis"]["nps"]["overall"]
    n = len(scores)
    p, d = promoters / n, detractors / n
    assert (kpi["promoters"], kpi["detractors"], kpi["n"]) == (promoters, detractors, n)
    assert kpi["value"] == pytest.approx(100 * (p - d))
    half = 100 * 1.959963984540054 * np.sqrt((p + d - (p - d) ** 2) / n)
    assert kpi["ci_low"] == pytest.approx(max(100 * (p - d) - half, -100))


def tickets(open_case: bool) -> EventLog:
    rows = [
        ("a", T0, "ticket_opened", "T1"),
        ("a", T0 + 2 * HOUR, "ticket_resolved", "T1"),
        ("b", T0 - HOUR, "ticket_resolved", "T2"),  # an end before the start: ignored
        ("b", T0, "ticket_opened", "T2"),
        ("b", T0 + HOUR, "ticket_opened", "T2"),  # a second start: the first one counts
        ("b", T0 + 4 * HOUR, "ticket_resolved", "T2"),
        ("d", T0 + 10 * HOUR, "note", None),  # the data (and as_of) end at 10 h
    ]
    if open_case:
        rows.append(("c", T0, "ticket_opened", "T3"))  # still open at 10 h: censored
    return log_of(rows, ("case_id",))


def test_a_censored_open_case_changes_the_kaplan_meier_median():
    closed = compute_kpis(tickets(False), DEFAULTS)["kpis"]["resolution"]["overall"]
    # Resolved in 2 h and 4 h only: S(2 h) = 1/2, the median is 2 h.
    assert (closed["value"], closed["resolved"], closed["censored"]) == (2.0, 2, 0)
    with_open = compute_kpis(tickets(True), DEFAULTS)["kpis"]["resolution"]["overall"]
    # With the case open for 10 h at risk: S(2 h) = 2/3, S(4 h) = 1/3, the median is 4 h;
    # the plain median of resolved cases stays (2 + 4) / 2.
    assert (with_open["value"], with_open["resolved"], with_open["censored"]) == (4.0, 2, 1)
    assert with_open["resolved_median_hours"] == 3.0 and with_open["n"] == 3
    assert with_open["p90_hours"] is None  # S never reaches 0.1


def test_kaplan_meier_ties_and_groups():
    # Group 0: 1, 1, 2 (censored), 3 -> S(1) = 1/2 -> median 1; p90: S(3) = 0 -> 3.
    # Group 1: 5, 6 (censored) -> S(5) = 1/2 -> median 5, p90 never.
    durations = np.array([1.0, 1.0, 2.0, 3.0, 5.0, 6.0])
    resolved = np.array([True, True, False, True, True, False])
    result = kaplan_meier(durations, resolved, np.array([0, 0, 0, 0, 1, 1]), 2)
    assert result["median"].tolist() == [1.0, 5.0]
    assert result["p90"][0] == 3.0 and np.isnan(result["p90"][1])


def purchases() -> EventLog:
    return log_of(
        [
            ("a", T0, "order_placed", 10.0),
            ("a", T0 + 30 * DAY, "repeat_purchase", 5.0),  # within 90 d: repeated
            ("b", T0, "order_placed", 10.0),
            ("b", T0 + 100 * DAY, "repeat_purchase", 5.0),  # too late
            ("c", T0 + DAY, "order_placed", 10.0),
            ("c", T0 + DAY, "repeat_purchase", 1.0),  # same time: not a later purchase
            ("d", T0 + 50 * DAY, "order_placed", 10.0),  # window open at the end (day 120)
            ("e", T0 + 120 * DAY, "delivered", np.nan),
        ],
        ("value",),
    )


def test_repeat_purchase_excludes_open_windows():
    kpi = compute_kpis(purchases(), DEFAULTS)["kpis"]["repeat"]
    assert kpi["excluded_open_window"] == 1
    assert (kpi["overall"]["n"], kpi["overall"]["positives"]) == (3, 1)
    assert kpi["overall"]["value"] == pytest.approx(1 / 3)


def test_repeat_purchase_by_cohort_month():
    kpi = compute_kpis(purchases(), DEFAULTS, Grouping("month"))["kpis"]["repeat"]
    assert [(g["group"], g["n"], g["positives"]) for g in kpi["groups"]] == [("2025-01", 3, 1)]
    csat = [
        ("a", pd.Timestamp("2025-01-31T23:00Z"), "csat_submitted", 5.0),
        ("b", pd.Timestamp("2025-02-01T01:00Z"), "csat_submitted", 3.0),
        ("b", pd.Timestamp("2025-02-20T01:00Z"), "csat_submitted", 4.0),
    ]
    groups = compute_kpis(log_of(csat, ("score",)), DEFAULTS, parse_grouping("month"))
    rows = groups["kpis"]["csat"]["groups"]
    assert [(r["group"], r["n"], r["value"]) for r in rows] == [
        ("2025-01", 1, 5.0),
        ("2025-02", 2, 3.5),
    ]
    weeks = compute_kpis(log_of(csat, ("score",)), DEFAULTS, parse_grouping("week"))
    assert [r["group"] for r in weeks["kpis"]["csat"]["groups"]] == [
        "2025-01-27",  # the Monday of Friday 2025-01-31 and Saturday 2025-02-01
        "2025-02-17",
    ]


def test_grouping_by_variant_and_attribute():
    rows = [
        (j, T0 + i * HOUR, e, s, seg)
        for j, steps, seg in (
            ("a", [("order_placed", None), ("csat_submitted", 5.0)], "gold"),
            ("b", [("order_placed", None), ("csat_submitted", 3.0)], "gold"),
            ("c", [("ticket_opened", None), ("csat_submitted", 1.0)], "basic"),
        )
        for i, (e, s) in enumerate(steps)
    ]
    log = log_of(rows, ("score", "segment"))
    result = compute_kpis(log, DEFAULTS, Grouping("variant", top=1))
    groups = result["kpis"]["csat"]["groups"]
    assert [(g["group"], g["n"], g["value"]) for g in groups] == [
        ("variant 1", 2, 4.0),
        ("(other)", 1, 1.0),
    ]
    assert result["variants"] == [
        {"group": "variant 1", "journeys": 2, "steps": ["order_placed", "csat_submitted"]}
    ]
    by_segment = compute_kpis(log, DEFAULTS, parse_grouping("attribute:segment"))
    groups = by_segment["kpis"]["csat"]["groups"]
    assert [(g["group"], g["n"]) for g in groups] == [("gold", 2), ("basic", 1)]
    with pytest.raises(ValueError, match="attribute:<column>"):
        parse_grouping("colour")


def test_kpis_a_log_lacks_are_unavailable_with_the_reason():
    log = log_of([("a", T0, "visit"), ("a", T0 + HOUR, "visit")])
    result = compute_kpis(log, DEFAULTS, Grouping("month"))["kpis"]
    assert not any(kpi["available"] for kpi in result.values())
    assert "csat_submitted" in result["csat"]["reason"]
    assert "ticket_opened" in result["resolution"]["reason"]
    assert "not a task" in result["churn"]["reason"]
    explicit = config('[kpis]\nnps = { event = "visit" }')
    nps = compute_kpis(log, explicit)["kpis"]["nps"]
    assert nps == {"available": False, "reason": "no numeric column 'score' in the log"}
    assert compute_kpis(log, explicit)["kpis"]["csat"]["reason"] == "not configured"


def test_churn_uses_point_in_time_labels():
    task = '[tasks.churn]\nlabel = "absent"\nmatch = { event = ["buy"] }\nhorizon = "10d"\n'
    settings = config("", task + 'snapshots = { every = "7d" }')
    rows = [("a", T0, "buy"), ("a", T0 + 20 * DAY, "buy"), ("b", T0, "buy")]
    rows += [("c", T0 + 8 * DAY, "visit"), ("z", T0 + 60 * DAY, "visit")]
    kpi = compute_kpis(log_of(rows), settings)["kpis"]["churn"]
    assert kpi["available"] and kpi["task"] == "churn"
    # Weekly snapshots from 2025-01-17; labelled while as_of + 10 d <= day 60.
    assert kpi["overall"]["n"] > 0 and 0 < kpi["overall"]["value"] < 1
    early = compute_kpis(log_of(rows), settings, as_of=T0 + 9 * DAY)["kpis"]["churn"]
    # c's visit on day 8 puts a snapshot on 17 January, where a and b are seen; their
    # horizons close after as_of, so they are censored, not labelled from what came later
    # (a's purchase on day 20, b's silence).
    assert early["excluded"]["censored"] == 2
    assert early["overall"]["n"] == 0


def test_cli_writes_json_and_html(tmp_path: Path):
    rows = [
        ("a", T0, "csat_submitted", 5.0, "T1"),
        ("a", T0 + HOUR, "ticket_opened", np.nan, "T1"),
        ("a", T0 + 3 * HOUR, "ticket_resolved", np.nan, "T1"),
        ("b", T0 + DAY, "nps_submitted", 9.0, None),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "event", "score", "case_id"])
    frame.to_parquet(tmp_path / "events.parquet")
    settings = tmp_path / "c.toml"
    settings.write_text('[source]\npath = "events.parquet"\n', encoding="utf-8")
    out = tmp_path / "kpis"
    result = CliRunner().invoke(
        app, ["kpis", "--config", str(settings), "--out", str(out), "--by", "month"]
    )
    assert result.exit_code == 0, result.output
    assert "csat" in result.output and "unavailable" in result.output
    written = json.loads((out / "kpis.json").read_text())
    assert written["meta"]["by"] == "month"
    assert written["kpis"]["resolution"]["overall"]["value"] == 2.0
    html = (out / "kpis.html").read_text()
    assert "<svg" in html and "http" not in html.replace('lang="en"', "")
    bad = CliRunner().invoke(app, ["kpis", "-c", str(settings), "--out", str(out), "--by", "x"])
    assert bad.exit_code == 2


def test_critical_steps_carry_their_kpi_effects():
    log = log_from_frame(simulate(1500, 3).events)
    settings = load_config(Path(__file__).resolve().parents[2] / "configs" / "simulator.toml")
    result = critical_path_analysis(log, settings.task("churn"), kpis=KpiConfig())
    steps = result["steps"].set_index("item")
    assert {"csat_with", "nps_without", "resolution_hours_with"} <= set(steps.columns)
    # Every step splits the same responses and cases, only differently.
    for kpi in ("csat", "nps", "resolution"):
        totals = steps[f"{kpi}_n_with"] + steps[f"{kpi}_n_without"]
        assert totals.nunique() == 1 and totals.iloc[0] > 0, kpi
    # The simulator lowers the satisfaction of journeys through these steps.
    planted = ["escalated", "refund_denied", "ticket_reopened", "delivery_delayed"]
    for step in steps.index.intersection(planted):
        assert steps.loc[step, "csat_with"] < steps.loc[step, "csat_without"], step
        assert steps.loc[step, "nps_with"] < steps.loc[step, "nps_without"], step
    # And escalated cases wait for the escalation before they are resolved.
    escalated = steps.loc["escalated"]
    assert escalated["resolution_hours_with"] > escalated["resolution_hours_without"]
    # Without KPIs, the ranking is as before.
    plain = critical_path_analysis(log, settings.task("churn"))
    assert "csat_with" not in plain["steps"].columns
