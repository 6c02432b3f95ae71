"""Shared pieces of the reliability tests: a data root where production already exists, and a harness
that runs one logical date through the training steps exactly as the DAG's tasks call them.

The harness (:func:`run_date`) mirrors ``dags/ml_training.py``: each step runs inside
``fail_without_retry`` (bad input, a broken config or a refused registry change fail at once, anything
else is retried by Airflow), and the alert a user would get is delivered for real, by the same
callbacks the DAG uses (``TaskFailureEmail`` after a failure, ``OutcomeEmail`` after promote, hold or
reject), through ``smtp_default`` to the session's SMTP server. ``tests/e2e`` and ``test_airflow_runs.py``
show on real ``dag.test()`` runs that Airflow does the same.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.ml import paths, steps
from include.ml.config import PipelineConfig, get_pipeline
from include.ml.records import DecisionRecord, RunWorkspace
from include.ml.simulate import write_batches

DAY1 = dt.date(2026, 1, 1)
DAY2 = "2026-01-02"
ROWS = 800  # above credit_default's min_rows (500); small enough to train in about a second


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]), user_api="openmp"):
        yield


@dataclass
class Registry:
    """What a user can see of a registry: the pointer file's bytes, the versions and the audit log."""

    pointer: bytes | None
    versions: list[str]
    audit: list[dict]

    @classmethod
    def of(cls, config: PipelineConfig) -> Registry:
        registry = steps.registry_for(config)
        pointer = registry.pointer_path.read_bytes() if registry.pointer_path.exists() else None
        return cls(pointer, registry.versions(), registry.audit())


@dataclass
class Outcome:
    """How a run of one date ended, as the DAG would show it."""

    run_id: str
    failed_task: str | None = None
    error: str | None = None  # the text of the task's error (what the task log and the email show)
    retried: bool = False  # True: Airflow retries the task (transient); False: it fails at once
    results: dict = field(default_factory=dict)
    emails: list[Message] = field(default_factory=list)

    @property
    def branch(self) -> str | None:
        return self.results.get("drift_check", {}).get("branch")


@pytest.fixture(scope="session")
def production_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root where day 1 was trained and promoted (v0001) and day 2's clean batch has landed."""
    home = tmp_path_factory.mktemp("reliability-production")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        write_batches(config, DAY1, 2, rows=ROWS)
        outcome = run_date(config, DAY1.isoformat(), inbox=None)
        assert outcome.failed_task is None and steps.registry_for(config).production() == "v0001"
    return home


def day2_at_simulation_size(config: PipelineConfig) -> Path:
    """Day 2's clean batch again, at the simulation's rows a day: its hash holdout is then large enough for
    the champion/challenger gate to decide (at the fixture's 800 rows the interval is too wide and an equal
    candidate is rejected), so a run of it reaches the drift check and the promotion."""
    [landing] = write_batches(config, dt.date.fromisoformat(DAY2), 1, rows=config.simulation.rows_per_day)
    return landing


@pytest.fixture
def home(production_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of :func:`production_home` as ``$ML_HOME`` (tests may break it as they like)."""
    copy = tmp_path / "ml_home"
    shutil.copytree(production_home, copy)
    monkeypatch.setenv("ML_HOME", str(copy))
    return copy


def _context(config: PipelineConfig, task_id: str, run_id: str, ds: str, xcom: dict | None = None,
             **extra) -> dict:
    """The parts of an Airflow task context the alert callbacks read."""
    ti = SimpleNamespace(dag_id=config.dag_id, task_id=task_id, try_number=1, log_url=None,
                         xcom_pull=lambda task_ids: xcom)
    return {"ti": ti, "run_id": run_id, "ds": ds, **extra}


def deliver_failure_email(config: PipelineConfig, task_id: str, run_id: str, ds: str, error: BaseException) -> None:
    """What Airflow does when a task finally fails: the DAG's ``on_failure_callback`` of every task."""
    from include.airflow_alerts import TaskFailureEmail

    TaskFailureEmail(config.name, config.alerts.email, config.alerts.from_email)(
        _context(config, task_id, run_id, ds, exception=error))


def run_date(config: PipelineConfig, ds: str, inbox=None, run_id: str | None = None,
             overrides: dict[str, Callable] | None = None, start_at: str | None = None) -> Outcome:
    """Run ``ds`` through ``steps.STEPS`` as the DAG's tasks do (``overrides`` replaces a step's
    call); stop at the first failing task. With ``inbox``, the alert emails are
    delivered and collected (``Outcome.emails``). ``start_at`` resumes a run at that task, as
    Airflow's retry of a task does (same run id and workspace, upstream results in place)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.airflow_alerts import OutcomeEmail
    from include.airflow_tasks import fail_without_retry

    run_id = run_id or f"scheduled__{ds}T00:00:00+00:00"
    workspace = paths.workspace_dir(config.name, run_id)
    outcome = Outcome(run_id=run_id)
    if inbox is not None:
        inbox.clear()
    plan: dict[str, Callable] = {
        **{name: (lambda name=name: steps.run_step(name, config, workspace, run_id, ds, branch=outcome.branch))
           for name in steps.STEPS},
        **(overrides or {}),
    }
    names = list(plan)
    if start_at is not None:
        names = names[names.index(start_at):]
        if "drift_check" not in names:
            outcome.results["drift_check"] = RunWorkspace(workspace).read(DecisionRecord).to_dict()
    for task_id in names:
        call = plan[task_id]
        shown_id = outcome.branch if task_id == steps.BRANCH_STEP else task_id
        failure: BaseException | None = None
        try:
            with fail_without_retry():
                outcome.results[task_id] = call()
        except AirflowFailException as error:
            failure, outcome.failed_task, outcome.error, outcome.retried = error, shown_id, str(error), False
        except Exception as error:  # retried by Airflow (retries, exponential backoff), then failed
            failure, outcome.failed_task, outcome.retried = error, shown_id, True
            outcome.error = f"{type(error).__name__}: {error}"
        else:
            if task_id == "conclude" and inbox is not None:
                OutcomeEmail(config.name, config.alerts.email, config.alerts.from_email)(
                    _context(config, shown_id, run_id, ds, xcom=outcome.results["conclude"]))
            continue
        if inbox is not None:
            deliver_failure_email(config, shown_id, run_id, ds, failure)
        break
    if inbox is not None:
        outcome.emails = list(inbox.messages)
    return outcome
