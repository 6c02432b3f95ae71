"""Multiclass classification (issue 15 item 1) and ``positive_label`` (item 2): the metrics equal
scikit-learn's on the same rows, the champion/challenger bootstrap and gates, prediction drift,
scoring's per-class probabilities and realised performance, for 3 classes with integer and text
labels; and one rule for the positive class of a binary task everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

from include.ml import paths, performance, scoring
from include.ml.config import ClassificationPipeline, FeatureSpec, PipelineConfig
from include.ml.drift import prediction_drift, prediction_profile
from include.ml.evaluate import (
    PositiveLabelError,
    _auc_rows,
    _ovr_auc_rows,
    _resample_values,
    champion_comparison,
    class_metadata,
    holdout_metrics,
    metric_inputs,
    metric_value,
    paired_bootstrap,
    positive_class,
    prediction_values,
    proba_classes,
    quality_gates,
)
from include.ml.fitting import fit, split
from include.ml.registry import ModelRegistry

TEXT_LABELS = {0: "barolo", 1: "grignolino", 2: "barbera"}  # not in sorted order: sklearn sorts classes_


def wine_frame(labels: str = "int") -> pd.DataFrame:
    """sklearn's wine data (178 rows, 13 numeric features, 3 cultivars), a row id and the cultivar."""
    data = load_wine(as_frame=True)
    frame = data.data.rename(columns=lambda c: c.replace("/", "_"))
    target = data.target if labels == "int" else data.target.map(TEXT_LABELS)
    return frame.assign(wine_id=[f"w{i:03d}" for i in range(len(frame))], cultivar=target.to_numpy())


def wine_config(credit_config: PipelineConfig, frame: pd.DataFrame, **changes) -> PipelineConfig:
    """credit_default's settings pointed at the wine data: every measurement a numeric feature, a
    logistic regression, 1000 bootstrap resamples."""
    features = [FeatureSpec(name=c, type="numeric") for c in frame.columns if c not in ("wine_id", "cultivar")]
    raw = credit_config.model_dump(mode="json")
    raw.update(target="cultivar", id_columns=["wine_id"], features=[f.model_dump(mode="json") for f in features],
               model={"estimator": "logistic_regression", "params": {"max_iter": 2000}, "test_size": 0.4, "seed": 3},
               drift={**raw["drift"], "critical_features": [], "min_batch_rows": 20}, **changes)
    return PipelineConfig.model_validate(raw)


@pytest.fixture(params=["int", "text"])
def wine(request, credit_config):
    """(config, split, fitted model, feature names) of the wine data with integer or text cultivars."""
    frame = wine_frame(request.param)
    config = wine_config(credit_config, frame)
    data = split(frame, config)
    names = [f.name for f in config.features]
    return config, data, fit(data.train, config, config.features), names


def test_three_class_holdout_metrics_equal_sklearns_on_the_same_rows(wine):
    config, data, model, names = wine
    y, proba = data.holdout[config.target], model.predict_proba(data.holdout[names])
    predicted = model.predict(data.holdout[names])

    result = holdout_metrics(model, data.holdout, config, names)

    assert len(model.classes_) == 3
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
                                              abs=1e-12)
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=model.classes_), abs=1e-12)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted), abs=1e-12)
    assert result["f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro"), abs=1e-12)
    truth = np.column_stack([y == c for c in model.classes_])
    assert result["average_precision"] == pytest.approx(
        skm.average_precision_score(truth, proba, average="macro"), abs=1e-12)


def test_the_vectorised_one_vs_rest_auc_of_every_resample_matches_sklearn(wine):
    config, data, model, names = wine
    y, proba = data.holdout[config.target].to_numpy(), model.predict_proba(data.holdout[names]).round(1)  # ties
    truth = np.column_stack([y == c for c in model.classes_])
    samples = np.random.default_rng(5).integers(0, len(y), (100, len(y)))

    # sklearn's ovr macro is the mean of these (it refuses rounded rows that do not sum to 1)
    expected = [np.mean([skm.roc_auc_score(y[rows] == c, proba[rows, i]) for i, c in enumerate(model.classes_)])
                for rows in samples]

    np.testing.assert_allclose(_ovr_auc_rows(truth, proba, samples), expected, rtol=0, atol=1e-12)


