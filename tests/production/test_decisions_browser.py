"""The decision request in Airflow's UI (headless Debian Chromium, driven by Playwright) against the
production-shape cluster: a person logs in, opens the Required Action of a held candidate from the
link the request email carries, reads the version pair and the comparison, writes a reason and
chooses "Keep production"; Airflow records the answer with their name, and production stays.
Screenshots go to test-output/. Without Chromium the test is skipped (CI=true: it fails)."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest

from include.ml import approval
from include.ml.config import get_pipeline
from include.ml.simulate import write_batches
from include.ml.steps import registry_for, run_steps
from tests.conftest import ROOT
from tests.e2e.test_browser import chromium
from tests.production import test_production_shape as shape
from tests.production.test_decisions import _awaiting, _hitl_path, _succeeded

pytestmark = pytest.mark.production
OUTPUT = ROOT / "test-output"
DAY1 = dt.date(2026, 1, 1)

database, celery_queue, cluster = shape.database, shape.celery_queue, shape.cluster


def log_in(page, base: str, password: str) -> None:
    """Airflow's login form (the Simple auth manager's) as the admin."""
    page.goto(base + "/")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[type=password]").fill(password)
    page.keyboard.press("Enter")


def test_a_person_answers_the_required_action_in_the_airflow_ui(cluster, smtp_inbox):
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    config = get_pipeline("credit_default")
    decision = approval.decision_dag_id(config.name)
    write_batches(config, DAY1, 3, drift_from=DAY1 + dt.timedelta(days=2))
    for offset in range(3):  # the third day drifts: held, asking for a decision
        day = (DAY1 + dt.timedelta(days=offset)).isoformat()
        summary = run_steps(config, f"scheduled__{day}T00:00:00+00:00", day)["report"]
    assert summary["branch"] == "hold" and summary["decision_requested"]
    production = registry_for(config).production()

    cluster.wait_until(f"{decision} parsed", lambda: cluster.request("GET", f"/api/v2/dags/{decision}"))
    cluster.request("PATCH", f"/api/v2/dags/{decision}", {"is_paused": False})
    asked = cluster.request("POST", f"/api/v2/dags/{decision}/dagRuns",
                            {"logical_date": None, "conf": {"run_id": summary["run_id"]}})
    cluster.wait_until("the request waiting", lambda: _awaiting(cluster, decision, asked["dag_run_id"]))
    pending = cluster.request("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails?response_received=false")["hitl_details"]
    (row,) = approval.pending_decisions(pending)

    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
            page.set_default_timeout(60_000)
            log_in(page, cluster.location.api_url, cluster.password)
            expect(page.get_by_role("link", name="Dags").first).to_be_visible(timeout=60_000)  # logged in
            page.goto(cluster.location.api_url + row["answer_url"])
            expect(page.get_by_text(f"promote candidate {summary['version']} or keep production").first).to_be_visible(
                timeout=60_000)
            expect(page.get_by_text("champion / challenger").first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(OUTPUT / "decision-required-action.png"), full_page=True)
            # the form below the body: the request's one param (its title "Reason"), then the two options
            reason = page.get_by_label("Reason").or_(page.locator(f"#element_{approval.REASON_PARAM}")).or_(
                page.locator(f"[name={approval.REASON_PARAM}]")).first
            reason.scroll_into_view_if_needed()
            reason.fill("not convinced by the shift yet")
            page.screenshot(path=str(OUTPUT / "decision-form.png"))
            page.get_by_role("button", name=approval.KEEP).click()
            cluster.wait_until("the answer recorded", lambda: cluster.request("GET", _hitl_path(
                decision, asked["dag_run_id"]))["response_received"])
            page.screenshot(path=str(OUTPUT / "decision-answered.png"), full_page=True)
        finally:
            browser.close()

    detail = cluster.request("GET", _hitl_path(decision, asked["dag_run_id"]))
    assert detail["chosen_options"] == [approval.KEEP]
    assert detail["params_input"] == {approval.REASON_PARAM: "not convinced by the shift yet"}
    assert detail["responded_by_user"]["name"] == "admin"
    cluster.wait_until("the answer applied", lambda: _succeeded(cluster, decision, asked["dag_run_id"]))
    assert registry_for(config).production() == production
    smtp_inbox.wait_for(f"DECISION by admin: {summary['version']} not promoted", timeout=60)
    assert urllib.parse.quote(asked["dag_run_id"], safe="") in row["answer_url"]
