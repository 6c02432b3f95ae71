"""decision.drift_policy promote_if_better through the training DAG (dag.test on SQLite): on the credit
history's drifted third day the candidate is measurably better than production on that day's holdout,
so it is promoted despite the drift, with the policy in its promotion record and a PROMOTED DESPITE
DRIFT email. (The worse candidate held under the same policy: tests/unit/test_drift_policy.py.)"""

from __future__ import annotations

import datetime as dt

import pytest

from include.ml import paths
from include.ml.config import PipelineConfig, get_pipeline
from include.ml.records import OutcomeRecord
from include.ml.simulate import write_batches
from include.ml.steps import registry_for, run_steps
from tests.conftest import body_of
from tests.e2e.dag_support import serialized

pytestmark = pytest.mark.e2e

DAY1 = dt.date(2026, 1, 1)


def promote_if_better(config: PipelineConfig) -> PipelineConfig:
    data = config.model_dump(mode="json")
    # a DAG id of its own: its run must not join credit_default's runs in the session's metadata database
    # (the ML models page lists a DAG's Airflow runs, and the plugin tests read credit_default's)
    data.update(name="credit_policy", registry="registry/credit_policy")
    data["source"] = {**data["source"], "path": "landing/credit_policy/{ds}.csv"}
    data["decision"] = {**data["decision"], "drift_policy": "promote_if_better"}
    data["deadlines"] = {}
    return PipelineConfig.model_validate(data)


def test_promote_if_better_promotes_the_better_candidate_of_a_drifted_day(airflow_db, ml_home, smtp_inbox):
    from dags.ml_training import build_training_dag

    config = promote_if_better(get_pipeline("credit_default"))
    write_batches(config, DAY1, 3, drift_from=DAY1 + dt.timedelta(days=2))
    for offset in (0, 1):  # two normal days, as the DAG runs them
        day = (DAY1 + dt.timedelta(days=offset)).isoformat()
        run_steps(config, f"scheduled__{day}T00:00:00+00:00", day)
    before = registry_for(config).production()
    smtp_inbox.clear()

    dag_run = serialized(build_training_dag(config)).test(
        logical_date=dt.datetime.combine(DAY1 + dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC))

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert (str(dag_run.state), states["promote"], states["hold"]) == ("success", "success", "skipped")
    outcome = paths.run_workspace(config.name, dag_run.run_id).read(OutcomeRecord)
    assert (outcome.drift_verdict, outcome.promoted_by_policy, outcome.switched) == ("drift", True, True)
    assert outcome.production_before == before and registry_for(config).production() == outcome.version
    record = registry_for(config).metadata(outcome.version)["promotion_record"]
    assert (record["drift_policy"], record["promoted_by_policy"]) == ("promote_if_better", True)
    email = smtp_inbox.wait_for("PROMOTED DESPITE DRIFT", timeout=30)
    assert f"{outcome.version} is now in production although the batch drifted" in email["Subject"]
    assert "drift_policy promote_if_better" in body_of(email)
