"""Training (estimator from the config, hash split, fit) and evaluation (metrics, quality gates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.ml.config import Gates, PipelineConfig
from include.ml.errors import ConfigError
from include.ml.estimators import ESTIMATORS
from include.ml.evaluate import holdout_metrics, quality_gates
from include.ml.fitting import build_estimator, fit, hash_split, split
from include.ml.validate import infer_features, validate_frame


def with_model(config: PipelineConfig, **changes) -> PipelineConfig:
    return config.model_copy(update={"model": config.model.model_copy(update=changes)})


def with_gates(config: PipelineConfig, min_score: float, max_regression: float = 0.0) -> PipelineConfig:
    return config.model_copy(update={"gates": Gates(min_score=min_score, max_regression=max_regression)})


@pytest.fixture
def credit_clean(credit_frame, credit_config) -> pd.DataFrame:
    return validate_frame(credit_frame, credit_config, credit_config.features)


def names(config: PipelineConfig) -> list[str]:
    return [f.name for f in config.features]


# -- building and fitting -------------------------------------------------------------------


def test_the_estimator_gets_the_config_params_and_seed(credit_config):
    estimator = build_estimator(credit_config)

    assert type(estimator).__name__ == "HistGradientBoostingClassifier"
    assert estimator.max_iter == 150
    assert estimator.random_state == 42


def test_an_explicit_random_state_in_params_wins_over_the_seed(credit_config):
    config = with_model(credit_config, params={"random_state": 3})

    assert build_estimator(config).random_state == 3


def test_params_the_estimator_does_not_take_are_a_config_error(credit_config):
    config = with_model(credit_config, params={"max_depthh": 3})

    with pytest.raises(ConfigError) as caught:
        build_estimator(config)

    assert "pipeline 'credit_default': model.params do not fit hist_gradient_boosting" in str(caught.value)
    assert "max_depthh" in str(caught.value)


@pytest.mark.parametrize(
    ("task_config", "estimator", "expected"),
    [
        ("credit_config", "logistic_regression", "LogisticRegression"),
        ("credit_config", "random_forest", "RandomForestClassifier"),
        ("house_config", "linear_regression", "LinearRegression"),
        ("house_config", "ridge", "Ridge"),
        ("house_config", "hist_gradient_boosting", "HistGradientBoostingRegressor"),
    ],
)
def test_every_estimator_name_builds_its_estimator(request, task_config: str, estimator: str, expected: str):
    config = with_model(request.getfixturevalue(task_config), estimator=estimator, params={})

    assert type(build_estimator(config)).__name__ == expected


@pytest.mark.parametrize(("task", "spec"), [(task, spec) for task, specs in ESTIMATORS.items()
                                           for spec in specs.values()], ids=lambda v: getattr(v, "name", v))
def test_every_registry_estimator_builds_its_class_with_its_defaults_and_the_seed(request, task: str, spec):
    base = request.getfixturevalue("credit_config" if task == "classification" else "house_config")

    estimator = build_estimator(with_model(base, estimator=spec.name, params={}))

    assert type(estimator) is spec.estimator_class()
    assert f"{type(estimator).__module__}.{type(estimator).__name__}".startswith("sklearn.")
    assert all(getattr(estimator, key) == value for key, value in spec.defaults.items())
    assert (getattr(estimator, "random_state", None) == base.model.seed) is spec.seeded


def test_params_in_the_config_win_over_the_registry_defaults(credit_config):
    config = with_model(credit_config, estimator="logistic_regression", params={"max_iter": 50})

    assert build_estimator(config).max_iter == 50
    assert build_estimator(with_model(config, params={})).max_iter == 1000


def test_the_split_is_repeatable_disjoint_and_about_test_size(credit_clean, credit_config):
    first, again = split(credit_clean, credit_config), split(credit_clean, credit_config)

    assert first.holdout.index.tolist() == again.holdout.index.tolist()
    assert len(first.holdout) == pytest.approx(len(credit_clean) * credit_config.model.test_size, abs=40)
    assert len(first.train) + len(first.holdout) == len(credit_clean)
    assert set(first.train.index).isdisjoint(first.holdout.index)
    assert first.holdout["default"].nunique() == 2  # both classes held out


def test_the_hash_holdout_depends_on_the_row_key_not_on_the_seed_or_the_row_order(credit_clean, credit_config):
    other = hash_split(credit_clean, with_model(credit_config, seed=1))
    shuffled = hash_split(credit_clean.sample(frac=1, random_state=3), credit_config)
    expected = sorted(hash_split(credit_clean, credit_config).holdout["customer_id"])

    assert sorted(other.holdout["customer_id"]) == sorted(shuffled.holdout["customer_id"]) == expected


def test_training_twice_on_the_same_data_gives_the_same_model(credit_clean, credit_config):
    data = split(credit_clean, credit_config)

    first = fit(data.train, credit_config, credit_config.features)
    again = fit(data.train, credit_config, credit_config.features)

    x = data.holdout[names(credit_config)]
    np.testing.assert_array_equal(first.predict_proba(x), again.predict_proba(x))


def test_a_fitted_model_scores_rows_with_unseen_levels_and_missing_values(credit_clean, credit_config):
    model = fit(credit_clean, credit_config, credit_config.features)
    rows = credit_clean.head(5).copy()
    rows["channel"] = "bnpl_partner"
    rows["income"] = np.nan

    proba = model.predict_proba(rows[names(credit_config)])

    assert proba.shape == (5, 2)
    assert np.isfinite(proba).all()


# -- metrics --------------------------------------------------------------------------------


class Oracle:
    """A 'model' that knows the answers (optionally off by ``error``)."""

    def __init__(self, y: pd.Series, error: float = 0.0):
        self.y, self.error = y, error
        self.classes_ = np.array(sorted(y.unique()))

    def predict(self, x):
        return self.y.loc[x.index].to_numpy() + self.error

    def predict_proba(self, x):
        truth = self.y.loc[x.index].to_numpy()
        k = len(self.classes_)  # 0.99 for the true class with two classes; every row sums to 1
        return np.column_stack([truth == c for c in self.classes_]).astype(float) * (1 - 0.01 * k) + 0.01


def test_classification_scores_every_classification_metric(credit_clean, credit_config):
    perfect = Oracle(credit_clean["default"])

    result = holdout_metrics(perfect, credit_clean, credit_config, names(credit_config))

    assert set(result) == {"accuracy", "balanced_accuracy", "f1", "roc_auc", "average_precision", "log_loss"}
    assert result["roc_auc"] == 1.0
    assert result["accuracy"] == 1.0
    assert result["log_loss"] == pytest.approx(-np.log(0.99), rel=1e-6)
    assert all(isinstance(v, float) for v in result.values())


def test_a_three_class_target_is_scored_one_class_against_the_rest(credit_clean, credit_config):
    three = credit_clean.assign(default=[i % 3 for i in range(len(credit_clean))])
    perfect = Oracle(three["default"])

    result = holdout_metrics(perfect, three, credit_config, names(credit_config))

    assert result["roc_auc"] == 1.0
    assert result["f1"] == 1.0
    assert result["balanced_accuracy"] == 1.0
    assert result["average_precision"] == 1.0  # macro over the one-vs-rest problems


def test_regression_scores_rmse_mae_and_r2(house_frame, house_config):
    features = infer_features(house_frame, house_config)
    off_by_1000 = Oracle(house_frame["price"], error=1000.0)

    result = holdout_metrics(off_by_1000, house_frame, house_config, [f.name for f in features])

    assert result["rmse"] == pytest.approx(1000.0)
    assert result["mae"] == pytest.approx(1000.0)
    assert 0.99 < result["r2"] < 1.0


def test_a_real_model_scores_between_chance_and_perfect(credit_clean, credit_config):
    data = split(credit_clean, credit_config)
    model = fit(data.train, credit_config, credit_config.features)

    result = holdout_metrics(model, data.holdout, credit_config, names(credit_config))

    assert 0.6 < result["roc_auc"] < 0.98


def test_a_target_with_text_classes_can_be_scored(credit_clean, credit_config):
    credit_clean["default"] = np.where(credit_clean["default"] == 1, "yes", "no")
    data = split(credit_clean, credit_config)
    model = fit(data.train, credit_config, credit_config.features)

    result = holdout_metrics(model, data.holdout, credit_config, names(credit_config))

    assert 0.6 < result["roc_auc"] < 0.98


# -- quality gates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "champion", "passed"),
    [
        (0.80, None, True),  # first model: only the floor applies
        (0.69, None, False),  # below the floor
        (0.70, None, True),  # exactly the floor
        (0.80, 0.82, True),  # worse than production, within the allowed 0.03
        (0.80, 0.84, False),  # worse than production by more than 0.03
        (0.90, 0.80, True),  # better than production
    ],
)
def test_gates_for_a_metric_where_higher_is_better(credit_config, candidate, champion, passed):
    config = with_gates(credit_config, min_score=0.70, max_regression=0.03)

    assert quality_gates(candidate, champion, config)["passed"] is passed


@pytest.mark.parametrize(
    ("candidate", "champion", "passed"),
    [
        (90_000.0, None, True),
        (130_000.0, None, False),  # above the ceiling
        (90_000.0, 86_000.0, True),  # worse by 4000, 5000 allowed
        (90_000.0, 84_000.0, False),  # worse by 6000
        (80_000.0, 90_000.0, True),  # lower error than production
    ],
)
def test_gates_for_a_metric_where_lower_is_better(house_config, candidate, champion, passed):
    config = with_gates(house_config, min_score=120_000, max_regression=5_000)

    assert quality_gates(candidate, champion, config)["passed"] is passed


def test_failed_gates_say_which_gate_and_by_how_much(credit_config):
    config = with_gates(credit_config, min_score=0.90, max_regression=0.01)

    result = quality_gates(0.75, 0.85, config)

    assert result["passed"] is False
    assert result["delta"] == pytest.approx(-0.10)
    assert result["reasons"] == [
        "roc_auc 0.75 is not at least the minimum 0.9",
        "roc_auc 0.75 is worse than production's 0.85 by 0.1, more than the allowed 0.01",
    ]


def test_a_ceiling_metric_says_at_most(house_config):
    result = quality_gates(150_000.0, None, with_gates(house_config, min_score=120_000))

    assert result["reasons"] == ["rmse 1.5e+05 is not at most the minimum 120000"]
    assert result["delta"] is None


def test_every_pipeline_holds_out_by_row_hash_unless_it_asks_for_the_stratified_split(credit_clean, credit_config):
    assert credit_config.model.holdout == "hash"  # the shipped config does not set it: the default

    hashed = split(credit_clean, credit_config)
    stratified = split(credit_clean, with_model(credit_config, holdout="stratified"))

    assert hashed.key == ["customer_id"]
    expected = hash_split(credit_clean, credit_config).holdout["customer_id"]
    assert sorted(hashed.holdout["customer_id"]) == sorted(expected)
    assert stratified.key == []  # stratified: the positive share of the holdout is the batch's, to the row
    share = credit_clean[credit_config.target].mean()
    assert abs(stratified.holdout[credit_config.target].mean() - share) < 2 / len(stratified.holdout)
