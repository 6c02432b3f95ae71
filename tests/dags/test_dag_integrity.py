"""DAG integrity: the bundle parses cleanly and cheaply, and every DAG is set up for unattended runs."""

from __future__ import annotations

import copy
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from include.ml.config import load_all

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "numpy", "sklearn", "scipy", "pandera", "joblib", "pyarrow")


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT, bundle_name="ml_pipeline")


def _dag_ids() -> list[str]:
    return [c.dag_id for c in load_all()]


def test_bundle_parses_without_import_errors_and_has_one_training_dag_per_config(dagbag):
    assert dagbag.import_errors == {}
    assert set(_dag_ids()) <= set(dagbag.dag_ids)
    assert len(_dag_ids()) >= 2  # a classification and a regression pipeline ship with the bundle


def test_airflowignore_keeps_the_parser_out_of_everything_but_dags(dagbag):
    parsed = {Path(dag.fileloc).resolve().parent for dag in dagbag.dags.values()}
    assert parsed == {ROOT / "dags"}


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_training_dag_is_set_up_for_unattended_daily_runs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.tags and "ml" in dag.tags
    assert dag.catchup is False
    # a run waiting for its late batch must leave room for the next date's and a person's run
    assert dag.max_active_runs == next(c for c in load_all() if c.dag_id == dag_id).airflow.max_active_runs >= 3
    assert dag.get_task("wait_for_batch").deferrable, "the wait for a batch must hold no worker slot"
    assert dag.doc_md and "promote" in dag.doc_md
    assert dag.on_failure_callback, "the DAG must email when a run fails"
    for task in dag.tasks:
        assert task.owner and task.owner != "airflow", f"{task.task_id} has no owner"
        assert task.retries >= 2, f"{task.task_id} has {task.retries} retries"
        assert task.retry_exponential_backoff, f"{task.task_id} retries without backoff"
        assert task.on_failure_callback, f"{task.task_id} fails silently"


def test_every_dag_in_the_bundle_has_tags_an_owner_retries_and_failure_emails(dagbag):
    assert "ml_model_ops" in dagbag.dags
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md, f"{dag.dag_id} has no docs"
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag.dag_id}.{task.task_id} has no owner"
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id} has {task.retries} retries"
            assert task.on_failure_callback, f"{dag.dag_id}.{task.task_id} fails silently"


def test_model_ops_trigger_form_makes_the_person_pick_and_lets_a_rollback_go_without_a_version(dagbag):
    from airflow.sdk.definitions.param import ParamsDict

    dag = dagbag.dags["ml_model_ops"]
    assert dag.schedule is None
    params = dag.params
    assert params.get_param("pipeline").schema["enum"] == sorted(c.name for c in load_all())
    assert params.get_param("action").schema["enum"] == ["promote", "rollback"]
    assert params.get_param("action").value is None  # no default action: the person picks
    assert params.get_param("pipeline").value is None

    def form(**values) -> dict:
        filled = ParamsDict({k: copy.deepcopy(params.get_param(k)) for k in params})  # resolving sets .value
        for key, value in values.items():
            filled[key] = value
        return filled.validate()

    assert form(pipeline="credit_default", action="rollback", reason="r")["version"] is None  # the RUNBOOK's
    assert form(pipeline="credit_default", action="promote", version="v0002", reason="r")["version"] == "v0002"
    for schema in (params.get_param(k).schema for k in params):  # refusals in words come from check_request
        assert "pattern" not in schema and "minLength" not in schema
    with pytest.raises(Exception, match="action"):
        form(pipeline="credit_default", reason="r")


