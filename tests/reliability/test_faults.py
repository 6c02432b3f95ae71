"""Faults injected into real runs: a task process killed with SIGKILL at each step and then retried, a
transient read failure recovered by Airflow's retry with backoff, two runs for different dates at once,
and the mail server down. After each, the run completes (or fails for the pipeline's own reason) and
the registry is consistent, with nothing lost."""

from __future__ import annotations

import datetime as dt
import errno
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from include.ml import paths, steps
from include.ml.config import get_pipeline
from include.ml.registry import VERSION_PATTERN
from tests.conftest import ROOT
from tests.reliability.conftest import DAY2, day2_at_simulation_size, run_date

pytestmark = pytest.mark.reliability

RUN_ID = f"scheduled__{DAY2}T00:00:00+00:00"

# The child is the task's process: it runs the steps as the DAG's tasks do and, in the chosen step, kills
# itself with SIGKILL at the chosen point. The hook lives here, in the test, not in the product.
CHILD = r"""
import importlib, os, signal, sys
from include.ml import paths, steps
from include.ml.config import get_pipeline

config = get_pipeline("credit_default")
ds, run_id, kill_step, owner, attribute, when = sys.argv[1:7]
workspace = paths.workspace_dir(config.name, run_id)

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

def install():
    module_name, _, class_name = owner.partition(":")
    target = importlib.import_module(module_name)
    if class_name:
        target = getattr(target, class_name)
    original = getattr(target, attribute)
    def hooked(*args, **kwargs):
        if when == "before":
            die()
        result = original(*args, **kwargs)
        die()
        return result
    setattr(target, attribute, hooked)

branch = None
for name in steps.STEPS:
    def call(name=name):
        return steps.run_step(name, config, workspace, run_id, ds, branch=branch)
    if name == kill_step:
        if owner == "step":  # the step's work is done, the process dies before Airflow records success
            call()
            die()
        install()
    result = call()
    if name == "drift_check":
        branch = result["branch"]
print("not killed")
"""

# (task, where it is killed): module[:Class], attribute, before|after the call
KILL_POINTS = [
    ("extract", "pandas:DataFrame", "to_parquet", "after"),  # batch.parquet written, extract.json not
    ("validate", "pandas:DataFrame", "to_parquet", "after"),  # validated.parquet written, the rest not
    ("train", "joblib", "dump", "after"),  # the candidate half-placed (temporary name)
    ("evaluate", "include.ml.evaluate", "paired_bootstrap", "before"),  # champion loaded, nothing written
    ("drift_check", "include.ml.drift", "drift_report", "after"),  # drift measured, nothing written
    ("conclude", "include.ml.storage", "sha256_file", "after"),  # version half-assembled in staging
    ("conclude", "include.ml.registry:ModelRegistry", "set_production", "before"),  # registered, not switched
    ("conclude", "include.ml.registry:ModelRegistry", "_append_audit", "before"),  # pointer moved, log not
    ("conclude", "step", "-", "-"),
    ("report", "include.ml.records:RunWorkspace", "write", "after"),  # summary.json written, history not
    ("report", "step", "-", "-"),
]


def assert_consistent(config, expected_versions: int) -> None:
    """Every version complete and loadable, production one of them, the audit log one unbroken chain that
    ends at production, the pointer's own record logged, one history line per run."""
    registry = steps.registry_for(config)
    versions = registry.versions()
    assert versions == [f"v{i:04d}" for i in range(1, expected_versions + 1)]
    for version in versions:
        metadata = registry.metadata(version)
        assert metadata["version"] == version
        registry.load(version)  # sha256 verified
    leftovers = [p.name for p in registry.versions_dir.iterdir() if not VERSION_PATTERN.fullmatch(p.name)]
    assert all(name.startswith(".staging-") for name in leftovers)  # never mistaken for a version
    audit = registry.audit()  # the log file, plus a switch a kill kept out of it (recorded in the pointer)
    assert audit
    for earlier, later in itertools.pairwise(audit):
        assert later["from"] == earlier["to"]
    assert audit[-1]["to"] == registry.production() == registry.pointer()["entry"]["to"]
    runs = [h["run_id"] for h in steps.run_history(config)]
    assert len(runs) == len(set(runs))


