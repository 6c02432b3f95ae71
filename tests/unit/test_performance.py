"""Realised performance and prediction drift: labels joined with stored predictions, the metric as
computed directly, the floor and validation-margin rules, and the scoring history."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss, roc_auc_score

from include.ml import paths, performance, scoring
from include.ml.cli import main
from include.ml.config import FeatureSpec
from include.ml.errors import InputDataError
from include.ml.evaluate import holdout_metrics, positive_class, prediction_values, proba_classes
from include.ml.simulate import write_batches, write_scoring_batches
from include.ml.steps import registry_for

DAY1 = dt.date(2026, 1, 1)
SCORED = dt.date(2026, 1, 2)


def _score_date(config, ds: str) -> dict:
    """The batch-scoring DAG's work for one date, without Airflow: every partition, then the summary."""
    summaries = [scoring.score_partition(config, path, ds) for path in scoring.partitions(config, ds)]
    return scoring.summarise(config, ds, summaries, run_id=f"test__{ds}")


@pytest.fixture
def credit_scored(credit_config, run_day):
    """credit_default with a production model, one scored date (two partitions, two bad rows) and
    the labels of that date delivered two days later."""
    write_batches(credit_config, DAY1, 1, rows=1500)
    run_day(credit_config, DAY1.isoformat())
    delivered = write_scoring_batches(credit_config, SCORED, 1, partitions=2, rows=300, bad_rows=2)
    summary = _score_date(credit_config, SCORED.isoformat())
    return credit_config, delivered, summary


def test_the_realised_metric_is_the_one_computed_directly_on_the_joined_rows(credit_scored):
    config, delivered, _summary = credit_scored
    labels_date = (SCORED + dt.timedelta(days=config.simulation.label_delay_days)).isoformat()
    assert delivered["labels"][0].name == f"{labels_date}-scored-{SCORED.isoformat()}.csv"

    result = performance.measure(config, labels_date, run_id="test")

    truth = pd.read_csv(delivered["labels"][0])
    out = paths.resolve(f"predictions/{config.name}/{SCORED}")
    predictions = pd.concat(pd.read_parquet(out / name) for name in ("part-000.parquet", "part-001.parquet"))
    joined = truth.merge(predictions, on="customer_id")
    assert (result["labelled_rows"], result["matched_rows"], result["unmatched_rows"]) == (600, 598, 2)
    [record] = result["records"]
    assert record["value"] == pytest.approx(roc_auc_score(joined["default"], joined["proba_1"]), abs=1e-12)
    assert (record["model_version"], record["scoring_date"], record["rows"], record["status"]) == (
        "v0001", SCORED.isoformat(), 598, "ok")
    validation = registry_for(config).metadata("v0001")["metrics"]["roc_auc"]
    assert record["validation_score"] == validation and record["floor"] == config.gates.min_score
    assert result["breaches"] == []
    assert performance.history(config) == [record]


def test_remeasuring_a_delivery_replaces_its_records(credit_scored):
    config, _, _ = credit_scored
    labels_date = (SCORED + dt.timedelta(days=2)).isoformat()
    first = performance.measure(config, labels_date, run_id="first")["records"]
    second = performance.measure(config, labels_date, run_id="second")["records"]
    assert [r["run_id"] for r in performance.history(config)] == ["second"]
    assert first[0]["value"] == second[0]["value"]


def test_outcomes_that_contradict_the_model_are_below_the_floor(credit_scored):
    config, delivered, _ = credit_scored
    truth = pd.read_csv(delivered["labels"][0])
    folder = delivered["labels"][0].parent
    truth.assign(default=1 - truth["default"]).to_csv(folder / "2026-01-09.csv", index=False)

    result = performance.measure(config, "2026-01-09")

    [breach] = result["breaches"]
    assert breach["status"] == "below_floor" and breach["value"] < 0.5
    assert "worse than the floor 0.7" in breach["reasons"][0]
    assert "worse than the validation score" in breach["reasons"][1]


def test_a_small_drop_below_validation_beyond_the_margin_alerts_and_too_few_rows_never_do(credit_scored):
    config, _delivered, _ = credit_scored
    labels_date = (SCORED + dt.timedelta(days=2)).isoformat()
    honest = performance.measure(config, labels_date)["records"][0]
    strict = config.model_copy(update={"performance": config.performance.model_copy(
        update={"floor": 0.0, "max_drop": 0.0})})
    tight = honest["value"] - 1e-9  # pretend validation promised just above what was realised
    status, reasons = performance.judge(strict, honest["value"], tight + 0.01, honest["rows"])
    assert status == "below_validation" and "by more than 0" in reasons[0]
    assert performance.judge(strict, honest["value"], tight, honest["rows"])[0] == "ok"
    few = config.model_copy(update={"performance": config.performance.model_copy(update={"min_rows": 10_000})})
    status, reasons = performance.judge(few, 0.1, 0.9, honest["rows"])
    assert status == "too_few_rows" and "fewer than performance.min_rows 10000" in reasons[0]


