"""The retention console in-process, through the session's app (tests/serving/conftest.py)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from journeyguard.serving.console import pages
from tests.serving.conftest import AUTH, TOKEN, Workspace
from tests.workspace import AS_OF

REPORT_TEXT = "<!DOCTYPE html><html><body><h1>Journey report (test)</h1></body></html>"


def seed_outbox(settings, customers: list[str]) -> Path:
    """An outbox of the configured campaign deciding contact, holdout and suppressed for the
    first three customers; returns the SQLite file."""
    from journeyguard.outreach.outbox import enqueue, open_outbox

    path = settings.workspace.outbox
    engine = open_outbox(f"sqlite:///{path}")
    kinds = [("contact", "top risk, within budget"), ("holdout", "random holdout 10%"),
             ("suppressed", "cooldown: contacted 2025-08-25")]  # fmt: skip
    window = AS_OF.floor("D")
    frame = pd.DataFrame(
        {
            "decision_key": [f"k-{c}" for c in customers[:3]],
            "campaign": settings.outreach.campaign,
            "window_start": window,
            "customer_id": customers[:3],
            "action": "call",
            "task": "churn",
            "risk": 0.9,
            "decision": [k for k, _ in kinds],
            "reason": [r for _, r in kinds],
            "cost": 5.0,
            "as_of": AS_OF,
            "idempotency_key": [f"msg-{c}" for c in customers[:3]],
            "payload": [{"customer_id": c} for c in customers[:3]],
        }
    )
    enqueue(engine, frame, now=AS_OF.to_pydatetime())
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def seeded(workspace: Workspace) -> Iterator[dict]:
    """An outbox and a journey report in the workspace's output folder, removed afterwards."""

    settings = workspace.settings
    churn = pd.read_parquet(settings.workspace.risk_list("churn"))
    top = churn.sort_values(["risk", "customer_id"], ascending=[False, True])
    customers = top["customer_id"].tolist()
    outbox = seed_outbox(settings, customers)
    report = settings.workspace.report("churn")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(REPORT_TEXT)
    yield {"customers": customers, "churn": top}
    outbox.unlink(missing_ok=True)
    report.unlink(missing_ok=True)


def risk_rows(html: str) -> list[tuple[str, float, str]]:
    rows = re.findall(r'data-customer="([^"]+)" data-risk="([^"]+)" data-band="([^"]+)"', html)
    return [(c, float(r), b) for c, r, b in rows]


def test_risk_list_is_ranked_by_risk_with_value_and_outreach(client, seeded):
    response = client.get("/console?task=churn&per_page=25", headers=AUTH)
    assert response.status_code == 200, response.text
    rows = risk_rows(response.text)
    assert len(rows) == 25
    assert [c for c, _, _ in rows] == seeded["customers"][:25]
    risks = [r for _, r, _ in rows]
    assert risks == sorted(risks, reverse=True)
    assert "status-contact" in response.text and "top risk, within budget" in response.text
    assert "status-suppressed" in response.text and "cooldown" in response.text
    assert f"of {len(seeded['churn']):,} matching" in response.text


def test_filters_by_band_and_reason(client, seeded):
    table = seeded["churn"]
    response = client.get("/console?task=churn&band=medium&per_page=500", headers=AUTH)
    rows = risk_rows(response.text)
    assert rows and {b for _, _, b in rows} == {"medium"}
    assert len(rows) == min(500, int((table["band"] == "medium").sum()))
    reason = str(table["reason_1"].dropna().iloc[0])
    word = reason.split()[0].upper()  # case does not matter
    response = client.get("/console", params={"task": "churn", "reason": word}, headers=AUTH)
    texts = table[["reason_1", "reason_2", "reason_3"]].fillna("").agg(" ".join, axis=1)
    expected = int(texts.str.contains(word, case=False, regex=False).sum())
    assert f"{expected:,} matching" in response.text
    nothing = client.get("/console?task=churn&reason=zzz-no-such-reason", headers=AUTH)
    assert nothing.status_code == 200 and 'id="empty"' in nothing.text


def test_paging_walks_the_list_without_overlap(client, seeded):
    first = risk_rows(client.get("/console?task=churn&per_page=10", headers=AUTH).text)
    second = risk_rows(client.get("/console?task=churn&per_page=10&page=2", headers=AUTH).text)
    assert [c for c, _, _ in first + second] == seeded["customers"][:20]
    past = client.get("/console?task=churn&page=100000", headers=AUTH)
    assert past.status_code == 200 and 'id="empty"' in past.text


@pytest.mark.parametrize(
    ("task", "sort", "cell"),
    [("escalation", "value", "spent"), ("churn", "value_at_risk", "at-stake")],
)
def test_the_list_sorts_by_what_is_asked(client, seeded, task, sort, cell):
    response = client.get(f"/console?task={task}&sort={sort}&per_page=50", headers=AUTH)
    assert response.status_code == 200, response.text
    pattern = rf'<td class="num {cell}">([\d,]+\.\d\d)</td>'
    values = [float(v.replace(",", "")) for v in re.findall(pattern, response.text)]
    assert len(values) == 50 and values == sorted(values, reverse=True)