def test_a_resample_missing_a_class_has_no_multiclass_auc(wine):
    config, data, model, names = wine
    y, proba = data.holdout[config.target].to_numpy(), model.predict_proba(data.holdout[names])
    truth = np.column_stack([y == c for c in model.classes_])
    two_classes = np.flatnonzero(y != model.classes_[0])[:20]

    assert np.isnan(_ovr_auc_rows(truth, proba, two_classes[None, :]))[0]


@pytest.mark.parametrize("metric", ["roc_auc", "log_loss", "balanced_accuracy", "f1", "average_precision"])
def test_a_three_class_model_against_itself_has_an_interval_around_zero(wine, metric):
    config, data, model, names = wine
    config = config.model_copy(update={"metric": metric, "gates": config.gates.model_copy(
        update={"bootstrap_resamples": 200})})

    interval = champion_comparison(model, model, data.holdout, config, names, names)

    assert interval["lower"] <= 0 <= interval["upper"] and interval["difference"] == 0
    assert interval["resamples"] == 200


def test_a_model_fitted_on_shuffled_labels_is_rejected_against_a_real_champion(wine):
    config, data, model, names = wine
    shuffled = data.train.assign(cultivar=np.random.default_rng(0).permutation(data.train["cultivar"].to_numpy()))
    worse = fit(shuffled, config, config.features)
    config = config.model_copy(update={"gates": config.gates.model_copy(update={"min_score": 0.0})})

    interval = champion_comparison(worse, model, data.holdout, config, names, names)
    gates = quality_gates(holdout_metrics(worse, data.holdout, config, names)["roc_auc"],
                          holdout_metrics(model, data.holdout, config, names)["roc_auc"], config, interval)

    assert interval["upper"] < 0
    assert not gates["passed"] and "interval of the improvement" in gates["reasons"][0]


def test_binary_bootstrap_keeps_its_vectorised_auc(credit_config):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    candidate, champion = y + rng.normal(size=300), y + rng.normal(scale=2, size=300)
    samples = np.random.default_rng(credit_config.gates.bootstrap_seed).integers(0, 300, (1000, 300))
    expected = _auc_rows(y == 1, candidate, samples) - _auc_rows(y == 1, champion, samples)

    interval = paired_bootstrap(y, candidate, champion, credit_config, 1)

    tail = (1 - credit_config.gates.confidence) / 2
    assert interval["lower"] == pytest.approx(np.quantile(expected, tail), abs=1e-12)


def test_prediction_drift_watches_every_class_probability(wine):
    config, data, model, names = wine
    holdout_values = prediction_values(model, data.holdout[names], config.task)
    profile = prediction_profile(holdout_values, config.drift.bins)

    same = prediction_drift(profile, holdout_values, config.drift)
    one_class = data.train[data.train["cultivar"] == model.classes_[0]]
    shifted = prediction_drift(profile, prediction_values(model, one_class[names], config.task), config.drift)

    assert list(holdout_values.columns) == [f"proba_{c}" for c in model.classes_]
    assert sorted(same["by_column"]) == sorted(holdout_values.columns)
    assert shifted["verdict"] == "drift" and shifted["watched"] in holdout_values.columns
    assert same["verdict"] == "none"


def test_scoring_writes_a_probability_per_class_and_prediction_drift_reads_them(wine, tmp_path, monkeypatch):
    config, data, model, names = wine
    monkeypatch.setattr(ModelRegistry, "metadata", lambda self, version: {
        "prediction_profile": prediction_profile(prediction_values(model, data.holdout[names], config.task)),
        **class_metadata(model, config)})
    data.train.to_parquet(tmp_path / "rows.parquet", index=False)
    out = paths.predictions_dir(config, "2026-01-02") / "part-000.parquet"

    summary = scoring.score_file(model, "v0001", config, config.features, tmp_path / "rows.parquet", out)
    predictions = pd.read_parquet(out)
    watched = scoring._prediction_scores(config, [out], "v0001")
    total = scoring.summarise(config, "2026-01-02", [summary.to_dict()])

    proba = model.predict_proba(data.train[names])
    assert proba_classes(predictions.columns) == [str(c) for c in model.classes_]
    np.testing.assert_allclose(predictions[[f"proba_{c}" for c in model.classes_]], proba)
    assert predictions["prediction"].tolist() == model.predict(data.train[names]).tolist()
    assert summary.prediction_mean == pytest.approx(proba.max(axis=1).mean())  # the predicted class's probability
    np.testing.assert_allclose(watched, proba)
    assert total["prediction_drift"]["verdict"] in ("none", "drift") and "by_column" in total["prediction_drift"]


