"""Permutation importance: an informative feature ranks above noise, the budget bounds the work, a
version stores it, ``models show`` lists it, and ``drift.critical_top_features`` makes the most
important features critical for the drift verdict."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from include.ml import fitting, importance, steps
from include.ml.cli import main
from include.ml.config import FeatureSpec
from include.ml.drift import ReferenceProfile, drift_report


def _frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    frame = pd.DataFrame({"signal": rng.normal(0, 1, rows), "weak": rng.normal(0, 1, rows),
                          "noise": rng.normal(0, 1, rows), "level": rng.choice(["a", "b", "c"], rows)})
    logit = 2.0 * frame["signal"] + 0.4 * frame["weak"] - 1.0
    frame["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


@pytest.fixture
def small_config(credit_config):
    features = [FeatureSpec(name=n, type="numeric") for n in ("signal", "weak", "noise")] + [
        FeatureSpec(name="level", type="categorical")]
    return credit_config.model_copy(update={"features": features, "target": "y"})


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_an_informative_feature_ranks_above_noise_every_time(small_config, seed):
    rng = np.random.default_rng(seed)
    model = fitting.fit(_frame(rng, 2_000), small_config, small_config.features)
    found = importance.permutation_importance(model, _frame(rng, 1_000), small_config,
                                              [f.name for f in small_config.features])
    order = [item["feature"] for item in found["features"]]
    assert order[0] == "signal" and order.index("weak") < order.index("noise")
    by_name = {item["feature"]: item for item in found["features"]}
    assert by_name["signal"]["importance"] > 0.1 > abs(by_name["noise"]["importance"])
    assert found["metric"] == "roc_auc" and found["repeats"] == importance.REPEATS and found["unmeasured"] == []


def test_rows_are_subsampled_and_the_time_budget_leaves_the_rest_unmeasured(small_config):
    rng = np.random.default_rng(9)
    model = fitting.fit(_frame(rng, 2_000), small_config, small_config.features)
    names = [f.name for f in small_config.features]
    found = importance.permutation_importance(model, _frame(rng, 3_000), small_config, names, max_rows=500,
                                              budget_seconds=0.0)
    assert found["rows"] == 500 and found["features"] == [] and found["unmeasured"] == names


def test_a_version_stores_its_importance_and_models_show_orders_features_by_it(in_credit_history, capsys):
    config = in_credit_history.config
    stored = steps.registry_for(config).metadata("v0001")["importance"]
    values = [item["importance"] for item in stored["features"]]
    assert values == sorted(values, reverse=True) and len(values) == len(steps.registry_for(config)
                                                                        .metadata("v0001")["features"])
    assert main(["models", "show", "--pipeline", config.name, "v0001"]) == 0
    shown = capsys.readouterr().out
    top = stored["features"][0]
    assert f"permutation importance (roc_auc drop, {stored['rows']} holdout rows" in shown
    assert f"): {top['feature']} {top['importance']:+.4f}" in shown


def test_critical_top_features_make_the_most_important_feature_decide_the_drift_verdict(in_credit_history):
    shipped = in_credit_history.config  # its own drift.critical_features left out: only the importance decides
    config = shipped.model_copy(update={"drift": shipped.drift.model_copy(update={"critical_features": []})})
    registry = steps.registry_for(config)
    production = registry.production()
    top = importance.top_features(registry.metadata(production)["importance"], 1)
    profile = ReferenceProfile.from_dict(registry.reference_profile(production))
    batch = in_credit_history.landing[0]
    frame = pd.read_csv(batch) if batch.suffix == ".csv" else pd.read_parquet(batch)
    [feature] = top
    spread = frame[feature].std()
    frame[feature] = frame[feature] + 0.15 * spread  # drifted, not severely, one feature of many

    plain = drift_report(profile, frame, steps.critical_settings(config, production))
    assert feature in plain.drifted_features and plain.verdict == "warn"
    strict = config.model_copy(update={"drift": config.drift.model_copy(update={"critical_top_features": 1})})
    settings = steps.critical_settings(strict, production)
    assert settings.critical_features == [feature]
    judged = drift_report(profile, frame, settings)
    assert judged.verdict == "drift" and f"critical feature(s) drifted: {feature}" in judged.reasons


def test_the_drift_email_orders_features_by_importance_next_to_their_drift(in_credit_history):
    from include.ml import alerts
    from include.ml.records import RunWorkspace

    held = in_credit_history.summaries[2]
    assert held["branch"] == "hold"
    drift = RunWorkspace(held["workspace"]).read_json(RunWorkspace.DRIFT)
    production = held["production_before"]
    ranked = [f["feature"] for f in steps.registry_for(in_credit_history.config).metadata(production)
              ["importance"]["features"]]
    assert drift["importance_rank"] == {name: rank for rank, name in enumerate(ranked, start=1)}

    body = alerts.outcome_email(held, drift=drift).html

    table = body[body.index("<table class='data drift'>"):]
    assert "<th>importance rank</th>" in table
    rows = re.findall(r"<tr><td>([^<]+)</td><td class='num'>(\d+)</td>", table)
    assert [name for name, _ in rows][:len(ranked)] == ranked and rows[0][1] == "1"