def test_csv_export_holds_every_filtered_row(client, seeded, workspace):
    response = client.get("/console/export.csv?task=churn&band=high", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="risk-churn-high.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    table = seeded["churn"]
    high = table[table["band"] == "high"]
    assert [r["customer_id"] for r in rows] == high["customer_id"].tolist()
    assert {r["band"] for r in rows} == {"high"}
    first = rows[0]
    assert float(first["risk"]) == pytest.approx(high["risk"].iloc[0], abs=1e-6)
    assert first["outreach"] == "contact" and first["last_contact"].startswith("2025-09-01")
    log = workspace.log
    position = int(np.searchsorted(log.journey_ids, first["customer_id"]))
    window = slice(log.offsets[position], log.offsets[position + 1])
    seen = log.times[window] <= AS_OF.value
    expected = np.nansum(np.where(seen, log.column("value")[window], 0.0))
    assert float(first["value"]) == pytest.approx(expected, abs=0.01)


def test_customer_page_shows_journey_risks_history_and_outreach(client, seeded, workspace):
    customer = seeded["customers"][0]
    response = client.get(f"/console/customer/{customer}", headers=AUTH)
    assert response.status_code == 200, response.text
    html = response.text
    position = int(np.searchsorted(workspace.log.journey_ids, customer))
    n_events = int(np.diff(workspace.log.offsets)[position])
    timeline = html.split('id="timeline"')[1]
    assert timeline.count("<tr>") == n_events + 1  # the header and one row per event
    assert 'data-task="churn"' in html and 'data-task="escalation"' in html
    assert len(re.findall(r'<polyline class="risk-line"', html)) == 2
    assert "top risk, within budget" in html and 'id="messages"' in html and "pending" in html
    churn_risk = seeded["churn"].set_index("customer_id").loc[customer, "risk"]
    assert f"{100 * churn_risk:.1f}%" in html  # the risk now is the listed risk


def test_models_page_lists_champions_with_metrics_and_runs(client, workspace):
    from journeyguard.training.registry import champion_versions

    response = client.get("/console/models", headers=AUTH)
    assert response.status_code == 200, response.text
    versions = champion_versions(workspace.tracking_uri)
    for task in ("churn", "escalation"):
        champion = versions[task]["champion"]
        assert champion["run_id"] in response.text
        assert f"{champion['metrics']['test_roc_auc']:.3f}" in response.text
        assert f"{champion['metrics']['test_brier']:.4f}" in response.text
        challenger = versions[task]["challenger"]
        if challenger is None:
            assert "no challenger registered" in response.text
        else:
            assert challenger["run_id"] in response.text


def test_paths_page_frames_the_report_or_says_how_to_write_one(client, seeded):
    churn = client.get("/console/paths?task=churn", headers=AUTH)
    assert churn.status_code == 200 and 'id="report"' in churn.text
    report = client.get("/console/paths/report?task=churn", headers=AUTH)
    assert report.status_code == 200 and report.text == REPORT_TEXT
    missing = client.get("/console/paths?task=escalation", headers=AUTH)
    assert missing.status_code == 200 and 'id="no-report"' in missing.text
    assert "journeyguard analyze" in missing.text
    assert client.get("/console/paths/report?task=escalation", headers=AUTH).status_code == 404


def test_login_sets_a_cookie_that_opens_the_console(client, workspace):
    browser = TestClient(client.app, base_url=str(client.base_url))
    away = browser.get("/console?task=churn", follow_redirects=False)
    assert away.status_code == 303
    assert away.headers["location"].startswith("/console/login?next=%2Fconsole%3Ftask%3Dchurn")
    assert browser.get("/console/login").status_code == 200
    wrong = browser.post("/console/login", data={"token": "nope", "next": "/console"})
    assert wrong.status_code == 401 and "not the API token" in wrong.text
    assert "journeyguard_session" not in browser.cookies
    good = browser.post(
        "/console/login",
        data={"token": TOKEN, "next": "/console?task=escalation"},
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"] == "/console?task=escalation"
    assert browser.get("/console?task=escalation").status_code == 200
    # The cookie does not open the JSON endpoints, and the probes stay open.
    assert browser.get("/risk_list?task=churn").status_code == 401
    assert browser.get("/livez").status_code == 200
    outside = browser.post("/console/login", data={"token": TOKEN, "next": "https://evil.test/"})
    assert outside.url.path == "/console"
    browser.get("/console/logout")
    assert browser.get("/console", follow_redirects=False).status_code == 303


def test_unknown_customer_is_a_404_page(client):
    response = client.get("/console/customer/nobody-here", headers=AUTH)
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert "nobody-here" in response.text


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("task=nope", "no task 'nope'"),
        ("task=churn&band=purple", "band 'purple'"),
        ("task=churn&page=0", "page 0"),
        ("task=churn&page=two", "page 'two'"),
        ("task=churn&per_page=100000", "per_page 100000"),
        ("task=churn&sort=name", "sort 'name'"),
        ("task=churn&colour=red", "unknown parameter 'colour'"),
    ],
)
def test_bad_query_values_answer_400_saying_why(client, query, words):
    for path in ("/console", "/console/export.csv"):
        response = client.get(f"{path}?{query}", headers=AUTH)
        assert response.status_code == 400, response.text
        assert words in response.text.replace("&#39;", "'")


