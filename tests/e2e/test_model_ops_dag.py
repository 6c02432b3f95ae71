"""The model operations DAG end to end: rollback, promote back, refusals, Asset events, emails."""

from __future__ import annotations

import json

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from include.ml.config import get_pipeline
from include.ml.registry import ModelRegistry
from tests.conftest import ROOT, body_of

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ops_dag(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT, bundle_name="ml_pipeline")
    assert not bag.import_errors
    return bag.dags["ml_model_ops"]


@pytest.fixture
def registry(ml_home, tmp_path) -> ModelRegistry:
    """credit_default's registry with v0001..v0003, production promoted up to v0003."""
    registry = ModelRegistry(get_pipeline("credit_default").registry_path)
    artifact = tmp_path / "model.joblib"
    joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), artifact)
    for day in (1, 2, 3):
        version = registry.register(artifact, {"run_id": f"run-{day}", "logical_date": f"2026-01-0{day}",
                                               "metric": "roc_auc", "metrics": {"roc_auc": 0.8 + day / 100}}, {})
        registry.set_production(version, expected=registry.production(), actor=f"run-{day}", reason="gates passed")
    assert registry.production() == "v0003"
    return registry


def trigger(dag, **conf):
    dag_run = dag.test(run_conf=conf, logical_date=None)
    return dag_run, {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def asset_events(version: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == "ml_production_model__credit_default").all())
        return [row.extra for row in rows if (row.extra or {}).get("version") == version]


def test_rollback_then_promote_back_switches_production_audits_emails_and_emits_the_asset(
    ops_dag, registry, smtp_inbox
):
    smtp_inbox.clear()
    dag_run, states = trigger(ops_dag, pipeline="credit_default", action="rollback", version="",
                              reason="v0003 scores badly on live traffic")
    assert str(dag_run.state) == "success", states
    assert registry.production() == "v0002"
    last = registry.audit()[-1]
    assert (last["action"], last["from"], last["to"]) == ("rollback", "v0003", "v0002")
    assert last["reason"] == "v0003 scores badly on live traffic"
    assert dag_run.run_id in last["actor"]
    email = smtp_inbox.wait_for("PRODUCTION CHANGED by rollback: v0003 -> v0002")
    assert "v0003 scores badly on live traffic" in body_of(email)
    assert [e["action"] for e in asset_events("v0002")][-1:] == ["rollback"]

    dag_run, _ = trigger(ops_dag, pipeline="credit_default", action="promote", version="v0003",
                         reason="live issue was upstream, v0003 is fine")
    assert str(dag_run.state) == "success"
    assert registry.production() == "v0003"
    assert registry.audit()[-1]["action"] == "promote"
    assert asset_events("v0003")[-1]["metrics"]["roc_auc"] == pytest.approx(0.83)


@pytest.mark.parametrize("version", ["../../etc/passwd", "v0009", "v1", " v0001", "v٠٠٠١"])
def test_a_version_that_is_not_registered_is_refused_and_nothing_changes(ops_dag, registry, version):
    audit_before = registry.audit()
    try:
        dag_run, states = trigger(ops_dag, pipeline="credit_default", action="promote", version=version,
                                  reason="try a bad version")
    except Exception as refused:  # the trigger form's own validation (Param pattern)
        assert "version" in str(refused).lower() or "pattern" in str(refused).lower()
    else:
        assert str(dag_run.state) == "failed"
        assert states["check_request"] == "failed"
        assert states["switch_production"] == "upstream_failed"
    assert registry.production() == "v0003"
    assert registry.audit() == audit_before


def test_a_request_without_a_reason_is_refused(ops_dag, registry):
    try:
        _, states = trigger(ops_dag, pipeline="credit_default", action="rollback", version="", reason="")
    except Exception as refused:
        assert "reason" in str(refused).lower() or "minLength" in str(refused)
    else:
        assert states["check_request"] == "failed"
    assert registry.production() == "v0003"


def test_a_promote_of_the_version_already_in_production_is_refused_and_nothing_changes(ops_dag, registry):
    audit_before = registry.audit()

    dag_run, states = trigger(ops_dag, pipeline="credit_default", action="promote", version="v0003",
                              reason="promote it again")

    assert str(dag_run.state) == "failed"
    assert (states["check_request"], states["switch_production"]) == ("failed", "upstream_failed")
    assert registry.production() == "v0003"
    assert registry.audit() == audit_before


def test_the_runbook_rollback_command_rolls_production_back(airflow_db, registry):
    import os
    import shlex
    import subprocess

    runbook = (ROOT / "RUNBOOK.md").read_text()
    command = next(line for line in runbook.splitlines() if line.startswith("bin/airflow dags test ml_model_ops"))
    result = subprocess.run(shlex.split(command), cwd=ROOT, env=dict(os.environ), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert registry.production() == "v0002"
    conf = json.loads(shlex.split(command)[-1])
    assert registry.audit()[-1]["reason"] == conf["reason"]