def test_realised_performance_of_three_classes_is_the_macro_one_vs_rest_auc(wine, tmp_path, monkeypatch):
    config, data, model, names = wine
    monkeypatch.setattr(performance.ModelRegistry, "metadata", lambda self, version: {"metrics": {}})
    data.holdout.to_parquet(tmp_path / "rows.parquet", index=False)
    out = paths.predictions_dir(config, "2026-01-02") / "part-000.parquet"
    scoring.score_file(model, "v0001", config, config.features, tmp_path / "rows.parquet", out)
    paths.labels_dir(config).mkdir(parents=True, exist_ok=True)
    data.holdout[["wine_id", "cultivar"]].to_csv(paths.labels_dir(config) / "2026-01-04.csv", index=False)

    [record] = performance.measure(config, "2026-01-04")["records"]

    proba = model.predict_proba(data.holdout[names])
    expected = skm.roc_auc_score(data.holdout["cultivar"], proba, multi_class="ovr", average="macro")
    assert record["value"] == pytest.approx(expected, abs=1e-12) and record["rows"] == len(data.holdout)
    for metric, sklearn_value in [
        ("log_loss", skm.log_loss(data.holdout["cultivar"], proba, labels=model.classes_)),
        ("f1", skm.f1_score(data.holdout["cultivar"], model.predict(data.holdout[names]), average="macro")),
    ]:
        rows = performance.matched_predictions(config, performance.read_labels(
            config, performance.label_files(config, "2026-01-04")), "2026-01-04")
        measured = performance.group_metric(config.model_copy(update={"metric": metric}), rows)
        assert measured == pytest.approx(sklearn_value, abs=1e-12)


# -- positive_label -------------------------------------------------------------------------


@pytest.fixture
def no_yes(credit_config, tmp_path, monkeypatch):
    """A binary no/yes model, its rows, and the config with ``positive_label: "no"``."""
    rng = np.random.default_rng(7)
    rows = pd.DataFrame({"customer_id": [f"c{i:03d}" for i in range(400)], "x1": rng.normal(size=400),
                         "x2": rng.normal(size=400)})
    rows["default"] = np.where(rows["x1"] + rng.normal(scale=0.8, size=400) > 0, "yes", "no")
    model = LogisticRegression().fit(rows[["x1", "x2"]], rows["default"])
    config = credit_config.model_copy(update={"positive_label": "no"})
    return config, model, rows


def test_positive_label_no_makes_the_metrics_judge_no_everywhere(no_yes, credit_config, tmp_path, monkeypatch):
    config, model, rows = no_yes
    config = config.model_copy(update={"metric": "average_precision"})
    proba = model.predict_proba(rows[["x1", "x2"]])
    is_no = rows["default"] == "no"
    features = [FeatureSpec(name="x1", type="numeric"), FeatureSpec(name="x2", type="numeric")]
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    out = paths.predictions_dir(config, "2026-01-02") / "part-000.parquet"
    summary = scoring.score_file(model, "v0001", config, features, tmp_path / "rows.parquet", out)
    monkeypatch.setattr(performance.ModelRegistry, "metadata", lambda self, version: {"metrics": {}})
    paths.labels_dir(config).mkdir(parents=True, exist_ok=True)
    rows[["customer_id", "default"]].to_csv(paths.labels_dir(config) / "2026-01-04.csv", index=False)

    evaluated = holdout_metrics(model, rows, config, ["x1", "x2"])
    [realised] = performance.measure(config, "2026-01-04")["records"]

    assert positive_class(model.classes_, "no") == "no" and list(model.classes_) == ["no", "yes"]
    # "no" is the class judged: its truth against its probability; on yes's probability it is 1 - AUC of yes
    assert evaluated["roc_auc"] == pytest.approx(skm.roc_auc_score(is_no, proba[:, 0]), abs=1e-12)
    assert skm.roc_auc_score(is_no, proba[:, 1]) == pytest.approx(
        1 - skm.roc_auc_score(~is_no, proba[:, 1]), abs=1e-12)
    ap_no = skm.average_precision_score(is_no, proba[:, 0])
    assert ap_no != pytest.approx(skm.average_precision_score(~is_no, proba[:, 1]), abs=1e-3)
    assert evaluated["average_precision"] == pytest.approx(ap_no, abs=1e-12)
    assert evaluated["f1"] == pytest.approx(skm.f1_score(rows["default"], model.predict(rows[["x1", "x2"]]),
                                                         pos_label="no"), abs=1e-12)
    assert realised["value"] == pytest.approx(ap_no, abs=1e-12)
    assert summary.prediction_mean == pytest.approx(proba[:, 0].mean())  # scoring's positive column: proba_no
    np.testing.assert_allclose(scoring._prediction_scores(config, [out], "v0001", "no"), proba[:, 0])
    np.testing.assert_allclose(prediction_values(model, rows[["x1", "x2"]], "classification", "no"), proba[:, 0])
    np.testing.assert_allclose(metric_inputs(model, rows, config, ["x1", "x2"]), proba[:, 0])
    default = credit_config.model_copy(update={"metric": "average_precision"})  # no positive_label: "yes"
    assert holdout_metrics(model, rows, default, ["x1", "x2"])["average_precision"] == pytest.approx(
        skm.average_precision_score(~is_no, proba[:, 1]), abs=1e-12)


