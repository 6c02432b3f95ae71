"""Presentation: one formatter for every value, and no text from a file can become markup. Hostile
strings written into every string field the pipeline's files hold (run history, workspace records,
scoring and performance histories, the audit log and the production pointer, drift reports, email
facts) reach the overview page, the pipeline page, the report file and every alert email only as
inert text: no script element, no event-handler attribute, no ``javascript:`` link."""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from include.ml import alerts, monitoring, paths, presentation, steps, storage
from include.ml.config import DriftConfig, FeatureSpec, get_pipeline
from include.ml.drift import ReferenceProfile, drift_report
from include.ml.records import EvaluationRecord, GateResult, RunWorkspace, ValidationRecord
from tests.hostile_html import LINK, assert_no_markup_from_files, hostile


def assert_inert(page: str, shown: list[str] = ()) -> None:
    """No script, no injected element, no event handler, no script link in ``page``; each field in
    ``shown`` reached the page (as text)."""
    assert_no_markup_from_files(page)
    text = html.unescape(page)
    for field in shown:
        assert hostile(field) in text, f"{field} is not on the page"


# -- the one formatter ----------------------------------------------------------------------


@pytest.mark.parametrize(("value", "shown"), [
    (None, "–"), (math.nan, "–"), (0.8123456, "0.8123"), (1234567, "1,234,567"), (True, "yes"), ("v0003", "v0003"),
])
def test_every_value_prints_one_way(value, shown):
    assert presentation.number(value) == shown


def test_signed_numbers_keep_their_sign_and_digits_are_chosen():
    assert presentation.number(0.01234, sign=True) == "+0.0123"
    assert presentation.number(-0.5, 3) == "-0.500"


@pytest.mark.parametrize("url", [LINK, " JavaScript:alert(1)", "data:text/html,<b>x</b>", "vbscript:x"])
def test_a_link_that_could_run_script_becomes_a_dead_link(url):
    assert presentation.href(url) == "#"


@pytest.mark.parametrize("url", ["https://airflow.example.com/dags/x", "/ml-models/", "RUNBOOK.md#alert-x"])
def test_web_and_relative_links_are_kept(url):
    assert presentation.href(url) == url


def test_templates_are_found_next_to_the_library_wherever_the_bundle_is():
    assert Path(presentation.__file__).parent / "templates" == presentation.TEMPLATES
    assert presentation.environment().autoescape is True


# -- hostile files --------------------------------------------------------------------------


def hostile_drift() -> dict:
    """A real drift report whose feature names, levels seen and reasons are hostile."""
    name, level = hostile("drift feature"), hostile("new level")
    profile = ReferenceProfile().fit(pd.DataFrame({name: ["a", "b"] * 300}), [FeatureSpec(name=name,
                                                                                         type="categorical")])
    report = drift_report(profile, pd.DataFrame({name: [level] * 600}),
                          DriftConfig(critical_features=[hostile("critical feature")]))
    report.reasons.append(hostile("drift reason"))
    report.features[name]["reasons"].append(hostile("feature reason"))
    report.features[name]["type"] = hostile("feature type")
    return json.loads(json.dumps(report.to_dict()))


