"""KPIs of the public logs through their example configs; run with -s to see the numbers.

Helpdesk: Polato (2017), doi:10.4121/uuid:0c60edf1-6f83-4e75-9367-4c63b3e9d5bb.
CDNOW: the cohort shipped with `lifetimes` (Fader, Hardie and Lee 2005).
"""

from __future__ import annotations

import pytest

from journeyguard.features.config.reader import load_config
from journeyguard.features.kpis.compute import Grouping, compute_kpis
from journeyguard.features.sources.log import load_log

from ..conftest import CONFIGS

pytestmark = pytest.mark.realdata


def show(title: str, kpi: dict) -> None:
    print(f"\n{title}")
    for row in [kpi["overall"], *kpi["groups"]]:
        extra = {k: v for k, v in row.items() if k not in ("group", "n", "value")}
        print(f"  {row['group']:<12} n={row['n']:>6} value={row['value']} {extra}")


def test_helpdesk_resolution_time_by_month_and_variant(shared_data):
    settings = load_config(CONFIGS / "helpdesk.toml")
    log = load_log(settings)
    by_month = compute_kpis(log, settings, Grouping("month"))["kpis"]["resolution"]
    show("Helpdesk resolution hours by month of the ticket's first start step", by_month)
    overall = by_month["overall"]
    assert overall["n"] == sum(g["n"] for g in by_month["groups"]) == 4_577
    assert overall["resolved"] + overall["censored"] == overall["n"]
    assert overall["ci_low"] <= overall["value"] <= overall["ci_high"]
    by_variant = compute_kpis(log, settings, Grouping("variant", top=6))
    kpi = by_variant["kpis"]["resolution"]
    show("Helpdesk resolution hours by variant", kpi)
    for variant in by_variant["variants"]:
        print(
            f"  {variant['group']}: {variant['journeys']} tickets, {' > '.join(variant['steps'])}"
        )
    assert [g["group"] for g in kpi["groups"]][-1] == "(other)"
    assert sum(g["n"] for g in kpi["groups"]) == overall["n"]


def test_cdnow_repeat_purchase_rate_by_cohort_month(shared_data):
    settings = load_config(CONFIGS / "cdnow.toml")
    result = compute_kpis(load_log(settings), settings, Grouping("month"))
    kpi = result["kpis"]["repeat"]
    show("CDNOW repeat purchase within 90 days, by cohort month (first purchase)", kpi)
    assert [g["group"] for g in kpi["groups"]] == ["1997-01", "1997-02", "1997-03"]
    assert kpi["overall"]["n"] == 23_570 and kpi["excluded_open_window"] == 0
    assert 0.2 < kpi["overall"]["value"] < 0.4
    show("CDNOW churn rate (task churn) by month of the snapshot", result["kpis"]["churn"])