def test_the_positive_label_is_matched_as_text_and_returned_as_the_class():
    assert positive_class(np.array([0, 1]), 0) == 0
    assert positive_class(np.array([2, 10]), "2") == 2
    assert positive_class(["0", "1"], 1) == "1"  # a prediction file's classes are text
    assert positive_class([False, True], False) is False
    assert positive_class(np.array([False, True]), True) == np.True_
    assert positive_class(["no", "yes"]) == "yes"  # without positive_label: the second in sorted order


def test_a_positive_label_that_is_not_a_class_is_a_clear_error(no_yes):
    config, model, rows = no_yes
    config = config.model_copy(update={"positive_label": "maybe"})

    with pytest.raises(PositiveLabelError, match=r"positive_label 'maybe' is not one of the target's classes"):
        holdout_metrics(model, rows, config, ["x1", "x2"])
    with pytest.raises(PositiveLabelError, match="is for binary classification, but the target has 3 classes"):
        positive_class(["a", "b", "c"], "a")


def test_a_positive_label_on_a_three_class_target_is_refused_at_training(credit_config):
    frame = wine_frame()
    config = wine_config(credit_config, frame, positive_label=1)
    model = fit(split(frame, config).train, config, config.features)

    with pytest.raises(PositiveLabelError, match="remove positive_label"):
        prediction_values(model, frame[[f.name for f in config.features]], config.task, config.positive_label)


def test_config_check_refuses_positive_label_on_regression(house_config):
    raw = house_config.model_dump(mode="json") | {"positive_label": "yes"}

    with pytest.raises(ValueError, match="positive_label 'yes' is for binary classification"):
        PipelineConfig.model_validate(raw)


def test_positive_label_is_typed_and_leaves_the_hash_of_configs_without_it(credit_config):
    raw = credit_config.model_dump(mode="json")
    for value in ("yes", 1, True):
        assert PipelineConfig.model_validate(raw | {"positive_label": value}).positive_label == value
    with pytest.raises(ValueError, match="positive_label"):
        PipelineConfig.model_validate(raw | {"positive_label": [1]})
    assert PipelineConfig.model_validate(raw).config_hash() == credit_config.config_hash()
    assert PipelineConfig.model_validate(raw | {"positive_label": 0}).config_hash() != credit_config.config_hash()
    assert isinstance(PipelineConfig.model_validate(raw | {"positive_label": "yes"}), ClassificationPipeline)


def test_registered_metadata_records_the_classes_and_the_positive_label(no_yes, wine):
    config, model, _rows = no_yes
    wine_config_, _data, wine_model, _names = wine

    assert class_metadata(model, config) == {"classes": ["no", "yes"], "positive_label": "no"}
    assert class_metadata(wine_model, wine_config_) == {
        "classes": list(wine_model.classes_.tolist()), "positive_label": None}
    assert metric_value("roc_auc", np.array(["no", "yes"]), np.array([0.8, 0.2]), "no") == 1.0


# -- through the training steps -------------------------------------------------------------