def test_a_labels_file_without_the_target_is_a_clear_error_and_nothing_is_recorded(credit_scored):
    config, delivered, _ = credit_scored
    truth = pd.read_csv(delivered["labels"][0])
    bad = delivered["labels"][0].parent / "2026-01-08.csv"
    truth.drop(columns="default").to_csv(bad, index=False)
    with pytest.raises(InputDataError, match=r"2026-01-08.csv lacks column\(s\) \['default'\]"):
        performance.measure(config, "2026-01-08")
    assert performance.history(config) == []
    assert bad.exists()


def test_no_labels_delivered_records_nothing(credit_scored):
    config, _, _ = credit_scored
    result = performance.measure(config, "2026-02-01")
    assert (result["labelled_rows"], result["records"], performance.history(config)) == (0, [], [])


def test_regression_rmse_is_judged_lower_is_better(house_config, run_day):
    write_batches(house_config, DAY1, 1, rows=1200)
    run_day(house_config, DAY1.isoformat())
    delivered = write_scoring_batches(house_config, SCORED, 1, partitions=1, rows=400)
    _score_date(house_config, SCORED.isoformat())
    labels_date = (SCORED + dt.timedelta(days=2)).isoformat()
    strict = house_config.model_copy(update={"performance": house_config.performance.model_copy(update={"floor": 1.0})})

    result = performance.measure(strict, labels_date)

    truth = pd.read_csv(delivered["labels"][0])
    predicted = pd.read_parquet(paths.resolve(f"predictions/house_prices/{SCORED}/part-000.parquet"))
    joined = truth.merge(predicted, on="sale_id")
    [record] = result["records"]
    assert record["value"] == pytest.approx(float(np.sqrt(np.mean((joined["price"] - joined["prediction"]) ** 2))))
    assert record["status"] == "below_floor"  # an RMSE of dollars is far above a 1.0 ceiling


def test_scoring_summary_compares_predictions_with_training_and_keeps_a_history(credit_scored, credit_config):
    config, _, summary = credit_scored
    drift = summary["prediction_drift"]
    assert (drift["verdict"], drift["reference_version"], drift["statistic"]) == ("none", "v0001", "wasserstein")
    assert drift["rows"] == 598
    write_scoring_batches(config, dt.date(2026, 1, 3), 1, partitions=1, rows=1500, drift_from=dt.date(2026, 1, 3))
    drifted = _score_date(config, "2026-01-03")
    assert drifted["prediction_drift"]["verdict"] == "drift", drifted["prediction_drift"]
    assert drifted["prediction_drift"]["mean"] > drifted["prediction_drift"]["reference_mean"]
    assert [h["logical_date"] for h in scoring.history(config)] == ["2026-01-02", "2026-01-03"]
    written = json.loads(paths.resolve(f"predictions/{config.name}/2026-01-03/_summary.json").read_text())
    assert written["prediction_drift"]["verdict"] == "drift"


def test_a_version_registered_without_holdout_scores_has_no_prediction_reference(credit_scored):
    config, _, _ = credit_scored
    registry = registry_for(config)
    metadata_file = registry.versions_dir / "v0001" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata.pop("prediction_profile")
    metadata.pop("signature")  # as an older release registered it: unsigned, then signed by the operator
    metadata_file.write_text(json.dumps(metadata))
    assert registry.sign_legacy("v0001") == "signed"
    summary = _score_date(config, SCORED.isoformat())
    assert summary["prediction_drift"]["verdict"] == "no_reference"