@pytest.fixture(scope="module")
def undisturbed(production_home: Path, tmp_path_factory) -> dict:
    """Day 2 run once without faults: what every killed-and-retried run must end with."""
    import shutil

    home = tmp_path_factory.mktemp("undisturbed") / "ml_home"
    shutil.copytree(production_home, home)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        day2_at_simulation_size(config)
        outcome = run_date(config, DAY2, run_id=RUN_ID)
        registry = steps.registry_for(config)
        return {"branch": outcome.branch, "production": registry.production(), "audit": len(registry.audit()),
                "metrics": registry.metadata("v0002")["metrics"]}


KILLS: list[str] = []


@pytest.mark.parametrize(("task", "owner", "attribute", "when"), KILL_POINTS,
                         ids=[f"{t}-{o.split(':')[-1]}.{a}-{w}" if o != "step" else f"{t}-after-its-work"
                              for t, o, a, w in KILL_POINTS])
def test_a_task_killed_with_sigkill_and_retried_completes_the_run_with_a_consistent_registry(
        task: str, owner: str, attribute: str, when: str, home: Path, undisturbed: dict):
    config = get_pipeline("credit_default")
    landing = day2_at_simulation_size(config).read_bytes()  # as in `undisturbed`

    child = subprocess.run([sys.executable, "-c", CHILD, DAY2, RUN_ID, task, owner, attribute, when],
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stdout[-1000:] + child.stderr[-2000:]
    KILLS.append(task)

    # Airflow's retry: the same task again, same run id and workspace, then the rest of the run
    retry = run_date(config, DAY2, run_id=RUN_ID, start_at=task)

    assert retry.failed_task is None, retry.error
    registry = steps.registry_for(config)
    assert retry.branch == undisturbed["branch"]
    assert registry.production() == undisturbed["production"]
    assert len(registry.audit()) == undisturbed["audit"]
    assert registry.metadata("v0002")["metrics"] == undisturbed["metrics"]  # the same model, not a second one
    assert_consistent(config, expected_versions=2)
    assert config.source.path_for(DAY2).read_bytes() == landing
    assert [h["run_id"] for h in steps.run_history(config)][-1] == RUN_ID


CONCURRENT = r"""
import sys
from include.ml import paths, steps
from include.ml.config import get_pipeline
from include.ml.errors import PipelineError
config = get_pipeline("credit_default")
ds = sys.argv[1]
run_id = f"scheduled__{ds}T00:00:00+00:00"
try:
    outcome = steps.run_steps(config, run_id, ds)[steps.BRANCH_STEP]
    print("outcome", outcome["branch"], outcome["version"], outcome["switched"])
except PipelineError as error:
    print("refused", type(error).__name__, str(error).replace("\n", " "))
"""


def test_two_training_runs_for_different_dates_at_the_same_time_never_corrupt_the_registry(home: Path):
    from include.ml.simulate import write_batches

    config = get_pipeline("credit_default")
    write_batches(config, dt.date(2026, 1, 3), 1, rows=800)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [subprocess.Popen([sys.executable, "-c", CONCURRENT, ds], cwd=ROOT, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for ds in (DAY2, "2026-01-03")]
    results = [child.communicate(timeout=300) for child in children]
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err[-2000:]
    lines = [out.strip().splitlines()[-1] for out, _ in results]

    registry = steps.registry_for(config)
    assert_consistent(config, expected_versions=3)
    assert {registry.metadata(v)["run_id"] for v in ("v0002", "v0003")} == {
        f"scheduled__{ds}T00:00:00+00:00" for ds in (DAY2, "2026-01-03")}
    for line in lines:
        # either run concluded, or it lost the compare-and-swap and said so (production was not touched by it)
        assert line.startswith("outcome ") or (
            line.startswith("refused RegistryError") and "another change won" in line)
    switched = [line for line in lines if line.endswith(" True")]
    assert len(registry.audit()) == 1 + len(switched)


def test_a_transient_read_failure_is_recovered_by_airflow_retry_with_backoff(airflow_db, home: Path, monkeypatch):
    """Real Airflow (dag.test): the first read of the batch hits EIO, the retry after the backoff reads it."""
    import pandas as pd
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    config = get_pipeline("credit_default")
    reads = {"count": 0}
    real_read_csv = pd.read_csv

    def flaky_read_csv(*args, **kwargs):
        reads["count"] += 1
        if reads["count"] == 1:
            raise OSError(errno.EIO, "Input/output error", str(args[0]))
        return real_read_csv(*args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", flaky_read_csv)
    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ml_training.py"), bundle_path=ROOT, bundle_name="ml_pipeline")
    dag = bag.dags[config.dag_id]
    dag.get_task("extract").retry_delay = dt.timedelta(seconds=1)  # the config's 60 s, shortened for the test
    day = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)

    dag_run = dag.test(logical_date=day, run_after=day)

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    extract = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "extract")
    assert extract.try_number == 2
    with create_session() as session:
        [first] = session.query(TaskInstanceHistory).filter_by(dag_id=config.dag_id, run_id=dag_run.run_id,
                                                               task_id="extract").all()
        assert (extract.start_date - first.end_date).total_seconds() >= 1  # waited for the backoff
    assert reads["count"] >= 2
    assert_consistent(config, expected_versions=2)


def test_with_the_mail_server_down_the_outcome_is_recorded_the_alert_logged_and_the_run_reflects_the_pipeline(
        airflow_db, home: Path, monkeypatch, caplog, capfd):
    """Real Airflow (dag.test) with smtp_default pointing at a closed port."""
    import logging
    import socket

    from airflow.dag_processing.dagbag import BundleDagBag

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": closed,
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 1}}))
    caplog.set_level(logging.INFO)
    config = get_pipeline("credit_default")
    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ml_training.py"), bundle_path=ROOT, bundle_name="ml_pipeline")
    dag = bag.dags[config.dag_id]
    day = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)

    dag_run = dag.test(logical_date=day, run_after=day)

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states  # the pipeline succeeded; the mail server does not change that
    branch = next(b for b in steps.BRANCHES if states[b] == "success")
    summary = json.loads((paths.workspace_dir(config.name, dag_run.run_id) / "summary.json").read_text())
    assert summary["branch"] == branch and steps.run_history(config)[-1]["run_id"] == dag_run.run_id
    logged = caplog.text + "".join(capfd.readouterr())
    version = summary["version"]
    subject = {"promote": f"[ml:credit_default] PROMOTED: {version} is now in production (2026-01-02)",
               "reject": f"[ml:credit_default] REJECTED: {version} failed the quality gates (2026-01-02)",
               "hold": f"[ml:credit_default] HOLD (drift): {version} not promoted"}[branch]
    assert "alert email NOT delivered to ml-oncall@example.com (ConnectionRefusedError" in logged
    assert f"Subject: {subject}" in logged
    refused = [r for r in caplog.records if r.getMessage().startswith("alert email NOT delivered")]
    assert refused and all(r.levelname == "WARNING" and subject in r.getMessage() for r in refused)
    summary_line = next(r for r in caplog.records if r.getMessage().startswith("alert for ml-oncall@example.com"))
    assert summary_line.levelname == "INFO" and f"{summary['score']:.4f}" in summary_line.getMessage()
    assert f"{summary['score']:.4f}" in logged and dag_run.run_id in logged  # the alert's text, not only its title

    # a bad batch with the mail server down: the run fails for the pipeline's reason, the alerts are logged
    landing = config.source.path_for("2026-01-03")
    landing.write_text("customer_id,age\n1,40\n")
    capfd.readouterr()
    caplog.clear()
    failed = dag.test(logical_date=day + dt.timedelta(days=1), run_after=day + dt.timedelta(days=1))
    assert str(failed.state) == "failed"
    logged = caplog.text + "".join(capfd.readouterr())
    assert ("Subject: [ml:credit_default] FAILED task validate in ml_training__credit_default (2026-01-03)"
            in logged)
    assert "column &#x27;age&#x27;" not in logged and "column 'default': is missing from the batch" in logged
    assert landing.read_text() == "customer_id,age\n1,40\n"
