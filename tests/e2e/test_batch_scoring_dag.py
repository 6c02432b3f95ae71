"""The batch-scoring DAG end to end: mapped partitions, predictions and rejects where they belong."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from include.ml import paths
from include.ml.config import get_pipeline
from include.ml.simulate import credit_default, write_batches
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dags(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT, bundle_name="ml_pipeline")
    assert not bag.import_errors
    return bag.dags


def test_partitions_of_a_date_are_scored_in_mapped_tasks_with_rejects_beside_them(dags, ml_home):
    config = get_pipeline("credit_default")
    write_batches(config, dt.date(2026, 1, 1), 1, rows=1000)
    dags[config.dag_id].test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    inbox = ml_home / "scoring" / "credit_default" / "2026-01-02"
    inbox.mkdir(parents=True)
    frames = [credit_default(dt.date(2026, 1, 2 + i), 400, seed=7, drifted=False).drop(columns="default")
              for i in range(3)]
    frames[1].loc[5, "utilization"] = 4.0  # one bad row: rejected, the partition still succeeds
    for i, frame in enumerate(frames):
        frame.to_parquet(inbox / f"part-{i}.parquet", index=False)

    dag_run = dags["ml_batch_scoring__credit_default"].test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))

    states = [(ti.task_id, ti.map_index, str(ti.state)) for ti in dag_run.get_task_instances()]
    assert str(dag_run.state) == "success", states
    assert sorted(i for t, i, s in states if t == "score_partition" and s == "success") == [0, 1, 2]
    out = paths.resolve("predictions/credit_default/2026-01-02")
    for i, frame in enumerate(frames):
        predictions = pd.read_parquet(out / f"part-{i}.parquet")
        assert len(predictions) == len(frame) - (1 if i == 1 else 0)
        assert set(predictions["model_version"]) == {"v0001"}
    rejects = pd.read_parquet(out / "part-1.rejects.parquet")
    assert rejects["reject_reason"].tolist() == ["utilization: above maximum 1"]
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["partitions"], summary["rows"], summary["scored"], summary["rejected"]) == (3, 1200, 1199, 1)