@pytest.mark.parametrize("dag_id", _dag_ids())
def test_drift_check_branches_to_promote_hold_or_reject_and_report_survives_skips(dagbag, dag_id):
    from include.ml.steps import BRANCH_STEP, BRANCHES, STEPS

    dag = dagbag.dags[dag_id]
    # the DAG's tasks are the library's steps in the library's order, the branch step fanned out
    before, after = STEPS[:STEPS.index(BRANCH_STEP)], STEPS[STEPS.index(BRANCH_STEP) + 1:]
    assert set(dag.task_ids) == {"wait_for_batch", *before, *BRANCHES, *after}
    assert dag.get_task(before[0]).upstream_task_ids == {"wait_for_batch"}  # the batch is there before extract
    for upstream, downstream in itertools.pairwise(before):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    branch = dag.get_task(before[-1])
    assert branch.task_id == "drift_check"
    assert branch.downstream_task_ids == {"promote", "hold", "reject"}
    assert "Branch" in type(branch).__name__
    for name in ("promote", "hold", "reject"):
        assert dag.get_task(name).on_success_callback, f"{name} must send an email"
    report = dag.get_task("report")
    assert report.upstream_task_ids == {"promote", "hold", "reject"}
    assert report.trigger_rule == "none_failed_min_one_success"
    # promotions update the pipeline's model Asset through its own alias, only when production changed
    pipeline = dag_id.removeprefix("ml_training__")
    assert [o.name for o in dag.get_task("promote").outlets] == [f"ml_production_model_change__{pipeline}"]


def _parse_in_subprocess(code: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **(extra_env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_dag_file_parses_without_importing_pandas_or_sklearn():
    result = _parse_in_subprocess(f"""
        import json, sys
        from airflow.dag_processing.dagbag import BundleDagBag
        bag = BundleDagBag(dag_folder="dags", bundle_path=".", bundle_name="ml_pipeline")
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"dags": len(bag.dags), "errors": list(bag.import_errors), "heavy": heavy}}))
    """)
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == []
    assert parsed["dags"] >= 2
    assert parsed["heavy"] == [], f"parsing imported {parsed['heavy']}"


FORBIDDEN_SECRETS = """
import os

from airflow.secrets import BaseSecretsBackend


class ForbiddenSecrets(BaseSecretsBackend):
    # Airflow swallows a backend's exceptions and asks the next one, so every lookup is written down.
    def _record(self, what):
        with open(os.environ["LOOKUP_LOG"], "a") as log:
            log.write(what + "\\n")
        raise RuntimeError(f"{what} read while parsing")

    def get_conn_value(self, conn_id, team_name=None):
        self._record(f"connection {conn_id}")

    def get_variable(self, key, team_name=None):
        self._record(f"variable {key}")
"""


def _parse_with_lookups_forbidden(tmp_path: Path, dag_folder: Path, bundle_path: Path) -> dict:
    (tmp_path / "forbidden_secrets.py").write_text(FORBIDDEN_SECRETS)
    result = _parse_in_subprocess(f"""
        import json
        from airflow.dag_processing.dagbag import BundleDagBag
        bag = BundleDagBag(dag_folder={str(dag_folder)!r}, bundle_path={str(bundle_path)!r}, bundle_name="b")
        errors = {{k: str(v)[-2000:] for k, v in bag.import_errors.items()}}
        print(json.dumps({{"dags": len(bag.dags), "errors": errors}}))
    """, {
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
        "LOOKUP_LOG": str(tmp_path / "lookups.log"),
        "AIRFLOW__SECRETS__BACKEND": "forbidden_secrets.ForbiddenSecrets",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent-dir/no-airflow.db",
    })
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    lookups = tmp_path / "lookups.log"
    parsed["lookups"] = lookups.read_text().splitlines() if lookups.exists() else []
    return parsed


def test_parsing_reads_no_connection_variable_or_database(tmp_path):
    """Parse with a secrets backend that raises on any lookup and a database that does not exist."""
    parsed = _parse_with_lookups_forbidden(tmp_path, ROOT / "dags", ROOT)
    assert parsed["lookups"] == []
    assert parsed["errors"] == {}
    assert parsed["dags"] >= 2


def test_the_parse_check_above_catches_a_dag_that_reads_a_variable(tmp_path):
    bad = tmp_path / "bad_dags"
    bad.mkdir()
    (bad / "reads_variable.py").write_text(
        "from airflow.sdk import DAG, Variable\n"
        "with DAG('reads_variable', schedule=None, params={'x': Variable.get('threshold')}):\n"
        "    pass\n"
    )
    parsed = _parse_with_lookups_forbidden(tmp_path, bad, bad)
    assert parsed["lookups"] == ["variable threshold"]
    assert parsed["dags"] == 0
