"""The batch-scoring DAG end to end: mapped partitions, predictions and rejects where they belong."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from include.ml import paths
from include.ml.config import get_pipeline
from include.ml.simulate import credit_default, write_batches
from tests.conftest import ROOT, body_of

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


def _asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return [e.extra for e in session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.name == "ml_production_model__credit_default",
                        AssetEvent.source_run_id == run_id)]


def test_promotion_to_scoring_to_labels_the_realised_metric_is_the_one_computed_directly(
        dags, ml_home, smtp_inbox):
    from sklearn.metrics import roc_auc_score

    from include.ml import performance
    from include.ml.simulate import write_scoring_batches

    config = get_pipeline("credit_default")
    write_batches(config, dt.date(2026, 1, 1), 1, rows=2000)
    training = dags[config.dag_id].test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert [(e["version"], e["action"]) for e in _asset_events(training.run_id)] == [("v0001", "promote")]

    delivered = write_scoring_batches(config, dt.date(2026, 1, 2), 1, partitions=3, rows=400, bad_rows=2)
    scoring = dags["ml_batch_scoring__credit_default"].test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))
    assert str(scoring.state) == "success"
    out = paths.resolve("predictions/credit_default/2026-01-02")
    assert sorted(p.name for p in out.iterdir()) == [
        "_summary.json", "part-000.parquet", "part-000.rejects.parquet", "part-001.parquet", "part-002.parquet"]
    rejects = pd.read_parquet(out / "part-000.rejects.parquet")
    assert rejects["reject_reason"].tolist() == ["age: not a number"] * 2
    summary = json.loads((out / "_summary.json").read_text())
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (1200, 1198, 2)
    # same world as training: the predictions are distributed as they were on the holdout rows
    assert summary["prediction_drift"]["verdict"] == "none", summary["prediction_drift"]

    # labels arrive two days later; the realised AUC is computed from the stored predictions
    labels_day = dt.date(2026, 1, 4)
    assert [p.name for p in delivered["labels"]] == ["2026-01-04-scored-2026-01-02.csv"]
    run = dags["ml_performance__credit_default"].test(logical_date=dt.datetime(2026, 1, 4, tzinfo=dt.UTC))
    assert str(run.state) == "success"
    [record] = performance.history(config)
    truth = pd.read_csv(delivered["labels"][0])
    predicted = pd.concat(pd.read_parquet(out / f"part-00{i}.parquet") for i in range(3))
    joined = truth.merge(predicted, on="customer_id")
    assert len(joined) == 1198
    assert (record["labels_date"], record["scoring_date"], record["model_version"], record["rows"]) == (
        labels_day.isoformat(), "2026-01-02", "v0001", 1198)
    assert record["value"] == pytest.approx(roc_auc_score(joined["default"], joined["proba_1"]), abs=1e-12)
    assert record["status"] == "ok" and 0.7 < record["value"] < 1
    assert not [s for s in smtp_inbox.subjects() if "PERFORMANCE DROP" in s]
    # the estimate of the same rows beside it: the same world, so it was right before the labels came
    assert summary["estimated_performance"]["v0001"]["status"] == "ok"
    assert abs(record["estimation_error"]) < 0.05 and record["estimated_lower"] < record["value"]

    # outcomes that contradict the model (labels flipped): below the floor, one email that says so
    flipped = truth.assign(default=1 - truth["default"])
    flipped.to_csv(paths.resolve("labels/credit_default") / "2026-01-05-corrected.csv", index=False)
    run = dags["ml_performance__credit_default"].test(logical_date=dt.datetime(2026, 1, 5, tzinfo=dt.UTC))
    assert str(run.state) == "success"
    latest = performance.history(config)[-1]
    assert latest["status"] == "below_floor"
    assert latest["value"] == pytest.approx(1 - record["value"], abs=1e-9)
    email = smtp_inbox.wait_for("PERFORMANCE DROP")
    assert "v0001" in email["subject"] and "2026-01-05" in email["subject"]


def test_a_partition_over_the_reject_threshold_fails_publishes_nothing_and_emails_why(dags, ml_home, smtp_inbox):
    config = get_pipeline("credit_default")
    write_batches(config, dt.date(2026, 1, 1), 1, rows=1000)
    dags[config.dag_id].test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    inbox = ml_home / "scoring" / "credit_default" / "2026-01-03"
    inbox.mkdir(parents=True)
    good = credit_default(dt.date(2026, 1, 3), 300, seed=7, drifted=False).drop(columns="default")
    broken = good.copy()
    broken.loc[:29, "utilization"] = 7.0  # 10% of the rows, over the 1% allowed
    good.to_parquet(inbox / "good.parquet", index=False)
    broken.to_parquet(inbox / "broken.parquet", index=False)

    dag_run = dags["ml_batch_scoring__credit_default"].test(logical_date=dt.datetime(2026, 1, 3, tzinfo=dt.UTC))

    assert str(dag_run.state) == "failed"
    out = paths.resolve("predictions/credit_default/2026-01-03")
    assert sorted(p.name for p in out.iterdir()) == ["good.parquet"]  # nothing of the broken file, not even temp
    assert (inbox / "broken.parquet").exists()  # the input is kept for redelivery
    email = smtp_inbox.wait_for("TOO MANY REJECTS score_partition")
    text = body_of(email)
    assert "30 of 300 rows" in text and "utilization: above maximum 1" in text
    assert "#alert-too-many-rejects" in text


def test_a_scoring_date_whose_estimate_falls_below_the_floor_emails_before_any_label(dags, ml_home, smtp_inbox):
    from include.ml.steps import registry_for

    config = get_pipeline("credit_default")
    write_batches(config, dt.date(2026, 1, 1), 1, rows=2000)
    dags[config.dag_id].test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    metadata = registry_for(config).metadata("v0001")
    # an upstream join broke: the model's three most important features arrive as one constant each
    broken = [item["feature"] for item in metadata["importance"]["features"][:3]]
    frame = credit_default(dt.date(2026, 1, 2), 1000, seed=7, drifted=False).drop(columns="default")
    for column in broken:
        frame[column] = frame[column].median() if frame[column].dtype.kind in "if" else frame[column].mode()[0]
    inbox = ml_home / "scoring" / "credit_default" / "2026-01-02"
    inbox.mkdir(parents=True)
    frame.to_parquet(inbox / "part-0.parquet", index=False)

    run = dags["ml_batch_scoring__credit_default"].test(logical_date=dt.datetime(2026, 1, 2, tzinfo=dt.UTC))

    assert str(run.state) == "success"
    summary = json.loads((paths.resolve("predictions/credit_default/2026-01-02") / "_summary.json").read_text())
    estimated = summary["estimated_performance"]["v0001"]
    assert estimated["status"] == "below_floor" and estimated["value"] < config.performance_floor
    email = smtp_inbox.wait_for("ESTIMATED PERFORMANCE DROP")
    assert "estimated roc_auc" in email["subject"] and "v0001 on 2026-01-02" in email["subject"]
    body = body_of(email)
    assert "worse than the floor" in body and "alert-estimated-performance-drop" in body