def test_cli_measures_a_delivery_and_lists_the_history(credit_scored, capsys):
    _config, _, _ = credit_scored
    labels_date = (SCORED + dt.timedelta(days=2)).isoformat()
    assert main(["performance", "--pipeline", "credit_default", "--labels-date", labels_date]) == 0
    out = capsys.readouterr().out
    assert "600 row(s) in 1 file(s), 598 matched to predictions, 2 not" in out
    # realised, validation, status, then the estimate of the same rows and realised - estimated
    assert re.search(rf"^{labels_date}\s+{SCORED}\s+v0001\s+598\s+0\.\d{{4}}\s+0\.\d{{4}}\s+ok\s+0\.\d{{4}}"
                     r"\s+[-+]?0\.\d{4}$", out, re.M), out
    assert main(["performance", "--pipeline", "credit_default", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["rows"] == 598


def test_simulate_scoring_writes_partitions_and_late_labels(capsys, ml_home):
    assert main(["simulate", "--pipeline", "credit_default", "--start", "2026-01-02", "--days", "2",
                 "--scoring", "--bad-rows", "1"]) == 0
    out = capsys.readouterr().out
    assert "4 scoring partition(s)" in out and "delivered 2 day(s) later" in out
    assert sorted(p.name for p in (ml_home / "labels" / "credit_default").iterdir()) == [
        "2026-01-04-scored-2026-01-02.csv", "2026-01-05-scored-2026-01-03.csv"]
    first = pd.read_csv(ml_home / "scoring" / "credit_default" / "2026-01-02" / "part-000.csv")
    assert "default" not in first.columns and first["age"].tolist()[:2] == ["unknown", first["age"][1]]


# -- the positive class ---------------------------------------------------------------------


def _two_class_delivery(config, classes: tuple, tmp_path, monkeypatch) -> tuple:
    """A binary classifier trained on a target of ``classes`` (low class first), the predictions
    score_file wrote for 400 rows on SCORED, and their labels delivered two days later. The model
    is not registered: its validation score reads as unknown."""
    monkeypatch.setattr(performance.ModelRegistry, "metadata", lambda self, version: {"metrics": {}})
    rng = np.random.default_rng(7)
    rows = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(400)], "x1": rng.normal(size=400),
                         "x2": rng.normal(size=400)})
    signal = rows["x1"] + rng.normal(scale=0.8, size=400)
    target = np.where(signal > 0, classes[1], classes[0])
    model = LogisticRegression().fit(rows[["x1", "x2"]], target)
    features = [FeatureSpec(name="x1", type="numeric"), FeatureSpec(name="x2", type="numeric")]
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    out = paths.predictions_dir(config, SCORED.isoformat())
    scoring.score_file(model, "v0001", config, features, tmp_path / "rows.parquet", out / "part-000.parquet")
    labels_date = (SCORED + dt.timedelta(days=2)).isoformat()
    paths.labels_dir(config).mkdir(parents=True, exist_ok=True)
    labels = rows[["customer_id"]].assign(**{config.target: target})
    labels.to_csv(paths.labels_dir(config) / f"{labels_date}.csv", index=False)
    predictions = pd.read_parquet(out / "part-000.parquet")
    return model, rows.assign(**{config.target: target}), predictions, labels_date


@pytest.mark.parametrize(("classes", "positive"), [((2, 10), 10), (("no", "yes"), "yes")])
def test_the_positive_class_is_the_models_second_class_everywhere(credit_config, tmp_path, monkeypatch, classes,
                                                                    positive):
    model, rows, predictions, labels_date = _two_class_delivery(credit_config, classes, tmp_path, monkeypatch)
    truth = rows[credit_config.target].to_numpy() == positive
    expected = roc_auc_score(truth, predictions[f"proba_{positive}"])

    assert list(model.classes_) == list(classes) and positive_class(model.classes_) == positive
    assert proba_classes(predictions.columns) == [str(c) for c in classes]  # the model's order, not the text sort
    [record] = performance.measure(credit_config, labels_date)["records"]
    assert record["value"] == pytest.approx(expected, abs=1e-12) and record["value"] > 0.7
    assert holdout_metrics(model, rows, credit_config, ["x1", "x2"])["roc_auc"] == pytest.approx(expected, abs=1e-12)
    np.testing.assert_allclose(prediction_values(model, rows[["x1", "x2"]], "classification"),
                               predictions[f"proba_{positive}"])
    files = [paths.resolve(f"predictions/{credit_config.name}/{SCORED}/part-000.parquet")]
    np.testing.assert_allclose(scoring._prediction_scores(credit_config, files, "v0001"),
                               predictions[f"proba_{positive}"])


def test_realised_log_loss_with_classes_2_and_10_reads_10_as_positive(credit_config, tmp_path, monkeypatch):
    config = credit_config.model_copy(update={"metric": "log_loss"})
    _model, rows, predictions, labels_date = _two_class_delivery(config, (2, 10), tmp_path, monkeypatch)

    [record] = performance.measure(config, labels_date)["records"]

    assert record["value"] == pytest.approx(log_loss(rows["default"] == 10, predictions["proba_10"]), abs=1e-12)


def test_realised_f1_judges_the_configured_positive_label(credit_config, tmp_path, monkeypatch):
    config = credit_config.model_copy(update={"metric": "f1", "positive_label": 2})
    _model, rows, predictions, labels_date = _two_class_delivery(config, (2, 10), tmp_path, monkeypatch)

    [record] = performance.measure(config, labels_date)["records"]

    expected = f1_score(rows["default"], predictions["prediction"], pos_label=2)
    assert record["value"] == pytest.approx(expected, abs=1e-12)
    assert expected != pytest.approx(f1_score(rows["default"], predictions["prediction"], pos_label=10), abs=1e-3)
