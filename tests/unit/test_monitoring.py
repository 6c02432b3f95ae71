"""The monitoring report: built from a real three-day history (promote, promote or reject, drift hold),
real batch scoring and real labels; the report file, the dashboard data and the alert emails agree."""

from __future__ import annotations

import datetime as dt
import html
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from include.ml import alerts, monitoring, paths, performance, scoring, simulate, steps
from include.ml.config import FeatureSpec, get_pipeline

DAY4 = dt.date(2026, 1, 4)


@pytest.fixture(scope="module")
def monitored(credit_history, tmp_path_factory) -> Path:
    """A copy of the shared three-run history, plus one day of batch scoring (with bad rows) and the
    labels of those rows measured against the predictions."""
    home = tmp_path_factory.mktemp("monitored") / "ml-home"
    shutil.copytree(credit_history.home, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        delivered = simulate.write_scoring_batches(config, DAY4, 1, partitions=2, rows=400, bad_rows=3)
        registry = steps.registry_for(config)
        version = registry.production()
        model = registry.load(version)
        features = [FeatureSpec.model_validate(f) for f in registry.metadata(version)["features"]]
        out = paths.resolve(config.scoring.output_dir.format(pipeline=config.name, ds=DAY4.isoformat()))
        summaries = [scoring.score_file(model, version, config, features, part, out / f"{part.stem}.parquet",
                                        max_reject_share=0.05).to_dict() for part in delivered["scoring"]]
        scoring.summarise(config, DAY4.isoformat(), summaries, run_id="scheduled__2026-01-04T00:00:00+00:00")
        labels_day = delivered["labels"][0].name[:10]
        performance.measure(config, labels_day)
    return home


@pytest.fixture
def config(monitored, monkeypatch):
    monkeypatch.setenv("ML_HOME", str(monitored))
    return get_pipeline("credit_default")


def cells(page: str, table_id: str) -> list[list[str]]:
    """The text of each body row of the table with ``id=table_id``."""
    body = re.search(rf"<table class='data' id='{table_id}'>.*?<tbody>(.*?)</tbody>", page, re.S).group(1)
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_the_report_command_writes_one_html_file_with_every_section(config, tmp_path):
    out = tmp_path / "report.html"

    done = subprocess.run([sys.executable, "-m", "include.ml", "report", "--pipeline", "credit_default",
                           "--out", str(out), "--airflow-url", "https://airflow.example.com"],
                          capture_output=True, text=True, cwd=paths.REPO_ROOT, check=False)

    assert done.returncode == 0, done.stderr
    assert f"-> {out}" in done.stdout
    page = out.read_text()
    for section in ("roc_auc over time", "Drift per feature", "Training runs", "Versions", "Promotions and rollbacks",
                    "Batch scoring", "Realised performance"):
        assert f"<h2>{section}</h2>" in page, section
    for section in ("Validation", "Champion / challenger"):  # parts of the latest run's section
        assert f"<h3>{section}</h3>" in page, section
    assert page.count("<svg") >= 3  # metric, heatmap, scoring bars: drawn in the file, no scripts
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    first_run = steps.run_history(config)[0]["run_id"]
    assert ("https://airflow.example.com/dags/ml_training__credit_default/runs/"
            + first_run.replace(":", "%3A").replace("+", "%2B")) in page


def test_the_report_shows_the_registry_and_history_numbers(config):
    detail = monitoring.pipeline_detail(config)
    page = monitoring.render_pipeline(detail)
    history = steps.run_history(config)
    registry = steps.registry_for(config)

    versions = cells(page, "versions")
    assert [row[0].rstrip(" ★") for row in versions] == list(reversed(registry.versions()))
    for row in versions:
        meta = registry.metadata(row[0].rstrip(" ★"))
        assert row[1] == meta["decision"]
        assert row[3] == f"{meta['metrics']['roc_auc']:.4f}"
    assert versions[[r[0].rstrip(" ★") for r in versions].index(registry.production())][0].endswith("★")
    runs = cells(page, "runs")
    assert [(r[0], r[1], r[3]) for r in runs] == [
        (h["logical_date"], h["branch"], f"{h['score']:.4f}") for h in reversed(history)]
    assert runs[0][1] == "hold" and runs[0][5] == "drift"  # the drifted third day, newest first
    assert [a["to"] for a in registry.audit()] == [r[3] for r in reversed(cells(page, "audit"))]


def test_the_drift_heatmap_has_one_cell_per_feature_and_compared_run(config):
    heatmap = monitoring.pipeline_detail(config)["drift_heatmap"]
    held = steps.run_history(config)[-1]

    assert [r["run_id"] for r in heatmap["runs"]] == [h["run_id"] for h in steps.run_history(config)]
    assert set(heatmap["features"]) == set(held["drift_by_feature"])
    assert heatmap["features"][0] in held["drifted_features"]  # worst features first
    assert all(cell is None for cell in (row[0] for row in heatmap["cells"]))  # the first model had no reference
    column = {f: row[-1] for f, row in zip(heatmap["features"], heatmap["cells"], strict=True)}
    assert {f for f, c in column.items() if c["level"] in ("drifted", "severe")} == set(held["drifted_features"])
    svg = monitoring.heatmap_svg(heatmap)
    assert svg.count("<rect class='cell'") == sum(c is not None for row in heatmap["cells"] for c in row)


def test_scoring_volumes_rejects_and_realised_performance_are_shown(config):
    detail = monitoring.pipeline_detail(config)
    recorded = scoring.history(config)[-1]

    assert detail["scoring"][-1]["rows"] == recorded["rows"] == 800
    assert detail["scoring"][-1]["rejected"] == recorded["rejected"] > 0
    row = cells(monitoring.render_pipeline(detail), "scoring")[0]
    assert row[:4] == ["2026-01-04", "800", f"{recorded['scored']:,}", str(recorded["rejected"])]
    realised = performance.history(config)[-1]
    assert detail["realised"]["value"] == pytest.approx(realised["value"])
    assert detail["metric_over_time"]["realised"][-1]["value"] == pytest.approx(realised["value"])
    overview = monitoring.render_overview(monitoring.overview([config]))
    assert f"{realised['value']:.4f}" in overview


def test_a_failed_airflow_run_is_the_last_outcome_and_links_to_its_run_page(config):
    failed = {"run_id": "scheduled__2026-01-05T00:00:00+00:00", "state": "failed",
              "logical_date": "2026-01-05T00:00:00+00:00", "end_date": "2999-01-01T00:00:00+00:00"}

    row = monitoring.pipeline_overview(config, [failed])

    assert row["last_run"]["outcome"] == "failed"
    assert row["last_run"]["links"]["run"].endswith("/runs/scheduled__2026-01-05T00%3A00%3A00%2B00%3A00")
    assert row["drift_verdict"] == steps.run_history(config)[-1]["drift_verdict"]  # from the last trained run
    assert monitoring.pipeline_overview(config)["last_run"]["outcome"] == "hold"


def test_the_held_email_has_the_dashboard_comparison_drift_table_and_links(config, monkeypatch):
    monkeypatch.setenv("ML_AIRFLOW_URL", "https://airflow.example.com")
    held = steps.run_history(config)[-1]
    workspace = Path(held["workspace"])
    drift = json.loads((workspace / "drift.json").read_text())
    evaluation = json.loads((workspace / "evaluation.json").read_text())

    body = alerts.outcome_email(held, drift=drift).html

    assert monitoring.drift_table_html(drift) in body  # the dashboard's own table
    assert monitoring.comparison_html(monitoring.comparison(held, evaluation)) in body
    interval = evaluation["gates"]["interval"]
    assert f"[{interval['lower']:+.4f}, {interval['upper']:+.4f}]" in body
    assert "https://airflow.example.com/plugin/ml-models/pipelines/credit_default" in body  # inside the UI
    assert "https://airflow.example.com/dags/ml_training__credit_default/runs/" in body


def test_missing_history_files_give_empty_sections_not_errors(ml_home):
    config = get_pipeline("house_prices")

    detail = monitoring.pipeline_detail(config)
    page = monitoring.render_pipeline(detail)

    assert detail["production"] is None and detail["runs"] == [] and detail["scoring"] == []
    assert "no data yet" in page and "No labels delivered yet." in page


def test_the_report_file_shows_estimated_beside_realised_and_the_features_by_importance(config, tmp_path):
    out = tmp_path / "report.html"
    assert subprocess.run([sys.executable, "-m", "include.ml", "report", "--pipeline", "credit_default", "--out",
                           str(out)], cwd=paths.REPO_ROOT, check=False).returncode == 0
    page = out.read_text()
    [estimated] = scoring.history(config)[-1]["estimated_performance"].values()
    [row] = cells(page, "estimated")
    assert row[:3] == [DAY4.isoformat(), estimated["model_version"], f"{estimated['value']:.4f}"]
    assert row[6] == estimated["status"] == "ok"
    assert "estimated (no labels)" in page and "roc_auc: estimation error over time" in page
    [realised] = performance.history(config)
    assert f"realised - estimated {DAY4.isoformat()}: {realised['estimation_error']:.4f}" in page  # a chart point
    production = steps.registry_for(config).production()
    ranked = [f["feature"] for f in steps.registry_for(config).metadata(production)["importance"]["features"]]
    assert [r[1] for r in cells(page, "importance")] == ranked
    # the latest run's drift table: features in the order of importance, each with its rank
    drift_rows = re.search(r"<table class='data drift'>.*?</table>", page, re.S).group(0)
    assert "<th>importance rank</th>" in drift_rows
    firsts = re.findall(r"<tr><td>([^<]+)</td><td class='num'>1</td>", drift_rows)
    assert firsts == [ranked[0]]


def test_a_running_run_whose_batch_task_waits_reads_waiting_for_its_batch(config):
    waiting = {"run_id": "scheduled__2026-02-01T00:00:00+00:00", "state": "running",
               "logical_date": "2026-02-01T00:00:00+00:00", "end_date": None, "waiting_for_batch": True}
    running = {**waiting, "run_id": "manual__2026-02-02T00:00:00+00:00", "waiting_for_batch": False}

    rows = {r["run_id"]: r for r in monitoring.runs(config, [waiting, running])}
    page = monitoring.render_pipeline(monitoring.pipeline_detail(config, [waiting]))

    assert rows[waiting["run_id"]]["outcome"] == "waiting"
    assert rows[running["run_id"]]["outcome"] == "running"
    assert "waiting for its batch" in page


def test_the_page_sets_production_apart_from_the_last_candidate_with_readable_times_and_actors(config):
    detail = monitoring.pipeline_detail(config)
    page = monitoring.render_pipeline(detail)
    summary = re.search(r"<table class='data' id='summary'>(.*?)</table>", page, re.S).group(1)

    assert "in production" in summary and "last candidate" in summary
    assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d UTC", summary)
    assert detail["production"]["actor"] not in summary  # a run id reads as the kind of run
    assert detail["last_candidate"]["version"] in summary


def test_a_held_version_has_a_promote_form_only_inside_the_airflow_ui(config):
    detail = monitoring.pipeline_detail(config)
    held = [v["version"] for v in detail["versions"] if v["held"]]

    embedded = monitoring.render_pipeline(detail, embed=True)
    standalone = monitoring.render_pipeline(detail)

    assert held, "the shared history holds a version for drift"
    assert embedded.count("<form class='ops'") == len(held)
    assert f"value='{held[0]}'" in embedded
    assert "<form" not in standalone and "<html" in standalone and "<html" not in embedded


def test_chart_x_labels_never_overlap_and_every_mark_has_a_legend():
    labels = [(dt.date(2026, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(60)]
    svg = str(monitoring.line_chart_svg([{"name": "validation", "colour": "#1565c0",
                                          "points": {label: 0.8 for label in labels}}], labels, "t",
                                         threshold=0.7, threshold_name="gate: minimum roc_auc"))
    xs = [float(x) for x in re.findall(r"<text x='([\d.]+)' y='\d+' font-size='10' text-anchor='middle'>2026", svg)]
    bars = str(monitoring.scoring_svg([{"logical_date": label, "rows": 10, "scored": 9, "rejected": 1}
                                       for label in labels]))
    bar_xs = [float(x) for x in re.findall(r"<text x='([\d.]+)' y='\d+' font-size='9' text-anchor='middle'>2026", bars)]

    assert len(xs) > 1 and min(b - a for a, b in itertools.pairwise(xs)) >= 10 * 0.62 * 10
    assert len(bar_xs) > 1 and min(b - a for a, b in itertools.pairwise(bar_xs)) >= 9 * 0.62 * 10
    assert "gate: minimum roc_auc 0.7" in svg and "stroke-dasharray" in svg.split("gate: minimum")[0][-400:]
    assert ">scored<" in bars and ">rejected<" in bars


def test_decisions_waiting_for_a_person_are_listed_with_the_link_that_answers_them(config):
    from include.ml import approval

    decision_dag = approval.decision_dag_id(config.name)
    waiting = {"task_instance": {"dag_id": decision_dag, "dag_run_id": "asset_triggered__2026-01-03T09:00:00+00:00",
                                 "task_id": approval.DECISION_TASK},
               "subject": "credit_default: promote candidate v0003 or keep production v0002?",
               "created_at": "2026-01-03T09:00:05+00:00", "response_received": False}
    answered = {**waiting, "task_instance": {**waiting["task_instance"], "dag_run_id": "manual__x"},
                "response_received": True}
    detail = monitoring.pipeline_detail(config)
    detail["pending_decisions"] = approval.pending_decisions([waiting, answered])
    page = monitoring.render_pipeline(detail)

    (row,) = re.findall(r"<table class='data' id='pending-decisions'>.*?<tbody>(.*?)</tbody>", page, re.S)
    assert "promote candidate v0003 or keep production v0002?" in row
    assert "2026-01-03 09:00 UTC" in row
    assert f"/dags/{decision_dag}/runs/" in html.unescape(row) and "/required_actions" in row
    assert "manual__x" not in page
    assert "Decisions waiting for a person" not in monitoring.render_pipeline(monitoring.pipeline_detail(config))
