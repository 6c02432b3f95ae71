"""In headless Chromium (Debian's package, driven by Playwright), against a real `airflow api-server`
with this bundle's plugins: an operator logs in, opens "ML models" from the navigation and reads the
pages inside the Airflow UI, in the light and the dark theme; every kind of link on them (pipeline,
run, decision log, outcome log, DAG, the overview's last run, the model-operations DAG) lands on the
right Airflow page; a held version is promoted from its page and production is rolled back with
Airflow's own trigger form of ml_model_ops with the version left empty, as the RUNBOOK says, run by a
real scheduler. The browser console stays free of errors. Screenshots go to test-output/.

Without Chromium the test is skipped, except under CI=true, where it fails (`make test` installs it)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from include.ml.config import get_pipeline, training_dag_id
from include.ml.monitoring import OPS_DAG, UI_ROUTE
from include.ml.registry import ModelRegistry
from tests.conftest import ROOT
from tests.e2e.dashboard_support import PIPELINE, api_server, stop_group, trained_history

pytestmark = pytest.mark.e2e
OUTPUT = ROOT / "test-output"
DAG_ID = training_dag_id(PIPELINE)


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "Chromium not found: `make chromium` installs Debian's package (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def history(airflow_db, smtp_inbox, tmp_path_factory):
    """The session's three-day credit_default history, copied: this module changes production."""
    built = trained_history()
    home = tmp_path_factory.mktemp("browser") / "ml-home"
    shutil.copytree(built.home, home)
    return built, home