@pytest.fixture(scope="module")
def hostile_home(credit_history, tmp_path_factory) -> Path:
    """The shared three-run history plus one more run, a scoring date, a labels delivery and a
    production switch, every string of them hostile, written with the library's own writers."""
    home = tmp_path_factory.mktemp("hostile") / "ml-home"
    shutil.copytree(credit_history.home, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        layout = config.registry_layout
        real = steps.run_history(config)[-1]
        run_id = hostile("run_id")
        workspace = paths.run_workspace(config.name, run_id)
        workspace.write(ValidationRecord(rows=800, features=3, feature_origin="config",
                                         warnings=[{"message": hostile("validation warning")}]))
        workspace.write(EvaluationRecord(
            metric="roc_auc", greater_is_better=True, candidate={"roc_auc": 0.8}, score=0.8, champion_score=0.79,
            champion_version=hostile("champion version"), holdout_rows=200,
            gates=GateResult(passed=False, reasons=[hostile("gate reason")],
                             interval={"confidence": 0.95, "lower": -0.01, "upper": 0.02,
                                       "resamples": hostile("resamples")})))
        workspace.write_json(RunWorkspace.DRIFT, hostile_drift())
        drift_feature = hostile("drifted feature")
        storage.append_jsonl(layout.run_history, {
            **real, "run_id": run_id, "logical_date": hostile("logical_date"), "version": hostile("version"),
            "reasons": [hostile("reason")], "drifted_features": [drift_feature],
            "drift_by_feature": {drift_feature: {"statistic": hostile("statistic"), "value": 0.5,
                                                 "level": hostile("level")}},
            "drift_verdict": hostile("drift_verdict"), "production_after": hostile("production_after"),
            "production_before": hostile("production_before"), "finished_at": "2999-01-01T00:00:00+00:00",
            "workspace": str(workspace.folder)})
        storage.append_jsonl(layout.scoring_history, {
            "logical_date": hostile("scoring logical_date"), "run_id": hostile("scoring run_id"), "rows": 10,
            "scored": 9, "rejected": 1, "reject_reasons": {hostile("reject reason"): 1},
            "versions": [hostile("scoring version")], "prediction_drift": {"verdict": hostile("prediction drift")},
            "finished_at": "2999-01-01T00:00:00+00:00"})
        storage.append_jsonl(layout.performance_history, {
            "scoring_date": hostile("performance scoring_date"), "labels_date": hostile("labels_date"),
            "model_version": hostile("model_version"), "metric": "roc_auc", "value": 0.7, "validation_score": 0.8,
            "rows": 10, "status": hostile("status"), "reasons": [hostile("performance reason")]})
        # a switch as the registry writes it: chained to the log, signed into the pointer
        registry = steps.registry_for(config)
        entry = registry._chained({
            "time": hostile("audit time"), "action": hostile("audit action"), "from": hostile("audit from"),
            "to": hostile("audit to"), "actor": hostile("audit actor"), "reason": hostile("audit reason")})
        registry._append_audit(entry)
        registry._write_pointer({**registry.pointer(), "actor": hostile("pointer actor"),
                                 "since": hostile("pointer since"), "entry": entry})
    return home


@pytest.fixture
def config(hostile_home, monkeypatch):
    monkeypatch.setenv("ML_HOME", str(hostile_home))
    return get_pipeline("credit_default").model_copy(update={"description": hostile("description")})


PIPELINE_PAGE_FIELDS = [
    "run_id", "logical_date", "version", "reason", "drifted feature", "statistic", "level", "drift_verdict",
    "production_after", "production_before", "validation warning", "resamples", "drift feature",
    "new level", "critical feature", "feature reason", "feature type", "scoring logical_date",
    "reject reason", "scoring version", "prediction drift", "performance scoring_date", "labels_date",
    "model_version", "status", "audit time", "audit action", "audit from", "audit to", "audit actor",
    "audit reason", "pointer actor", "pointer since", "description"]


def test_the_overview_page_shows_hostile_history_as_text(config):
    page = monitoring.render_overview(monitoring.overview([config]))

    assert_inert(page, ["logical_date", "drift_verdict", "status", "pointer since"])


def test_the_pipeline_page_shows_every_hostile_field_as_text(config):
    detail = monitoring.pipeline_detail(config)

    assert detail["latest"]["run_id"] == hostile("run_id")  # the hostile run is the latest
    assert_inert(monitoring.render_pipeline(detail), PIPELINE_PAGE_FIELDS)


def test_the_report_file_shows_every_hostile_field_as_text(config, hostile_home, tmp_path):
    out = tmp_path / "report.html"

    done = subprocess.run([sys.executable, "-m", "include.ml", "report", "--pipeline", "credit_default",
                           "--out", str(out)], env={**os.environ, "ML_HOME": str(hostile_home)},
                          capture_output=True, text=True, cwd=paths.REPO_ROOT, check=False)

    assert done.returncode == 0, done.stderr
    assert_inert(out.read_text(), [f for f in PIPELINE_PAGE_FIELDS if f != "description"])


# -- every email ----------------------------------------------------------------------------


@pytest.fixture
def hostile_runbook(monkeypatch):
    monkeypatch.setenv("ML_RUNBOOK_URL", LINK)
    monkeypatch.setenv("ML_AIRFLOW_URL", "https://airflow.example.com")


def hostile_outcome(branch: str) -> dict:
    return {"pipeline": "credit_default", "run_id": hostile("run_id"), "logical_date": hostile("logical_date"),
            "branch": branch, "version": hostile("version"), "production_before": hostile("production_before"),
            "production_after": hostile("production_after"), "metric": hostile("metric"), "score": 0.81,
            "champion_score": 0.8, "reasons": [hostile("reason")], "drift_verdict": hostile("drift_verdict"),
            "drifted_features": [hostile("drifted feature")]}


@pytest.mark.parametrize("branch", ["promote", "hold", "reject"])
def test_decision_emails_show_hostile_facts_and_drift_tables_as_text(hostile_runbook, branch):
    email = alerts.outcome_email(hostile_outcome(branch), drift=hostile_drift(), run_url=hostile("run_url"))

    assert_inert(email.html, ["run_id", "logical_date", "version", "production_before", "production_after",
                              "metric", "reason", "drift_verdict", "run_url", "drift feature", "new level",
                              "feature reason", "feature type", "critical feature"])
    assert f"Runbook: <a href='#'>{LINK}#alert-" in email.html  # ML_RUNBOOK_URL is shown, not linked


def test_a_production_change_email_shows_hostile_audit_fields_as_text(hostile_runbook):
    entry = {"action": hostile("action"), "from": hostile("from"), "to": hostile("to"), "actor": hostile("actor"),
             "reason": hostile("audit reason"), "time": hostile("time")}

    email = alerts.production_change_email("credit_default", entry, hostile("run_id"),
                                           {"metric": hostile("metric"), "metrics": {hostile("metric"): 0.8}})

    assert_inert(email.html, ["action", "from", "to", "actor", "audit reason", "time", "run_id", "metric"])


@pytest.mark.parametrize("event", ["task_failed", "artifact_tampered", "scoring_rejects"])
def test_a_task_failure_email_shows_a_hostile_error_as_text(hostile_runbook, event):
    email = alerts.task_failure_email("credit_default", hostile("dag"), hostile("task"), hostile("run_id"),
                                      hostile("ds"), error=hostile("error"), try_number=1, log_url=LINK, event=event)

    assert_inert(email.html, ["dag", "task", "run_id", "ds", "error"])


def test_a_run_failure_email_shows_hostile_tasks_and_reason_as_text(hostile_runbook):
    email = alerts.run_failure_email("credit_default", hostile("dag"), hostile("run_id"), hostile("ds"),
                                     failed_tasks=[hostile("task")], reason=hostile("reason"))

    assert_inert(email.html, ["dag", "run_id", "ds", "task", "reason"])


def test_a_performance_email_shows_hostile_breaches_as_text(hostile_runbook):
    breach = {"model_version": hostile("model_version"), "scoring_date": hostile("scoring_date"), "rows": 10,
              "metric": hostile("metric"), "value": 0.5, "validation_score": 0.8, "floor": 0.7,
              "status": hostile("status"), "reasons": [hostile("reason")]}

    email = alerts.performance_email({"pipeline": "credit_default", "labels_date": hostile("labels_date"),
                                      "labelled_rows": 10, "matched_rows": 9, "breaches": [breach]})

    assert_inert(email.html, ["model_version", "scoring_date", "metric", "status", "reason", "labels_date"])


def test_a_prediction_drift_email_shows_hostile_fields_as_text(hostile_runbook):
    summary = {"pipeline": "credit_default", "logical_date": hostile("logical_date"), "run_id": hostile("run_id"),
               "scored": 100, "prediction_drift": {
                   "reference_version": hostile("reference_version"), "statistic": hostile("statistic"),
                   "value": 0.3, "level": hostile("level"), "mean": 0.2, "reference_mean": 0.1,
                   "reasons": [hostile("reason")]}}

    email = alerts.prediction_drift_email(summary)

    assert_inert(email.html, ["logical_date", "run_id", "reference_version", "statistic", "level", "reason"])


@pytest.mark.parametrize(("value", "shown"), [
    ("2026-01-03T14:05:33.123+00:00", "2026-01-03 14:05 UTC"), ("2026-01-03T15:05:00+01:00", "2026-01-03 14:05 UTC"),
    ("2026-01-03", "2026-01-03"), (None, "–"), ("not a time", "not a time")])
def test_times_read_in_utc_and_say_so(value, shown):
    from include.ml.presentation import when

    assert when(value) == shown


@pytest.mark.parametrize(("value", "shown"), [
    ("admin via manual__2026-01-03T10:00:00+00:00", "admin (manual run)"),
    ("scheduled__2026-01-02T00:00:00+00:00", "scheduled run of 2026-01-02"),
    ("backfill__2026-01-02T00:00:00+00:00", "backfill run of 2026-01-02"),
    ("asset_triggered__2026-01-02T00:00:00+00:00", "asset-triggered run of 2026-01-02"),
    ("cli:bob", "bob (command line)"), ("alice", "alice")])
def test_an_actor_reads_as_the_person_or_the_kind_of_run(value, shown):
    from include.ml.presentation import actor

    assert actor(value) == shown
