"""In headless Chromium (Debian's package, driven by Playwright): log in to the Airflow UI, open
"ML models" from the navigation, see the pipeline and its chart, open the pipeline's page; the
browser console stays free of errors. Screenshots go to test-output/.

Without Chromium the test is skipped, except under CI=true, where it fails (`make test` installs it)."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT
from tests.e2e.dashboard_support import PIPELINE, api_server, trained_history

pytestmark = pytest.mark.e2e
OUTPUT = ROOT / "test-output"


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "Chromium not found: `make chromium` installs Debian's package (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def server(airflow_db, smtp_inbox, tmp_path_factory):
    history = trained_history()
    with api_server(history.home, tmp_path_factory.mktemp("browser")) as running:
        yield running


def test_an_operator_logs_in_and_reads_the_ml_models_pages(server):
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=60_000)  # the first page of a fresh api-server loads the ML library
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(server.base + "/")
            page.locator("input[name=username]").fill("admin")
            page.locator("input[type=password]").fill(server.password)
            page.keyboard.press("Enter")
            nav = page.get_by_role("link", name="ML models")
            expect(nav.first).to_be_visible()

            errors: list[str] = []  # from here on: the logged-in UI and the plugin's pages
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            nav.first.click()

            frame = page.frame_locator("iframe").first
            row = frame.locator(f"tr[data-pipeline='{PIPELINE}']")
            expect(row).to_contain_text("v0001")
            expect(row).to_contain_text("failed")
            expect(row.locator("svg polyline")).to_have_count(1)  # the metric trend, drawn
            page.screenshot(path=str(OUTPUT / "ml-models-overview.png"))

            row.get_by_role("link", name=PIPELINE).click()
            expect(frame.locator("h1")).to_contain_text(PIPELINE)
            expect(frame.locator("svg.heatmap rect.cell").first).to_be_visible()
            expect(frame.locator("svg.chart circle.point")).to_have_count(2)  # validation scores of two runs
            expect(frame.locator("#versions tbody tr")).to_have_count(2)
            page.screenshot(path=str(OUTPUT / "ml-models-pipeline.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
    assert (OUTPUT / "ml-models-overview.png").stat().st_size > 10_000
    assert (OUTPUT / "ml-models-pipeline.png").stat().st_size > 10_000
