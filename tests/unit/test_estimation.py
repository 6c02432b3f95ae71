"""Estimated performance (CBPE): the calibration a version stores, the expected metric of a scored date
in the scoring history, and the realised metric recorded beside the estimate for the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from include.ml import estimation, paths, performance, scoring
from include.ml.cli import main
from include.ml.config import get_pipeline
from include.ml.simulate import write_batches, write_scoring_batches
from include.ml.steps import registry_for
from tests.unit.test_performance import DAY1, SCORED, _score_date


@pytest.fixture
def credit_scored(credit_config, run_day):
    """credit_default with a production model and one scored date of 600 rows."""
    write_batches(credit_config, DAY1, 1, rows=1500)
    run_day(credit_config, DAY1.isoformat())
    delivered = write_scoring_batches(credit_config, SCORED, 1, partitions=2, rows=300)
    return credit_config, delivered, _score_date(credit_config, SCORED.isoformat())


# -- numeric facts ----------------------------------------------------------------------------


def test_certain_probabilities_expect_the_auc_their_ranking_gives():
    scores = np.array([0.9, 0.8, 0.3, 0.2])
    assert estimation.expected_auc(scores, np.array([1.0, 1.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert estimation.expected_auc(scores, np.array([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert estimation.expected_auc(scores, np.array([1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.75)
    assert estimation.expected_auc(scores, np.ones(4)) is None  # no expected negative


def test_labels_drawn_from_calibrated_probabilities_realise_about_the_expected_auc():
    rng = np.random.default_rng(3)
    p = rng.beta(1, 4, 20_000)
    y = rng.random(len(p)) < p
    expected = estimation.expected_auc(p, p)
    assert roc_auc_score(y, p) == pytest.approx(expected, abs=0.01)


def test_calibration_repairs_overconfident_probabilities():
    rng = np.random.default_rng(5)
    true_p = rng.uniform(0.05, 0.6, 6_000)
    y = (rng.random(len(true_p)) < true_p).astype(int)
    raw = np.clip(true_p * 1.6, 0, 1)  # the model says more than it knows
    proba = np.column_stack([1 - raw, raw])
    calibration = estimation.fit_calibration(y, proba, [0, 1])
    assert calibration["method"] == "isotonic" and calibration["holdout_rows"] == 6_000
    assert calibration["ece"] > 0.05 and calibration["ece_calibrated"] < 0.03
    fresh = rng.uniform(0.05, 0.6, 20_000)
    said = np.clip(fresh * 1.6, 0, 1)
    found = estimation.estimate(calibration, np.column_stack([1 - said, said]))
    realised = roc_auc_score(rng.random(len(fresh)) < fresh, fresh)
    auc = found["metrics"]["roc_auc"]
    assert auc["value"] == pytest.approx(realised, abs=0.02) and auc["lower"] < auc["value"] < auc["upper"]


def test_few_rows_of_a_class_calibrate_with_platt():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, 400)
    y = (rng.random(400) < p).astype(int)  # about 40 positives, fewer than ISOTONIC_MIN_ROWS
    assert estimation.fit_calibration(y, np.column_stack([1 - p, p]), [0, 1])["method"] == "platt"


def test_multiclass_calibrated_rows_sum_to_one_and_a_foreign_shape_is_refused():
    rng = np.random.default_rng(2)
    proba = rng.dirichlet([2, 2, 2], 3_000)
    y = np.array([rng.choice(3, p=row) for row in proba])
    calibration = estimation.fit_calibration(y, proba, [0, 1, 2])
    assert np.allclose(estimation.calibrate(calibration, proba).sum(axis=1), 1.0)
    found = estimation.estimate(calibration, proba)["metrics"]
    assert 0.5 < found["roc_auc"]["value"] < 1 and 0.3 < found["accuracy"]["value"] < 1
    with pytest.raises(estimation.CalibrationError, match="do not fit the calibration of classes"):
        estimation.calibrate(calibration, proba[:, :2])


# -- through the pipeline -------------------------------------------------------------------


def test_a_version_stores_its_calibration_and_models_show_says_it(credit_scored, capsys):
    config, _, _ = credit_scored
    metadata = registry_for(config).metadata("v0001")
    calibration = metadata["calibration"]
    assert calibration["method"] in ("isotonic", "platt") and calibration["classes"] == ["0", "1"]
    assert 0 <= calibration["ece"] < 0.2 and calibration["holdout_rows"] == metadata["training"]["holdout_rows"]
    assert main(["models", "show", "--pipeline", config.name, "v0001"]) == 0
    shown = capsys.readouterr().out
    assert f"calibration: {calibration['method']} on {calibration['holdout_rows']} holdout rows" in shown
    assert "calibration error (ECE)" in shown


def test_the_scoring_history_records_each_versions_estimate_with_an_interval(credit_scored):
    config, _, summary = credit_scored
    found = summary["estimated_performance"]["v0001"]
    assert found["metric"] == "roc_auc" and found["rows"] == summary["scored"] == 600
    assert 0.5 < found["lower"] < found["value"] < found["upper"] <= 1
    assert found["estimates"]["accuracy"]["value"] > 0.5
    validation = registry_for(config).metadata("v0001")["metrics"]["roc_auc"]
    assert found["validation_score"] == validation and found["status"] == "ok"
    assert scoring.history(config)[-1]["estimated_performance"] == summary["estimated_performance"]


def test_an_estimate_below_the_floor_is_a_breach_with_the_realised_alerts_settings(credit_scored):
    config, _, _ = credit_scored
    strict = config.model_copy(update={"performance": config.performance.model_copy(update={"floor": 0.99})})
    found = _score_date(strict, SCORED.isoformat())["estimated_performance"]["v0001"]
    assert found["status"] == "below_floor" and found["floor"] == 0.99
    assert found["reasons"][0].startswith("estimated roc_auc") and "worse than the floor 0.99" in found["reasons"][0]


def test_the_realised_metric_is_recorded_beside_the_estimate_of_the_same_rows(credit_scored):
    config, delivered, _ = credit_scored
    labels = pd.read_csv(delivered["labels"][0]).head(250)  # a part of the scored rows is labelled
    folder = delivered["labels"][0].parent
    labels.to_csv(folder / "2026-01-20.csv", index=False)

    [record] = performance.measure(config, "2026-01-20")["records"]

    out = paths.resolve(f"predictions/{config.name}/{SCORED}")
    predictions = pd.concat(pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet")) if "rejects" not in p.name)
    joined = labels.merge(predictions, on="customer_id")
    metadata = registry_for(config).metadata("v0001")
    same_rows = estimation.estimate(metadata["calibration"], joined[["proba_0", "proba_1"]].to_numpy())
    assert record["rows"] == len(joined) == 250
    assert record["estimated_value"] == pytest.approx(same_rows["metrics"]["roc_auc"]["value"], abs=1e-12)
    assert record["estimation_error"] == pytest.approx(record["value"] - record["estimated_value"], abs=1e-12)
    assert performance.history(config)[-1]["estimated_value"] == record["estimated_value"]


def test_regression_records_that_it_is_not_estimated_and_why(house_config, run_day):
    write_batches(house_config, DAY1, 1, rows=800)
    run_day(house_config, DAY1.isoformat())
    assert "calibration" not in registry_for(house_config).metadata("v0001") or \
        registry_for(house_config).metadata("v0001")["calibration"] is None
    write_scoring_batches(house_config, SCORED, 1, partitions=1, rows=200)
    found = _score_date(house_config, SCORED.isoformat())["estimated_performance"]["v0001"]
    assert found["status"] == "not_estimated" and found["value"] is None
    assert found["reasons"] == ["regression: a regressor gives no per-row distribution of its error to estimate a "
                                "metric from"]


def test_a_multiclass_pipeline_estimates_its_accuracy_and_macro_auc_and_records_them_beside_the_labels(run_day):
    config = get_pipeline("digits")  # ten classes, primary metric accuracy
    write_batches(config, DAY1, 1)
    run_day(config, DAY1.isoformat())
    calibration = registry_for(config).metadata("v0001")["calibration"]
    assert len(calibration["classes"]) == len(calibration["maps"]) == 10
    delivered = write_scoring_batches(config, SCORED, 1, partitions=1, rows=300)
    found = _score_date(config, SCORED.isoformat())["estimated_performance"]["v0001"]
    assert found["metric"] == "accuracy" and found["lower"] < found["value"] < found["upper"]
    assert 0.5 < found["estimates"]["roc_auc"]["value"] <= 1 and found["status"] == "ok"

    labels_date = delivered["labels"][0].name[:10]
    [record] = performance.measure(config, labels_date)["records"]
    assert record["rows"] == 300 and abs(record["estimation_error"]) < 0.1  # the same images' world