def test_list_query_defaults_and_links():
    query = pages.list_query({}, ["churn", "escalation"])
    assert query == pages.ListQuery("churn")
    assert query.params(page=2) == {"task": "churn", "page": "2"}


def test_history_times_are_the_events_up_to_as_of_thinned():
    times = np.arange(0, 1000, 10, dtype=np.int64)
    moments = pages.history_times(times, 505, limit=20)
    assert moments[-1] == 505 and len(moments) <= 20 and (np.diff(moments) > 0).all()
    assert set(moments[:-1]) <= set(times[times <= 505])


def test_outreach_by_customer_takes_the_latest_decision_and_last_contact():
    day = pd.Timestamp("2025-09-01", tz="UTC")
    decisions = pd.DataFrame(
        {
            "decision_key": ["a1", "a2", "b1"],
            "customer_id": ["A", "A", "B"],
            "decision": ["contact", "suppressed", "holdout"],
            "reason": ["top", "cooldown", "holdout"],
            "as_of": [day, day + pd.Timedelta("1D"), day],
        }
    )
    result = pages.outreach_by_customer(decisions)
    assert result.loc["A", "outreach"] == "suppressed" and result.loc["A", "last_contact"] == day
    assert result.loc["B", "outreach"] == "holdout" and pd.isna(result.loc["B", "last_contact"])


def test_the_csv_export_never_writes_a_cell_a_spreadsheet_would_run():
    hostile = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "plain-id"]
    rows = pd.DataFrame(
        {
            "customer_id": hostile,
            "task": "churn",
            "as_of": AS_OF,
            "risk": [0.5, 0.4, 0.3, 0.2, 0.1, -0.0],
            "band": "high",
            "reasons": ["=cmd|' /C calc'!A0", "a; b", "", "", "", "-"],
            "value": 10.0,
            "last_contact": pd.NaT,
            "outreach": None,
            "outreach_reason": "@risk",
            "model_version": 1,
        }
    )
    written = list(csv.DictReader(io.StringIO(pages.export_csv(rows))))
    assert [r["customer_id"] for r in written] == [
        '\'=HYPERLINK("http://x")',
        "'+1+1",
        "'-2+3",
        "'@SUM(A1)",
        "'\tcmd",
        "plain-id",
    ]
    assert written[0]["reasons"] == "'=cmd|' /C calc'!A0" and written[5]["reasons"] == "'-"
    assert {r["outreach_reason"] for r in written} == {"'@risk"}
    assert written[1]["reasons"] == "a; b" and written[5]["risk"] == "-0.0"  # numbers stay numbers


def test_uplift_page_answers_and_says_when_nothing_is_measured_yet(client, seeded):
    response = client.get("/console/uplift", headers=AUTH)
    assert response.status_code == 200, response.text
    assert 'href="/console/uplift"' in response.text
    assert "No contact or holdout decision has a known outcome yet." in response.text


def test_errors_show_no_file_paths_and_no_long_echo(client, workspace):
    """Issue 18, row 13: a 404 named the files behind it by their absolute paths, and echoed a
    customer id of any length."""
    folder = str(workspace.folder)
    report = client.get("/console/paths/report?task=escalation", headers=AUTH)
    assert report.status_code == 404 and folder not in report.text
    long_id = "x" * 50_000  # httpx takes URLs up to 64 KiB
    page = client.get(f"/console/customer/{long_id}", headers=AUTH)
    assert page.status_code == 404 and len(page.text) < 20_000
    assert "50,000 characters" in page.text
    answer = client.post("/predict_customer", json={"customer_id": long_id * 10}, headers=AUTH)
    assert answer.status_code == 404 and len(answer.text) < 1_000, answer.text[:300]
    assert folder not in answer.text
    task = client.get(f"/risk_list?task={long_id}", headers=AUTH)
    assert task.status_code == 404 and len(task.text) < 1_000
    for query in (f"task={long_id}", f"task=churn&band={long_id}", f"task=churn&page={long_id}"):
        bad = client.get(f"/console?{query}", headers=AUTH)
        assert bad.status_code == 400 and len(bad.text) < 20_000, query


def test_an_id_with_a_slash_opens_its_page(client):
    response = client.get("/console/customer/a%2Fb/c", headers=AUTH)
    assert response.status_code == 404  # not in the log, but looked up as itself
    assert "text/html" in response.headers["content-type"]
    assert "a/b/c" in response.text
