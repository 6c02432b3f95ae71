"""Backfill: 30 consecutive days of the embedded default, drift switched on from day 20, one real
``dag.test()`` run per date; then day 5 again."""

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
DAYS = 30
DRIFT_FROM = START + dt.timedelta(days=19)  # day 20
ROWS = 1200  # enough for the gates to judge; thirty fits stay within a few minutes


def test_thirty_days_backfilled_succeed_promote_and_hold_where_the_data_says_and_a_rerun_changes_nothing(
        airflow_db, ml_home):
    from airflow.dag_processing.dagbag import BundleDagBag

    config = get_pipeline("credit_default")
    write_batches(config, START, DAYS, drift_from=DRIFT_FROM, rows=ROWS)
    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ml_training.py"), bundle_path=ROOT, bundle_name="ml_pipeline")
    dag = bag.dags[config.dag_id]
    registry = steps.registry_for(config)

    branches = {}
    for offset in range(DAYS):
        day = START + dt.timedelta(days=offset)
        moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        dag_run = dag.test(logical_date=moment, run_after=moment)
        states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
        assert str(dag_run.state) == "success", (day, states)
        decision = json.loads((paths.workspace_dir(config.name, dag_run.run_id) / "decision.json").read_text())
        branches[day] = decision["branch"]
        assert states[decision["branch"]] == "success"
        gates = json.loads((paths.workspace_dir(config.name, dag_run.run_id) / "evaluation.json").read_text())
        if not gates["gates"]["passed"]:
            assert decision["branch"] == "reject", (day, decision)  # the quality gate comes first
        elif day < DRIFT_FROM:
            assert decision["branch"] == "promote", (day, decision)
        else:
            assert decision["branch"] == "hold", (day, decision)  # drift: registered, not promoted

    assert "promote" in [b for d, b in branches.items() if d < DRIFT_FROM]  # a model reached production
    assert "hold" in [b for d, b in branches.items() if d >= DRIFT_FROM]
    assert registry.versions() == [f"v{i:04d}" for i in range(1, DAYS + 1)]
    production = registry.production()
    assert registry.metadata(production)["logical_date"] < DRIFT_FROM.isoformat()  # drift never reached production
    promotions = sum(1 for b in branches.values() if b == "promote")
    assert len(registry.audit()) == promotions
    history = steps.run_history(config)
    assert len(history) == DAYS

    # day 5 again: the same version reused, nothing switched, no audit entry, no new version
    audit_before, pointer_before = registry.audit(), registry.pointer_path.read_bytes()
    day5 = dt.datetime.combine(START + dt.timedelta(days=4), dt.time(), tzinfo=dt.UTC)
    rerun = dag.test(logical_date=day5, run_after=dt.datetime.now(dt.UTC))
    assert str(rerun.state) == "success"
    outcome = json.loads((paths.workspace_dir(config.name, rerun.run_id) / "outcome.json").read_text())
    assert outcome["reused_from_earlier_run"] is True and outcome["switched"] is False
    assert outcome["version"] == "v0005"
    assert registry.versions() == [f"v{i:04d}" for i in range(1, DAYS + 1)]
    assert registry.audit() == audit_before and registry.pointer_path.read_bytes() == pointer_before
    print(f"backfill: {DAYS} runs, {promotions} promoted, "
          f"{sum(1 for b in branches.values() if b == 'hold')} held, "
          f"{sum(1 for b in branches.values() if b == 'reject')} rejected; production {production}")
