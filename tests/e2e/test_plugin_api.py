"""The "ML models" plugin on a real `airflow api-server`: its JSON API and pages answer only an
authenticated Airflow user, tell the history the training DAG made (including a run that failed in
Airflow), agree with the HTML report file, and the DAG's metrics reached a StatsD listener."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from urllib.parse import quote

import pytest

from include.ml.config import get_pipeline, load_all
from tests.conftest import ROOT
from tests.e2e.dashboard_support import PIPELINE, api_server, trained_history

pytestmark = pytest.mark.e2e

ROUTES = ["/ml-models/", f"/ml-models/pipelines/{PIPELINE}", "/ml-models/api/pipelines",
          f"/ml-models/api/pipelines/{PIPELINE}", f"/ml-models/api/pipelines/{PIPELINE}/report.html",
          "/ml-models/api/openapi.json", "/ml-models/static/app.js", f"/ml-models/pipelines/{PIPELINE}?embed=1",
          "/ml-models/runbook"]


@pytest.fixture(scope="module")
def history(airflow_db, smtp_inbox):
    return trained_history()


@pytest.fixture(scope="module")
def server(history, tmp_path_factory):
    with api_server(history.home, tmp_path_factory.mktemp("plugin-api")) as running:
        yield running


@pytest.fixture(scope="module")
def token(server) -> str:
    return server.token()


def api(server, path: str, token: str):
    status, body = server.get(path, token=token)
    assert status == 200, body[:2000]
    return json.loads(body)


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_refuses_a_request_without_a_login_and_shows_no_data(server, path):
    status, body = server.get(path)

    assert status == 401
    assert "v0001" not in body and "roc_auc" not in body


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_refuses_a_forged_token(server, path):
    forged = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl"

    for status, body in (server.get(path, token=forged), server.get(path, cookie=forged)):
        assert status in (401, 403)
        assert "v0001" not in body


def test_an_unauthenticated_page_points_to_the_airflow_login(server):
    status, body = server.get(f"/ml-models/pipelines/{PIPELINE}")

    assert status == 401
    assert "/auth/login" in body


def test_the_overview_shows_production_the_failed_last_run_and_the_drift_of_the_last_trained_run(
        server, token, history):
    rows = {r["pipeline"]: r for r in api(server, "/ml-models/api/pipelines", token)}

    assert set(rows) == {c.name for c in load_all()}
    row = rows[PIPELINE]
    assert row["production"]["version"] == "v0001"
    assert row["promoted_at"]
    assert row["last_run"]["outcome"] == "failed"  # 2026-01-03 failed validation: only Airflow knows
    assert row["last_run"]["run_id"] == history.run_ids["2026-01-03"]
    assert row["drift_verdict"] == "drift"  # the held run of 2026-01-02
    assert [p["outcome"] for p in row["metric_series"]] == ["promote", "hold"]
    assert rows["house_prices"]["production"] is None


def test_each_run_links_to_its_real_airflow_run_page_and_logs(server, token, history):
    detail = api(server, f"/ml-models/api/pipelines/{PIPELINE}", token)
    dag_id = get_pipeline(PIPELINE).dag_id

    assert [(r["logical_date"], r["outcome"]) for r in detail["runs"]] == [
        ("2026-01-01", "promote"), ("2026-01-02", "hold"), ("2026-01-03", "failed")]
    for run in detail["runs"]:
        assert run["links"]["run"] == f"/dags/{dag_id}/runs/{quote(run['run_id'], safe='')}"
        state = api(server, f"/api/v2/dags/{dag_id}/dagRuns/{quote(run['run_id'], safe='')}", token)["state"]
        assert state == ("failed" if run["outcome"] == "failed" else "success")
    held = detail["runs"][1]
    assert held["links"]["outcome_log"].endswith("/tasks/hold")
    status, _ = server.get(held["links"]["run"], token=token)  # the UI serves its run page
    assert status == 200


def test_the_detail_api_has_every_section_the_page_draws(server, token):
    detail = api(server, f"/ml-models/api/pipelines/{PIPELINE}", token)

    assert [v["version"] for v in detail["versions"]] == ["v0001", "v0002"]
    assert [v["decision"] for v in detail["versions"]] == ["promoted", "held"]
    assert detail["versions"][1]["champion_version"] == "v0001"
    assert [a["to"] for a in detail["audit"]] == ["v0001"]
    assert detail["drift_heatmap"]["features"] and len(detail["drift_heatmap"]["runs"]) == 2
    assert detail["latest"]["validation"]["rows"] == 1500
    assert detail["latest"]["comparison"]["champion_version"] == "v0001"
    assert detail["latest"]["drift"]["verdict"] == "drift"


def test_the_pages_render_the_api_numbers_with_svg_charts(server, token):
    detail = api(server, f"/ml-models/api/pipelines/{PIPELINE}", token)
    status, page = server.get(f"/ml-models/pipelines/{PIPELINE}", cookie=token)  # the UI's session cookie

    assert status == 200
    assert page.count("<svg") >= 3
    for version in detail["versions"]:
        assert f"{version['metric_value']:.4f}" in page
    status, overview = server.get("/ml-models/", cookie=token)
    assert status == 200 and "credit_default" in overview and "<svg" in overview


def test_the_report_file_renders_the_same_numbers_as_the_api(server, token, history, tmp_path):
    detail = api(server, f"/ml-models/api/pipelines/{PIPELINE}", token)
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "include.ml", "report", "--pipeline", PIPELINE, "--out", str(out)],
                          cwd=ROOT, env={**os.environ, "ML_HOME": str(history.home)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr

    def versions(page: str) -> list[tuple[str, str]]:
        rows = re.findall(r"<tr data-version='(v\d+)'>(.*?)</tr>", page, re.S)
        return [(v, re.findall(r"<td class='num'>([^<]*)</td>", body)[0]) for v, body in rows]

    def runs(page: str) -> list[tuple[str, str]]:
        return [(html.unescape(r), s) for r, s in
                re.findall(r"<tr data-run-id='([^']*)'>.*?<td class='num'>([^<]*)</td>", page, re.S)]

    report_page = out.read_text()
    status, dashboard_page = server.get(f"/ml-models/pipelines/{PIPELINE}", token=token)
    assert status == 200
    expected_versions = [(v["version"], f"{v['metric_value']:.4f}") for v in reversed(detail["versions"])]
    assert versions(report_page) == versions(dashboard_page) == expected_versions
    trained = [(r["run_id"], f"{r['score']:.4f}") for r in reversed(detail["runs"]) if r["score"] is not None]
    # the file knows the runs of the history (finished, and failed with their step), no Airflow-only ones
    recorded_failures = [r["run_id"] for r in reversed(detail["runs"]) if r["failed_step"]]
    assert [r for r in runs(report_page) if r[1] != "–"] == trained
    assert [r for r, score in runs(report_page) if score == "–"] == recorded_failures
    assert [r for r in runs(dashboard_page) if r[1] != "–"] == trained


def test_the_openapi_schema_documents_the_json_routes(server, token):
    schema = api(server, "/ml-models/api/openapi.json", token)

    assert {"/api/pipelines", "/api/pipelines/{name}"} <= set(schema["paths"])


def test_the_ui_shows_the_page_as_a_react_app_not_a_sandboxed_frame(server, token):
    from include.ml.monitoring import UI_ROUTE

    plugins = api(server, "/api/v2/plugins", token)["plugins"]
    apps = [a for p in plugins for a in p["react_apps"]]
    views = [v for p in plugins for v in p["external_views"]]

    assert [(a["name"], a["url_route"], a["destination"]) for a in apps] == [("ML models", "ml-models", "nav")]
    assert not [v for v in views if v["name"] == "ML models"]  # no framed copy beside it
    status, script = server.get(apps[0]["bundle_url"], token=token)
    assert status == 200
    assert f'"route": "{UI_ROUTE}"' in script and "globalThis.AirflowPlugin" in script
    status, part = server.get(f"/ml-models/pipelines/{PIPELINE}?embed=1", token=token)
    assert status == 200
    assert "<html" not in part and "<body" not in part and ".ml-models" in part  # a part of the UI's page
    assert "form class='ops'" in part  # the held version's promote form
    status, page = server.get(f"/ml-models/pipelines/{PIPELINE}", token=token)
    assert "form class='ops'" not in page  # a document of its own has no UI to trigger from


def test_the_dag_docs_render_their_branch_diagram_and_link_the_runbook_page(server, token):
    from include.ml.monitoring import RUNBOOK_PAGE

    dag = api(server, f"/api/v2/dags/{get_pipeline(PIPELINE).dag_id}/details", token)
    # the UI renders a fence without a language inline, collapsing the diagram onto one line
    assert "```text\nextract → validate" in dag["doc_md"]
    assert f"[RUNBOOK.md]({RUNBOOK_PAGE})" in dag["doc_md"]
    status, page = server.get(RUNBOOK_PAGE, token=token)
    assert status == 200
    assert "<h2>Rollback</h2>" in page or "<h2>Rollback" in page


def test_the_training_dag_sent_its_metrics_to_statsd(history, monkeypatch):
    from include.ml.steps import run_history

    monkeypatch.setenv("ML_HOME", str(history.home))
    lines = history.statsd
    summaries = {h["logical_date"]: h for h in run_history(get_pipeline(PIPELINE))}
    prefix = f"airflow.ml.{PIPELINE}"

    assert f"{prefix}.promotions:1|c" in lines
    assert f"{prefix}.holds:1|c" in lines
    assert not any(line.startswith(f"{prefix}.rejections") for line in lines)
    scores = [float(line.split(":")[1].split("|")[0]) for line in lines
              if line.startswith(f"{prefix}.training.score:")]
    assert scores == pytest.approx([summaries["2026-01-01"]["score"], summaries["2026-01-02"]["score"]])
    held = summaries["2026-01-02"]
    share = len(held["drifted_features"]) / len(held["drift_by_feature"])
    assert f"{prefix}.training.drifted_share:{share}|g" in lines
    assert f"{prefix}.training.rows:1500.0|g" in lines or f"{prefix}.training.rows:1500|g" in lines
