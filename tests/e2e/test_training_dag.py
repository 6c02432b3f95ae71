"""The training DAG end to end in Airflow (dag.test on SQLite), with alert emails to a real SMTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import pytest

from include.ml import paths
from include.ml.config import get_pipeline
from include.ml.simulate import write_batches
from include.ml.steps import registry_for, run_history
from tests.conftest import ROOT, body_of

pytestmark = pytest.mark.e2e

START = dt.date(2026, 1, 1)


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT, bundle_name="ml_pipeline")
    assert not bag.import_errors
    return bag.dags


def run_dag(dag, day: dt.date):
    """One dag.test() run for a logical date; returns the DagRun and its task states by task id."""
    dag_run = dag.test(logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    return dag_run, states


def workspace(pipeline: str, dag_run) -> Path:
    return paths.workspace_dir(pipeline, dag_run.run_id)


def test_first_run_promotes_then_gates_decide_then_drift_holds_with_production_unchanged(
    dags, ml_home, smtp_inbox
):
    config = get_pipeline("credit_default")
    dag = dags[config.dag_id]
    registry = registry_for(config)
    write_batches(config, START, 3, drift_from=START + dt.timedelta(days=2), rows=1500)
    smtp_inbox.clear()

    # Day 1: no production model yet, the gates pass, v0001 is promoted and announced.
    first, states = run_dag(dag, START)
    assert str(first.state) == "success"
    assert states["promote"] == "success"
    assert states["hold"] == states["reject"] == "skipped"
    assert states["report"] == "success"
    assert registry.production() == "v0001"
    promoted = smtp_inbox.wait_for("PROMOTED: v0001")
    assert promoted["X-Envelope-To"] == "ml-oncall@example.com"
    assert first.run_id in body_of(promoted)
    assert "2026-01-01" in promoted["subject"]

    # Day 2, same distribution: the candidate is compared with v0001 on the same holdout rows and is
    # not worse (these seeded 1,500 rows give 0.826 against 0.780 AUC, the 90% interval's lower end
    # -0.002, far above the allowed -0.04), so the gates pass and v0002 is promoted.
    second, states = run_dag(dag, START + dt.timedelta(days=1))
    evaluation = json.loads((workspace(config.name, second) / "evaluation.json").read_text())
    assert evaluation["champion_version"] == "v0001"
    assert evaluation["gates"]["passed"] is True, evaluation["gates"]
    assert evaluation["gates"]["interval"]["lower"] > -config.gates.max_regression
    decision = json.loads((workspace(config.name, second) / "decision.json").read_text())
    assert (decision["branch"], decision["reasons"]) == ("promote", ["quality gates passed"])
    assert states["promote"] == "success"
    assert states["hold"] == states["reject"] == "skipped"
    assert registry.production() == "v0002"
    production_before_drift = registry.production()
    pointer_before = registry.pointer_path.read_bytes()
    audit_before = registry.audit()

    # Day 3, drift switched on: the candidate is registered as held, production does not move.
    third, states = run_dag(dag, START + dt.timedelta(days=2))
    assert str(third.state) == "success"
    assert states["hold"] == "success"
    assert states["promote"] == states["reject"] == "skipped"
    assert registry.production() == production_before_drift
    assert registry.pointer_path.read_bytes() == pointer_before
    assert registry.audit() == audit_before
    held = registry.metadata("v0003")
    assert held["decision"] == "held"
    assert held["run_id"] == third.run_id
    drift_mail = smtp_inbox.wait_for("HOLD (drift)")
    body = body_of(drift_mail)
    assert f"production stays {production_before_drift}" in drift_mail["subject"]
    assert "channel" in body and "bnpl_partner" in body  # the new category level is named
    assert "Drift verdict <b>drift</b>" in body  # the DriftReport's HTML table
    # features in the order of the production model's importance, each beside its drift
    assert "order of the production model's permutation importance" in body
    assert "<th>importance rank</th>" in body
    assert third.run_id in body

    history = run_history(config)
    assert [h["branch"] for h in history] == ["promote", "promote", "hold"]
    assert [h["logical_date"] for h in history] == ["2026-01-01", "2026-01-02", "2026-01-03"]


def test_a_candidate_trained_on_scrambled_labels_is_rejected_and_production_stays(dags, ml_home, smtp_inbox):
    import pandas as pd

    config = get_pipeline("credit_default")
    dag = dags[config.dag_id]
    write_batches(config, START, 2, rows=1200)
    run_dag(dag, START)
    registry = registry_for(config)
    pointer_before = registry.pointer_path.read_bytes()

    # Day 2's labels arrive scrambled (a broken join upstream): same columns, no signal left.
    landing = config.source.path_for("2026-01-02")
    frame = pd.read_csv(landing)
    frame[config.target] = frame[config.target].sample(frac=1.0, random_state=3).to_numpy()
    frame.to_csv(landing, index=False)
    smtp_inbox.clear()

    dag_run, states = run_dag(dag, START + dt.timedelta(days=1))
    assert str(dag_run.state) == "success"
    assert states["reject"] == "success"
    assert states["promote"] == states["hold"] == "skipped"
    assert registry.pointer_path.read_bytes() == pointer_before
    rejected = registry.metadata("v0002")
    assert rejected["decision"] == "rejected"
    assert rejected["metrics"]["roc_auc"] < config.gates.min_score
    email = smtp_inbox.wait_for("REJECTED: v0002")
    assert "is not at least the minimum 0.7" in body_of(email)


def test_regression_pipeline_with_inferred_features_trains_and_promotes(dags, ml_home, smtp_inbox):
    config = get_pipeline("house_prices")
    write_batches(config, START, 1, rows=800)
    dag_run, states = run_dag(dags[config.dag_id], START)
    assert str(dag_run.state) == "success", states
    registry = registry_for(config)
    assert registry.production() == "v0001"
    metadata = registry.metadata("v0001")
    assert metadata["metric"] == "rmse"
    assert 0 < metadata["metrics"]["rmse"] < config.gates.min_score
    assert {f["name"] for f in metadata["features"]} >= {"area_m2", "neighbourhood"}
    assert (config.registry_path / "feature_spec.json").exists()
    smtp_inbox.wait_for("[ml:house_prices] PROMOTED")


def test_bad_batch_fails_validation_at_once_is_quarantined_and_emails_the_failure(dags, ml_home, smtp_inbox):
    config = get_pipeline("credit_default")
    dag = dags[config.dag_id]
    write_batches(config, START, 2, rows=1200)
    run_dag(dag, START)
    registry = registry_for(config)
    assert registry.production() == "v0001"
    pointer_before = registry.pointer_path.read_bytes()

    # Day 2 arrives broken: text in a numeric column and utilisation out of range.
    landing = config.source.path_for("2026-01-02")
    lines = landing.read_text().splitlines()
    header = lines[0].split(",")
    age, utilization = header.index("age"), header.index("utilization")
    for i in (1, 2, 3):
        cells = lines[i].split(",")
        cells[age], cells[utilization] = "forty", "7.5"
        lines[i] = ",".join(cells)
    landing.write_text("\n".join(lines) + "\n")
    delivered = landing.read_bytes()
    smtp_inbox.clear()

    dag_run, states = run_dag(dag, START + dt.timedelta(days=1))
    assert str(dag_run.state) == "failed"
    assert states["validate"] == "failed"
    assert states["train"] == "upstream_failed"
    validate_ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "validate")
    assert validate_ti.try_number == 1, "bad data must not be retried"

    # Nothing lost: the landing file is as delivered, a copy and the reasons are in quarantine.
    assert landing.read_bytes() == delivered
    quarantined = list((ml_home / "quarantine" / "credit_default").iterdir())
    assert len(quarantined) == 1
    reasons = json.loads((quarantined[0] / "reasons.json").read_text())
    assert {(f["column"], f["rule"]) for f in reasons["failures"]} >= {
        ("age", "are not numbers"), ("utilization", "above maximum 1")}
    assert (quarantined[0] / landing.name).read_bytes() == delivered
    # Recorded as a failed run (the task's failure callback), with its step, error and quarantine folder.
    failed = run_history(config)[-1]
    assert (failed["run_id"], failed["state"], failed["step"]) == (dag_run.run_id, "failed", "validate")
    assert failed["error"].startswith("batch failed validation") and failed["quarantined_to"] == str(quarantined[0])
    # Production untouched.
    assert registry.pointer_path.read_bytes() == pointer_before
    assert registry.versions() == ["v0001"]

    failure = smtp_inbox.wait_for("FAILED task validate")
    body = body_of(failure)
    assert config.dag_id in failure["subject"]
    assert dag_run.run_id in body
    assert "column 'age': 3 values are not numbers" in body
    smtp_inbox.wait_for(f"FAILED run {config.dag_id}")


def test_airflow_dags_test_command_from_the_readme_runs_the_pipeline(airflow_db, ml_home):
    config = get_pipeline("credit_default")
    write_batches(config, START, 1, rows=1000)
    result = subprocess.run(
        [str(ROOT / "bin" / "airflow"), "dags", "test", config.dag_id, "2026-01-01"],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert registry_for(config).production() == "v0001"
    assert [h["branch"] for h in run_history(config)] == ["promote"]


def test_a_tampered_production_artifact_stops_the_run_and_sends_the_tampered_alert(dags, ml_home, smtp_inbox):
    config = get_pipeline("credit_default")
    dag = dags[config.dag_id]
    write_batches(config, START, 2, rows=1000)
    run_dag(dag, START)
    registry = registry_for(config)
    artifact = registry.versions_dir / "v0001" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    smtp_inbox.clear()

    dag_run, states = run_dag(dag, START + dt.timedelta(days=1))
    assert str(dag_run.state) == "failed"
    assert states["evaluate"] == "failed"
    assert registry.production() == "v0001"
    assert registry.versions() == ["v0001"]
    email = smtp_inbox.wait_for("TAMPERED model artifact evaluate")
    assert "will not be loaded" in body_of(email)
    assert "#alert-tampered-model-artifact" in body_of(email)


def test_a_promotion_records_the_production_asset_event_with_version_and_metrics(dags, ml_home):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    config = get_pipeline("credit_default")
    write_batches(config, START, 1, rows=1000)
    dag_run, _ = run_dag(dags[config.dag_id], START)
    with create_session() as session:
        events = [e.extra for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                  .filter(AssetModel.name == "ml_production_model__credit_default",
                          AssetEvent.source_run_id == dag_run.run_id)]
    assert len(events) == 1
    assert (events[0]["version"], events[0]["action"]) == ("v0001", "promote")
    assert 0.7 < events[0]["metrics"]["roc_auc"] < 1


def test_a_rerun_of_a_date_reuses_its_version_switches_nothing_and_says_so(dags, ml_home, smtp_inbox):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    config = get_pipeline("credit_default")
    write_batches(config, START, 1, rows=1000)
    run_dag(dags[config.dag_id], START)
    registry = registry_for(config)
    audit_before = registry.audit()
    smtp_inbox.clear()

    rerun, states = run_dag(dags[config.dag_id], START)

    assert states["promote"] == "success"
    assert registry.versions() == ["v0001"] and registry.audit() == audit_before
    smtp_inbox.wait_for("RERUN, nothing changed: v0001 was already registered for 2026-01-01")
    with create_session() as session:
        events = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(
            AssetModel.name == "ml_production_model__credit_default", AssetEvent.source_run_id == rerun.run_id)
        assert events.count() == 0