@pytest.fixture(scope="module")
def server(history, tmp_path_factory, monkeypatch_module):
    _, home = history
    monkeypatch_module.setenv("ML_HOME", str(home))
    score_one_date(SCORED_ON)
    # ml_model_ops into the metadata database, as the DAG processor would (the history's dag.test() put
    # the training DAG there)
    result = subprocess.run([str(ROOT / "bin" / "airflow"), "dags", "reserialize"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with api_server(home, tmp_path_factory.mktemp("browser-api")) as running:
        yield running


SCORED_ON = "2026-01-02"


def score_one_date(ds: str) -> None:
    """One scoring date of 300 rows with the production model, as the batch-scoring DAG scores it: its
    estimated performance goes to the scoring history."""
    from include.ml import scoring
    from include.ml.simulate import write_scoring_batches

    config = get_pipeline(PIPELINE)
    write_scoring_batches(config, dt.date.fromisoformat(ds), 1, partitions=1, rows=300)
    scoring.summarise(config, ds, [scoring.score_partition(config, p, ds) for p in scoring.partitions(config, ds)])


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@contextlib.contextmanager
def scheduler(base: str) -> Iterator[Path]:
    """`airflow scheduler` (LocalExecutor) running the queued runs; its tasks talk to the api-server at
    ``base``. Yields its log file (kept in test-output/)."""
    env = {**os.environ, "AIRFLOW__API__BASE_URL": base,
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/"}
    path = OUTPUT / "browser-scheduler.log"
    log = open(path, "w")  # noqa: SIM115 - closed in finally
    process = subprocess.Popen([str(ROOT / "bin" / "airflow"), "scheduler"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield path
    finally:
        stop_group(process, grace=60)
        log.close()


def wait_for(condition, what: str, log: Path, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(2)
    pytest.fail(f"timed out waiting for {what}; the scheduler's log ends:\n" + log.read_text()[-4000:])


def log_in(page, server) -> None:
    page.goto(server.base + "/")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[type=password]").fill(server.password)
    page.keyboard.press("Enter")


def luminance(rgb: list[int]) -> float:
    """0 (black) to 1 (white) from an ``[r, g, b]`` colour."""
    r, g, b = rgb[:3]
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


LOOK = """() => {
    const rgb = (colour) => {  // any CSS colour (the UI's are oklch) as drawn: [r, g, b]
        const pen = document.createElement('canvas').getContext('2d');
        pen.fillStyle = colour; pen.fillRect(0, 0, 1, 1);
        return Array.from(pen.getImageData(0, 0, 1, 1).data);
    };
    const root = document.querySelector('.ml-models'), link = root.querySelector('a');
    return {bg: rgb(getComputedStyle(root).backgroundColor), fg: rgb(getComputedStyle(root).color),
            font: getComputedStyle(root).fontFamily, uiFont: getComputedStyle(document.body).fontFamily,
            underline: getComputedStyle(link).textDecorationLine};
}"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect, sync_playwright

    executable = chromium()
    expect.set_options(timeout=60_000)  # the first page of a fresh api-server loads the ML library
    OUTPUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_an_operator_reads_the_ml_models_pages_inside_airflow_and_every_link_lands_on_its_airflow_page(
    server, history, browser, theme
):
    from playwright.sync_api import expect

    built, _ = history
    held_run = built.run_ids["2026-01-02"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, color_scheme=theme)
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    try:
        log_in(page, server)
        nav = page.get_by_role("link", name="ML models")
        expect(nav.first).to_be_visible()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        assert theme in page.evaluate("document.documentElement.className")  # the UI's own theme

        nav.first.click()
        expect(page).to_have_url(server.base + UI_ROUTE)
        assert page.locator("iframe").count() == 0  # in the UI's document, not a sandboxed frame
        row = page.locator(f"tr[data-pipeline='{PIPELINE}']")
        expect(row).to_contain_text("v0001")
        expect(row).to_contain_text("failed")
        expect(row.locator("svg polyline")).to_have_count(1)  # the metric trend, drawn
        expect(page.locator("#pipelines")).to_contain_text("production's validation score")
        expect(page.locator("#pipelines")).to_contain_text("last candidate")

        # the look: the UI's theme, fonts, links without underline
        look = page.evaluate(LOOK)
        assert (luminance(look["bg"]) < 0.3) == (theme == "dark"), look
        assert (luminance(look["fg"]) > 0.7) == (theme == "dark"), look
        assert look["font"] == look["uiFont"], look
        assert look["underline"] == "none", look
        page.screenshot(path=str(OUTPUT / f"ml-models-overview-{theme}.png"))

        # the overview's last run: Airflow's page of that run
        last_run = built.run_ids["2026-01-03"]
        row.get_by_role("link", name="2026-01-03").click()
        expect(page).to_have_url(server.base + f"/dags/{DAG_ID}/runs/{quote(last_run, safe='')}")
        expect(page.get_by_text(last_run).first).to_be_visible()
        page.go_back()

        page.locator(f"tr[data-pipeline='{PIPELINE}']").get_by_role("link", name=PIPELINE).click()
        expect(page).to_have_url(server.base + f"{UI_ROUTE}/pipelines/{PIPELINE}")  # no doubled segment
        expect(page.locator(".ml-models h1")).to_contain_text(PIPELINE)
        expect(page.locator("svg.heatmap rect.cell").first).to_be_visible()
        expect(page.locator("svg.chart circle.point")).to_have_count(3)  # validation of two runs, one estimate
        expect(page.locator("#estimated tbody tr")).to_have_count(1)  # the scored date's estimate, no labels yet
        expect(page.locator("#estimated")).to_contain_text(SCORED_ON)
        production = ModelRegistry(get_pipeline(PIPELINE).registry_path).production()
        top = ModelRegistry(get_pipeline(PIPELINE).registry_path).metadata(production)["importance"]["features"][0]
        expect(page.locator("#importance tbody tr").first).to_contain_text(top["feature"])
        expect(page.locator("#versions tbody tr")).to_have_count(2)
        expect(page.locator("#summary")).to_contain_text("in production")
        expect(page.locator("#summary")).to_contain_text("UTC")
        expect(page.locator("svg.chart").first).to_contain_text("gate: minimum roc_auc")  # the dashed line's legend
        page.screenshot(path=str(OUTPUT / f"ml-models-pipeline-{theme}.png"), full_page=True)

        held = page.locator(f"#runs tr[data-run-id='{held_run}']")
        for name, path, shows in (
            ("run", f"/dags/{DAG_ID}/runs/{quote(held_run, safe='')}", held_run),
            ("decision log", "/tasks/drift_check", "drift_check"),
            ("outcome log", "/tasks/hold", "hold"),
        ):
            held.get_by_role("link", name=name, exact=True).click()
            expect(page).to_have_url(re.compile(re.escape(path)))
            expect(page.get_by_text(shows).first).to_be_visible()
            if name == "outcome log":
                page.screenshot(path=str(OUTPUT / f"airflow-outcome-log-{theme}.png"))
            page.go_back()
            expect(page.locator(".ml-models h1")).to_contain_text(PIPELINE)

        page.get_by_role("link", name=f"Airflow DAG {DAG_ID}").click()
        expect(page).to_have_url(server.base + f"/dags/{DAG_ID}")
        page.go_back()
        page.get_by_role("link", name=re.compile(f"promote or roll back \\({OPS_DAG}\\)")).click()
        expect(page).to_have_url(server.base + f"/dags/{OPS_DAG}")
        expect(page.get_by_text(OPS_DAG).first).to_be_visible()
        assert errors == []
    finally:
        context.close()
    for name in ("overview", "pipeline"):
        assert (OUTPUT / f"ml-models-{name}-{theme}.png").stat().st_size > 10_000


def test_a_held_version_is_promoted_from_its_page_and_the_form_rolls_back_without_a_version(
    server, history, browser
):
    from playwright.sync_api import expect

    registry = ModelRegistry(get_pipeline(PIPELINE).registry_path)
    assert registry.production() == "v0001"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        with scheduler(server.base) as log:
            log_in(page, server)
            page.get_by_role("link", name="ML models").first.click()
            page.get_by_role("link", name=PIPELINE).first.click()

            # one click from the held version: its promote form, prefilled but for the reason
            form = page.locator("#versions tr[data-version='v0002'] form.ops")
            form.get_by_role("textbox").fill("drift is seasonal, v0002 checked by hand")
            form.get_by_role("button", name="Promote v0002").click()
            expect(page).to_have_url(re.compile(re.escape(f"/dags/{OPS_DAG}/runs/")))
            wait_for(lambda: registry.production() == "v0002", "the promotion of v0002", log)
            assert registry.audit()[-1]["reason"] == "drift is seasonal, v0002 checked by hand"
            assert registry.audit()[-1]["actor"].startswith("admin")

            # Airflow's trigger form of ml_model_ops: pick pipeline and action, leave the version empty
            page.goto(server.base + f"/dags/{OPS_DAG}")
            page.get_by_test_id("trigger-dag-button").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("This field is required").first).to_be_visible()  # nothing picked yet
            page.screenshot(path=str(OUTPUT / "ml-model-ops-form-empty.png"))
            for field, choice in (("pipeline", PIPELINE), ("action", "rollback: back to")):
                dialog.locator(f"#element_{field}").click()
                page.get_by_role("option", name=re.compile(re.escape(choice))).first.click()
            dialog.locator("#element_reason").fill("runbook drill from the form")
            expect(dialog.get_by_text("This field is required")).to_have_count(0)
            page.screenshot(path=str(OUTPUT / "ml-model-ops-form-filled.png"))
            dialog.get_by_role("button", name="Trigger").last.click()
            wait_for(lambda: registry.production() == "v0001", "the rollback from the form", log)
        last = registry.audit()[-1]
        assert (last["action"], last["from"], last["to"]) == ("rollback", "v0002", "v0001")
        assert last["reason"] == "runbook drill from the form"
    finally:
        context.close()