def test_a_three_class_pipeline_trains_compares_with_its_champion_and_shows_its_classes(credit_config, monkeypatch,
                                                                                        capsys):
    from include.ml import cli, steps

    frame = wine_frame("text")
    # wine's cultivars separate perfectly, and a perfect holdout score holds as possible leakage: relabel a
    # few rows (the gates then judge a model of real quality)
    noisy = np.random.default_rng(1).choice(len(frame), 20, replace=False)
    frame.loc[noisy, "cultivar"] = frame.loc[np.roll(noisy, 1), "cultivar"].to_numpy()
    config = wine_config(credit_config, frame, name="wine_cultivar", registry="registry/wine_cultivar",
                         validation={**credit_config.validation.model_dump(mode="json"), "min_rows": 100},
                         source={"path": "landing/wine/{ds}.csv"})
    rng = np.random.default_rng(0)
    for ds in ("2026-01-01", "2026-01-02"):
        landing = config.source.path_for(ds)
        landing.parent.mkdir(parents=True, exist_ok=True)
        frame.sample(frac=1.0, random_state=int(rng.integers(1000))).to_csv(landing, index=False)

    first = steps.run_steps(config, "scheduled__2026-01-01", "2026-01-01")
    second = steps.run_steps(config, "scheduled__2026-01-02", "2026-01-02")
    monkeypatch.setattr(cli, "get_pipeline", lambda name: config)
    cli.main(["models", "show", "--pipeline", config.name, "v0001"])

    assert first["drift_check"]["branch"] == "promote"
    interval = second["evaluate"]["gates"]["interval"]
    assert interval["resamples"] > 900 and interval["lower"] <= interval["upper"]
    metadata = steps.registry_for(config).metadata("v0001")
    assert metadata["classes"] == ["barbera", "barolo", "grignolino"] and metadata["positive_label"] is None
    assert set(metadata["metrics"]) >= {"roc_auc", "balanced_accuracy", "log_loss", "f1"}
    assert "classes: barbera, barolo, grignolino" in capsys.readouterr().out


def test_models_show_names_a_binary_versions_positive_label(credit_config, run_day, monkeypatch, capsys):
    from include.ml import cli
    from include.ml.simulate import write_batches

    config = credit_config.model_copy(update={"positive_label": 0})
    write_batches(config, pd.Timestamp("2026-01-01").date(), 1, rows=1500)
    run_day(config, "2026-01-01")
    monkeypatch.setattr(cli, "get_pipeline", lambda name: config)

    cli.main(["models", "show", "--pipeline", config.name, "v0001"])

    assert "classes: 0, 1   positive label: 0" in capsys.readouterr().out


def test_a_champion_that_knows_fewer_classes_is_compared_in_the_candidates_class_order(wine):
    config, data, model, names = wine
    two_classes = data.train[data.train["cultivar"] != model.classes_[2]]
    champion = fit(two_classes, config, config.features)
    config = config.model_copy(update={"metric": "log_loss"})

    interval = champion_comparison(model, champion, data.holdout, config, names, names)

    assert len(champion.classes_) == 2 and interval["resamples"] == config.gates.bootstrap_resamples
    assert interval["upper"] < 0  # the candidate's loss is lower: it knows the third class


@pytest.mark.parametrize("metric", ["average_precision", "log_loss", "accuracy", "balanced_accuracy", "f1"])
def test_every_classification_metric_of_a_block_of_resamples_equals_sklearns_per_resample(wine, no_yes, metric):
    config, data, model, names = wine
    binary_config, binary_model, rows = no_yes
    cases = [(data.holdout[config.target].to_numpy(), metric_inputs(
        model, data.holdout, config.model_copy(update={"metric": metric}), names), None, list(model.classes_)),
             (rows["default"].to_numpy(), metric_inputs(
        binary_model, rows, binary_config.model_copy(update={"metric": metric}), ["x1", "x2"]), "no", ["no", "yes"])]
    for y, inputs, positive, classes in cases:
        if metric in ("average_precision", "log_loss") or inputs.ndim == 2:
            inputs = inputs.round(2)  # ties
        samples = np.random.default_rng(4).integers(0, len(y), (60, len(y)))

        expected = [metric_value(metric, y[r], inputs[r], positive, classes) for r in samples]

        np.testing.assert_allclose(_resample_values(metric, y, inputs, positive, classes, samples), expected,
                                   rtol=0, atol=1e-12)
