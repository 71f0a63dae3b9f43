"""The retention console in a real browser: `journeyguard serve` on a free loopback port, driven
by Playwright through Debian's /usr/bin/chromium (never `playwright install`: it downloads).

Screenshots of each page go to the test's tmp folder and to /tmp/console-shots/ for review."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.serving.conftest import TOKEN, Workspace, served, serving_workspace
from tests.serving.test_console import seed_outbox
from tests.workspace import TrainedWorkspace

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
SHOTS = Path("/tmp/console-shots")


@pytest.fixture(scope="module")
def workspace(
    trained_workspace: TrainedWorkspace, tmp_path_factory: pytest.TempPathFactory
) -> Workspace:
    """The service's workspace over the session's trained one, with a store of its own."""
    return serving_workspace(trained_workspace, tmp_path_factory.mktemp("browser-workspace"))


@pytest.fixture(scope="module")
def server(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The served console's base URL, with an outbox and a real churn report to show."""
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM}: `apt-get install chromium` (make install does)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    from journeyguard.features.cli import run_analysis

    folder = tmp_path_factory.mktemp("console-browser")
    settings = workspace.settings
    churn = pd.read_parquet(settings.workspace.risk_list("churn"))
    ranked = churn.sort_values(["risk", "customer_id"], ascending=[False, True])
    outbox = seed_outbox(settings, ranked["customer_id"].tolist())
    report = settings.workspace.report("churn")
    run_analysis(settings, report.parent, "churn", None)
    config = workspace.variant("browser", f'api_token = "{TOKEN}"')
    try:
        with served(workspace, config, folder / "server.log", "--workers", "1") as base:
            yield base
    finally:
        outbox.unlink(missing_ok=True)
        shutil.rmtree(report.parent, ignore_errors=True)


def shot(page, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def test_console_in_chromium(server: str, tmp_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900}, accept_downloads=True)
            page.set_default_timeout(20_000)
            # Without the cookie the console asks for the token, then comes back.
            page.goto(f"{server}/console?task=churn")
            assert "/console/login" in page.url
            page.fill("input[name=token]", "wrong")
            page.click("button[type=submit]")
            assert page.locator("#message").inner_text() == "That is not the API token."
            shot(page, tmp_path, "0-login")
            page.fill("input[name=token]", TOKEN)
            page.click("button[type=submit]")
            page.wait_for_selector("#risk-list")
            assert page.url.endswith("/console?task=churn")
            rows = page.locator("#risk-list tbody tr")
            assert rows.count() == 50
            risks = [float(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.risk)")]
            assert risks == sorted(risks, reverse=True)
            shot(page, tmp_path, "1-risk-list")

            # Filter by band: choosing it submits the form (a little JS).
            with page.expect_navigation():
                page.select_option("#band", "medium")
            bands = rows.evaluate_all("rs => rs.map(r => r.dataset.band)")
            assert bands and set(bands) == {"medium"}
            assert "band=medium" in page.url
            shot(page, tmp_path, "2-risk-list-medium")

            # Export the filtered list.
            with page.expect_download() as info:
                page.click("#export")
            download = info.value
            assert download.suggested_filename == "risk-churn-medium.csv"
            exported = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
            assert {r["band"] for r in exported} == {"medium"}
            assert [r["customer_id"] for r in exported[: len(bands)]] == rows.evaluate_all(
                "rs => rs.map(r => r.dataset.customer)"
            )

            # Open the first customer.
            first = rows.first.get_attribute("data-customer")
            page.click(f"#risk-list tbody tr[data-customer='{first}'] a")
            page.wait_for_selector("#timeline")
            assert page.locator("#customer-id").inner_text() == first
            assert page.locator("#timeline tbody tr").count() >= 1
            assert page.locator("polyline.risk-line").count() == 2
            assert page.locator("#risks tbody tr").count() == 2
            shot(page, tmp_path, "3-customer")

            # The customer the outbox contacted shows the decision and its message.
            page.goto(f"{server}/console?task=churn")
            contacted = rows.first.get_attribute("data-customer")
            page.goto(f"{server}/console/customer/{contacted}")
            assert "top risk, within budget" in page.locator("#decisions").inner_text()
            assert "pending" in page.locator("#messages").inner_text()
            shot(page, tmp_path, "4-customer-contacted")

            page.click("nav.top >> text=Paths")
            frame = page.frame_locator("#report")
            frame.locator("h1").first.wait_for()
            shot(page, tmp_path, "5-paths")
            page.goto(f"{server}/console/paths?task=escalation")
            assert page.locator("#no-report").is_visible()

            page.click("nav.top >> text=Models")
            assert page.locator("#models tbody tr").count() == 4
            shot(page, tmp_path, "6-models")

            page.goto(f"{server}/console/customer/nobody-at-all")
            assert "no customer 'nobody-at-all'" in page.locator("#message").inner_text()
            shot(page, tmp_path, "7-not-found")
        finally:
            browser.close()
