"""Backfill through Airflow: a date that was already run, run again by a real ``dag.test()``.

The backfill's rules (each day's branch, drift never reaching production, one version per day, a
rerun that reuses its version) are library rules, checked fast in tests/unit/test_backfill_rules.py.
What only Airflow can show is the wiring: the logical date, the run id and the branch reach the tasks,
so that a rerun of a backfilled date through the DAG finds the version registered then, takes the
promote branch and still switches nothing.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from include.ml import paths, steps
from include.ml.config import get_pipeline
from include.ml.simulate import write_batches
from tests.conftest import ROOT

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

START = dt.date(2026, 1, 1)
DAYS = 3
RERUN = START + dt.timedelta(days=1)  # day 2: promoted then, no longer production


def test_a_backfilled_date_rerun_through_the_dag_reuses_its_version_and_switches_nothing(airflow_db, ml_home):
    from airflow.dag_processing.dagbag import BundleDagBag

    config = get_pipeline("credit_default")
    write_batches(config, START, DAYS)  # the simulation's rows_per_day: days 1-3 all promote (test_backfill_rules.py)
    for offset in range(DAYS):  # the backfill, as the DAG's tasks call the library
        ds = (START + dt.timedelta(days=offset)).isoformat()
        steps.run_steps(config, f"scheduled__{ds}T00:00:00+00:00", ds)
    registry = steps.registry_for(config)
    assert registry.production() == "v0003"
    versions, audit, pointer = registry.versions(), registry.audit(), registry.pointer_path.read_bytes()
    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ml_training.py"), bundle_path=ROOT, bundle_name="ml_pipeline")
    dag = bag.dags[config.dag_id]

    logical_date = dt.datetime.combine(RERUN, dt.time(), tzinfo=dt.UTC)
    rerun = dag.test(logical_date=logical_date, run_after=dt.datetime.now(dt.UTC))  # another run id than then

    states = {ti.task_id: str(ti.state) for ti in rerun.get_task_instances()}
    assert str(rerun.state) == "success", states
    assert states["promote"] == "success" and states["hold"] == states["reject"] == "skipped", states
    outcome = json.loads((paths.workspace_dir(config.name, rerun.run_id) / "outcome.json").read_text())
    assert (outcome["logical_date"], outcome["run_id"]) == (RERUN.isoformat(), rerun.run_id)
    assert (outcome["version"], outcome["reused_from_earlier_run"], outcome["switched"]) == ("v0002", True, False)
    assert registry.versions() == versions and registry.audit() == audit
    assert registry.pointer_path.read_bytes() == pointer and registry.production() == "v0003"
    assert [(h["run_id"], h["version"]) for h in steps.run_history(config)][-1] == (rerun.run_id, "v0002")
