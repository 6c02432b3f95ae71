"""The baseline gate and the leakage guard through the training DAG (dag.test on SQLite), issue 16.

house_prices infers its features from the first batch, so a column added to the delivery becomes a
feature: a copy of the target is one a user could ship by mistake.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from include.ml import paths
from include.ml.config import get_pipeline
from include.ml.simulate import write_batches
from include.ml.steps import registry_for
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

START = dt.date(2026, 1, 1)
ROWS = 800


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ml_training.py"), bundle_path=ROOT,
                       bundle_name="ml_pipeline")
    assert not bag.import_errors
    return bag.dags


def run_dag(dag, day: dt.date):
    """One dag.test() run for a logical date; returns the DagRun and its task states by task id."""
    dag_run = dag.test(logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
    return dag_run, {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def decision_of(pipeline: str, dag_run) -> dict:
    return json.loads((paths.workspace_dir(pipeline, dag_run.run_id) / "decision.json").read_text())


def deliver(config, change) -> None:
    """Day 1's house_prices batch, changed by ``change(frame)`` before it lands."""
    [landing] = write_batches(config, START, 1, rows=ROWS)
    frame = pd.read_parquet(landing)
    change(frame)
    frame.to_parquet(landing, index=False)


def test_a_regression_target_of_pure_noise_is_rejected_by_the_baseline_gate(dags, ml_home):
    config = get_pipeline("house_prices")

    def noise(frame: pd.DataFrame) -> None:
        # independent of every feature; small enough that rmse stays under the gate's ceiling (120,000)
        frame[config.target] = np.random.default_rng(5).normal(300_000, 30_000, len(frame)).round(-2)

    deliver(config, noise)
    dag_run, states = run_dag(dags[config.dag_id], START)

    assert str(dag_run.state) == "success", states
    assert states["reject"] == "success"
    assert states["promote"] == states["hold"] == "skipped"
    decision = decision_of(config.name, dag_run)
    assert decision["branch"] == "reject"
    assert any("baseline" in reason for reason in decision["reasons"]), decision["reasons"]
    registry = registry_for(config)
    assert registry.production() is None
    assert registry.metadata("v0001")["decision"] == "rejected"


def test_a_copy_of_the_target_among_the_features_holds_with_the_leakage_reason(dags, ml_home):
    config = get_pipeline("house_prices")

    def leak(frame: pd.DataFrame) -> None:
        frame["appraised_price"] = frame[config.target]

    deliver(config, leak)
    dag_run, states = run_dag(dags[config.dag_id], START)

    assert str(dag_run.state) == "success", states
    assert states["hold"] == "success"
    assert states["promote"] == states["reject"] == "skipped"
    decision = decision_of(config.name, dag_run)
    assert decision["branch"] == "hold"
    assert any("possible target leakage in appraised_price" in reason for reason in decision["reasons"]), (
        decision["reasons"])
    registry = registry_for(config)
    assert registry.production() is None
    assert "appraised_price" in [f["name"] for f in registry.metadata("v0001")["features"]]
    assert registry.metadata("v0001")["decision"] == "held"
