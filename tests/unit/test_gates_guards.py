"""The gates at real sizes: a baseline to beat, a guard against target leakage, reasons that say what
to change when the interval is too wide, and defaults that let an equal retrain through."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from include.ml import simulate, steps
from include.ml.config import FeatureSpec, Gates, PipelineConfig
from include.ml.evaluate import baseline_score, fit_baseline, paired_bootstrap, quality_gates
from include.ml.leakage import feature_strengths, is_perfect, leakage_reasons

DAY1 = dt.date(2026, 1, 1)
DS1, DS2 = DAY1.isoformat(), (DAY1 + dt.timedelta(days=1)).isoformat()


def deliver(config: PipelineConfig, ds: str, frame: pd.DataFrame) -> None:
    simulate._write_frame(frame, config.source.path_for(ds), config.source.file_format)


def with_leak(config: PipelineConfig, frame: pd.DataFrame) -> tuple[PipelineConfig, pd.DataFrame]:
    """``frame`` with ``leak``, a copy of the target; the config lists it when it lists its features."""
    frame = frame.assign(leak=frame[config.target].astype(float))
    if isinstance(config.features, list):
        config = config.model_copy(update={"features": [*config.features, FeatureSpec(name="leak", type="numeric")]})
    return config, frame


# -- the baseline gate ----------------------------------------------------------------------


def test_a_regression_target_of_pure_noise_is_rejected_by_the_baseline_gate(house_config, house_frame):
    noise = np.random.default_rng(3).normal(250_000, 40_000, len(house_frame))
    deliver(house_config, DS1, house_frame.assign(price=noise))

    results = steps.run_steps(house_config, "noise-1", DS1)

    evaluation, decision = results["evaluate"], results["drift_check"]
    assert evaluation["baseline"]["strategy"] == "mean"
    assert evaluation["baseline"]["fitted_on"] == "training rows"
    assert decision["branch"] == "reject"
    assert any(r.startswith("does not beat the baseline (predicting the mean): rmse ") and "vs baseline " in r
               and "needs at least margin 0" in r for r in decision["reasons"])
    meta = steps.registry_for(house_config).metadata(results["conclude"]["version"])
    assert meta["promotion_record"]["baseline"]["score"] == evaluation["baseline"]["score"]


def test_a_real_candidate_beats_the_class_prior_and_the_mean(credit_config, credit_frame, house_config, house_frame):
    for config, frame in ((credit_config, credit_frame), (house_config, house_frame)):
        deliver(config, DS1, frame)
        evaluation = steps.run_steps(config, f"{config.name}-1", DS1)["evaluate"]
        better = (evaluation["score"] - evaluation["baseline"]["score"]) * (1 if config.greater_is_better else -1)
        assert better > 0
        assert evaluation["gates"]["passed"]
    assert credit_config.metric == "roc_auc"


def test_the_class_prior_scores_half_an_auc_and_its_majority_share_in_accuracy(credit_config):
    y = pd.Series([0] * 80 + [1] * 20)
    prior = fit_baseline(y, "classification")

    assert prior == {"strategy": "prior", "classes": [0, 1], "prior": [0.8, 0.2]}
    assert baseline_score(prior, y.to_numpy(), credit_config) == 0.5
    accuracy = credit_config.model_copy(update={"metric": "accuracy"})
    assert baseline_score(prior, y.to_numpy(), accuracy) == 0.8


def test_the_baseline_margin_is_in_metric_units_and_losses_must_be_lower(credit_config, house_config):
    margin = credit_config.model_copy(update={"gates": Gates(min_score=0.5, min_gain_over_baseline=0.05)})
    assert quality_gates(0.56, None, margin, baseline=0.5)["passed"]
    failed = quality_gates(0.54, None, margin, baseline=0.5)
    assert failed["reasons"] == ["does not beat the baseline (predicting the class prior): roc_auc 0.54 vs baseline "
                                 "0.5, needs at least margin 0.05 (and to be better at all)"]
    assert quality_gates(40_000, None, house_config, baseline=45_000)["passed"]
    assert not quality_gates(45_000, None, house_config, baseline=45_000)["passed"]  # equal is not better


# -- the leakage guard ----------------------------------------------------------------------


@pytest.mark.parametrize("pipeline", ["credit_default", "house_prices"])
def test_a_copy_of_the_target_among_the_features_holds_the_candidate(pipeline, credit_config, credit_frame,
                                                                     house_config, house_frame):
    config, frame = (credit_config, credit_frame) if pipeline == "credit_default" else (house_config, house_frame)
    config, frame = with_leak(config, frame)
    deliver(config, DS1, frame)

    results = steps.run_steps(config, "leak-1", DS1)

    decision = results["drift_check"]
    assert results["evaluate"]["gates"]["passed"]
    assert decision["branch"] == "hold"
    assert any(r.startswith("possible target leakage in leak: ") for r in decision["reasons"])
    assert results["conclude"]["switched"] is False
    assert steps.registry_for(config).production() is None
    meta = steps.registry_for(config).metadata(results["conclude"]["version"])
    assert meta["decision"] == "held" and meta["promotion_record"]["leakage"] == decision["reasons"]


def test_a_perfect_score_holds_with_the_models_score_named(credit_config, credit_frame):
    features = credit_config.features

    reasons = leakage_reasons(credit_frame, features, credit_config, score=1.0)

    assert len(reasons) == 1 and reasons[0].startswith("possible target leakage in the model's score: roc_auc 1 ")
    assert is_perfect("rmse", 1e-12) and is_perfect("r2", 1.0) and not is_perfect("log_loss", 1e-6)


def test_a_failed_gate_rejects_before_leakage_holds(house_config, house_frame):
    config, frame = with_leak(house_config, house_frame)
    config = config.model_copy(update={"gates": Gates(min_score=1.0)})  # rmse below 1: no model passes
    deliver(config, DS1, frame)

    decision = steps.run_steps(config, "leak-strict", DS1, until="drift_check")["drift_check"]

    assert decision["branch"] == "reject"
    assert decision["reasons"][0].startswith("rmse ")


def test_an_id_like_category_or_a_merely_strong_feature_is_not_leakage(credit_config, credit_frame):
    frame = credit_frame.assign(row_code=[f"r{i}" for i in range(len(credit_frame))])
    features = [*credit_config.features, FeatureSpec(name="row_code", type="categorical")]

    strengths = feature_strengths(frame, features, credit_config)

    assert strengths["row_code"] < 0.7  # unique levels: cross-fitted, so no perfect in-sample rate
    assert max(strengths.values()) < credit_config.gates.leakage_threshold
    assert leakage_reasons(frame, features, credit_config, score=0.8) == []


def test_a_categorical_copy_of_a_multiclass_target_is_leakage(credit_config):
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b", "c"], 600)
    frame = pd.DataFrame({"label": y, "copy": y, "noise": rng.normal(size=600)})
    config = credit_config.model_copy(update={"target": "label", "positive_label": None})
    features = [FeatureSpec(name="copy", type="categorical"), FeatureSpec(name="noise", type="numeric")]

    assert [r.split(":")[0] for r in leakage_reasons(frame, features, config, 0.8)] == [
        "possible target leakage in copy"]


# -- reasons that say what to change, and the defaults --------------------------------------


def test_a_too_wide_interval_names_the_holdout_size_the_rarest_class_and_the_knobs(credit_config):
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.05).astype(int)  # 400 rows, about 20 positives
    signal = y + rng.normal(0, 0.8, 400)
    candidate, champion = signal + rng.normal(0, 0.5, 400), signal + rng.normal(0, 0.5, 400)
    config = credit_config.model_copy(update={"gates": Gates(min_score=0.5, max_regression=0.01)})

    interval = paired_bootstrap(y, candidate, champion, config, positive=1)
    gates = quality_gates(0.80, 0.80 - interval["difference"], config, interval)

    assert interval["rows"] == 400 and interval["rarest_class"] == "1"
    assert interval["rarest_class_rows"] == int(y.sum())
    (reason,) = gates["reasons"]
    assert "too wide to decide on 400 holdout rows" in reason
    assert f"{int(y.sum())} of them of the rarest class '1'" in reason
    for knob in ("model.window_batches", "gates.confidence", "gates.max_regression"):
        assert knob in reason


def test_a_clearly_worse_candidate_is_not_told_the_interval_is_too_wide(credit_config):
    interval = {"lower": -0.12, "upper": -0.06, "confidence": 0.9, "rows": 2000, "rarest_class": "1",
                "rarest_class_rows": 300}
    (reason,) = quality_gates(0.70, 0.79, credit_config, interval)["reasons"]
    assert "too wide" not in reason and "reaches -0.12" in reason


def test_the_default_gates_suit_a_few_thousand_rows_a_day():
    gates = Gates(min_score=0.7)
    assert (gates.max_regression, gates.confidence, gates.min_gain_over_baseline, gates.leakage_threshold) == (
        0.04, 0.9, 0.0, 0.99)


def test_with_the_default_gates_an_equal_quality_retrain_on_a_few_thousand_rows_is_promoted(credit_config):
    config = credit_config.model_copy(update={"gates": Gates(min_score=credit_config.gates.min_score)})
    for day, ds in enumerate((DS1, DS2)):
        deliver(config, ds, simulate.credit_default(DAY1 + dt.timedelta(days=day), 3000, seed=7, drifted=False))

    first = steps.run_steps(config, "equal-1", DS1)
    second = steps.run_steps(config, "equal-2", DS2)

    assert first["drift_check"]["branch"] == "promote"
    assert second["drift_check"]["branch"] == "promote", second["drift_check"]["reasons"]
    assert second["conclude"]["switched"]
