"""Pipeline configs: the shipped ones load, and a broken one is refused saying what is wrong and where."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from include.ml import config as config_module
from include.ml.config import (
    ClassificationPipeline,
    ConfigError,
    PipelineConfig,
    RegressionPipeline,
    get_pipeline,
    load_all,
    load_config,
)
from include.ml.paths import PIPELINES_DIR


@pytest.fixture(scope="module")
def credit_raw() -> dict:
    """The shipped credit_default.yaml as a plain mapping, to be broken one key at a time."""
    return yaml.safe_load((PIPELINES_DIR / "credit_default.yaml").read_text())


@pytest.fixture
def write_config(tmp_path: Path, credit_raw: dict):
    """``write_config(changes, name=..., file_name=...) -> Path``: credit_default with ``changes``
    (dotted keys; value ``DELETE`` removes the key) written as YAML into ``tmp_path``."""

    def write(changes: dict | None = None, file_name: str = "credit_default") -> Path:
        data = copy.deepcopy(credit_raw)
        for dotted, value in (changes or {}).items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            if value is DELETE:
                node.pop(last, None)
            else:
                node[last] = value
        path = tmp_path / f"{file_name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


DELETE = object()


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


# -- the shipped configs --------------------------------------------------------------------


def test_every_shipped_pipeline_config_loads():
    configs = load_all()

    assert [c.name for c in configs] == ["credit_default", "diabetes", "digits", "house_prices"]
    assert [c.dag_id for c in configs] == [
        "ml_training__credit_default", "ml_training__diabetes", "ml_training__digits", "ml_training__house_prices"]


def test_credit_default_declares_its_features_and_house_prices_infers_them():
    credit, house = get_pipeline("credit_default"), get_pipeline("house_prices")

    assert len(credit.features) == 15
    assert {f.type for f in credit.features} == {"numeric", "categorical"}
    assert house.features == "infer"


def test_metric_direction_follows_the_metric():
    assert get_pipeline("credit_default").greater_is_better is True  # roc_auc
    assert get_pipeline("house_prices").greater_is_better is False  # rmse


def test_the_config_and_its_estimator_registry_load_without_scikit_learn():
    code = ("import sys; import include.ml.config, include.ml.estimators; include.ml.config.load_all(); "
            "print(sorted(m for m in ('sklearn', 'pandas', 'numpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])

    assert result.stdout.strip() == "[]"


def test_unknown_pipeline_name_lists_the_known_ones():
    with pytest.raises(ConfigError) as caught:
        get_pipeline("fraud")

    message = str(caught.value)
    assert "no pipeline 'fraud'" in message
    assert "credit_default" in message and "house_prices" in message


def test_relative_paths_resolve_under_the_data_root(ml_home: Path):
    config = get_pipeline("credit_default")

    assert config.source.path_for("2026-03-04") == ml_home / "landing/credit_default/2026-03-04.csv"
    assert config.registry_path == ml_home / "registry/credit_default"


def test_source_path_fills_in_the_date_without_dashes(write_config, ml_home: Path):
    config = load_config(write_config({"source.path": "drop/{ds_nodash}/batch.parquet"}))

    assert config.source.path_for("2026-03-04") == ml_home / "drop/20260304/batch.parquet"
    assert config.source.file_format == "parquet"


def test_absolute_paths_are_kept_as_they_are_when_allowed(write_config, tmp_path: Path):
    config = load_config(write_config({"registry": str(tmp_path / "elsewhere"), "allow_outside_data_root": True}))

    assert config.registry_path == tmp_path / "elsewhere"


def test_config_hash_changes_with_any_setting_and_only_then(write_config):
    original = load_config(write_config())
    same = load_config(write_config())
    tuned = load_config(write_config({"model.params": {"max_iter": 10}}))

    assert original.config_hash() == same.config_hash()
    assert original.config_hash() != tuned.config_hash()


def test_the_stratified_holdout_with_a_training_window_is_refused_naming_both_fields(write_config):
    message = error_of(write_config({"model.holdout": "stratified", "model.window_batches": 7}))

    assert "model.holdout 'stratified' with model.window_batches 7" in message
    assert "use model.holdout 'hash'" in message


def test_the_holdout_method_is_part_of_the_config_hash(write_config):
    stratified = load_config(write_config({"model.holdout": "stratified"}))

    assert stratified.config_hash() != load_config(write_config()).config_hash()
    assert stratified.config_hash() == load_config(write_config({"model.holdout": "stratified"})).config_hash()


def test_a_loaded_config_cannot_be_changed_by_a_step():
    config = get_pipeline("credit_default")

    with pytest.raises(ValidationError, match="frozen"):
        config.target = "income"


# -- broken configs -------------------------------------------------------------------------


def test_unknown_top_level_key_is_named_with_the_file(write_config):
    path = write_config({"modell": {"estimator": "random_forest"}})

    message = error_of(path)

    assert str(path) in message
    assert "modell: unknown key" in message


def test_misspelled_nested_key_is_named_with_its_section(write_config):
    message = error_of(write_config({"gates.min_scor": 0.8}))

    assert "gates.min_scor: unknown key" in message


def test_wrong_type_names_the_key_and_the_value_given(write_config):
    message = error_of(write_config({"validation.min_rows": "many"}))

    assert "validation.min_rows" in message
    assert "'many'" in message


def test_every_problem_is_reported_at_once(write_config):
    message = error_of(write_config({"validation.min_rows": "many", "colour": "blue", "gates": DELETE}))

    assert "3 problem(s)" in message
    assert "validation.min_rows" in message and "colour: unknown key" in message and "gates" in message


def test_missing_required_section_is_named(write_config):
    message = error_of(write_config({"alerts": DELETE}))

    assert "alerts: Field required" in message


def test_estimator_that_does_not_fit_the_task_is_refused_with_the_choices(write_config):
    message = error_of(write_config({"model.estimator": "ridge"}))

    assert "model.estimator 'ridge' is not available for task 'classification'" in message
    assert "1 problem(s)" in message  # the task's choices are checked once, not again as a literal
    assert "hist_gradient_boosting" in message and "logistic_regression" in message


def test_an_estimator_of_the_task_is_accepted_even_if_another_task_has_it_too(write_config):
    config = load_config(write_config({"model.estimator": "random_forest"}))

    assert (config.task, config.model.estimator) == ("classification", "random_forest")


def test_metric_that_does_not_fit_the_task_is_refused_with_the_choices(write_config):
    message = error_of(write_config({"metric": "rmse"}))

    assert "metric 'rmse' does not fit task 'classification'" in message
    assert "roc_auc" in message


def test_unknown_metric_is_refused(write_config):
    message = error_of(write_config({"metric": "auc"}))

    assert "metric 'auc' does not fit task 'classification'" in message


def test_unknown_task_is_refused_naming_the_choices(write_config):
    message = error_of(write_config({"task": "ranking"}))

    assert "  - task: Input should be 'classification' or 'regression' (got 'ranking')" in message


def test_missing_task_is_named(write_config):
    assert "  - task: Field required" in error_of(write_config({"task": DELETE}))


def test_name_must_match_the_file_name(write_config):
    path = write_config(file_name="credit_v2")

    message = error_of(path)

    assert "name 'credit_default' must match the file name 'credit_v2'" in message
    assert str(path) in message


def test_name_that_is_not_an_identifier_is_refused(write_config):
    message = error_of(write_config({"name": "Credit Default"}))

    assert "name:" in message and "'Credit Default'" in message


def test_invalid_yaml_is_refused_with_the_line(tmp_path: Path):
    path = tmp_path / "credit_default.yaml"
    path.write_text("name: credit_default\nfeatures: [unclosed\n")

    message = error_of(path)

    assert f"{path}: not valid YAML" in message
    assert "line" in message


def test_missing_file_is_reported_with_its_path(tmp_path: Path):
    path = tmp_path / "nowhere.yaml"

    assert error_of(path) == f"{path}: pipeline config not found"


@pytest.mark.parametrize(("text", "kind"), [("", "NoneType"), ("- a\n- b\n", "list"), ("just text", "str")])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, kind: str):
    path = tmp_path / "credit_default.yaml"
    path.write_text(text)

    assert f"must be a mapping of keys, got {kind}" in error_of(path)


def test_source_path_without_a_date_placeholder_is_refused(write_config):
    message = error_of(write_config({"source.path": "landing/credit/latest.csv"}))

    assert "source.path" in message and "{ds}" in message


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ({"name": "region", "type": "categorical", "min": 0}, "feature 'region': min/max apply to numeric"),
        ({"name": "age", "type": "numeric", "allowed": ["1"]}, "feature 'age': 'allowed' applies to categorical"),
        ({"name": "age", "type": "numeric", "min": 90, "max": 18}, "feature 'age': min 90.0 is above max 18.0"),
        ({"name": "age", "type": "numeric", "max_missing": 1.5}, "max_missing: Input should be less than or equal"),
        ({"name": "age", "type": "text"},
         "type: Input should be 'numeric', 'categorical', 'boolean' or 'datetime' (got 'text')"),
    ],
)
def test_feature_rules_that_contradict_the_feature_type_are_refused(write_config, feature: dict, expected: str):
    assert expected in error_of(write_config({"features": [feature]}))


def test_one_bad_feature_is_one_problem_located_by_its_index(write_config):
    message = error_of(write_config({"features": [{"name": "age", "type": "numeric"}, {"name": "x", "type": "text"}]}))

    assert "1 problem(s)" in message
    assert ("  - features.1.type: Input should be 'numeric', 'categorical', 'boolean' or 'datetime' (got 'text')"
            in message)
    assert "infer" not in message


def test_a_feature_declared_twice_is_refused(write_config):
    features = [{"name": "age", "type": "numeric"}, {"name": "age", "type": "numeric"}]

    assert "features declared twice: ['age']" in error_of(write_config({"features": features}))


def test_the_target_cannot_also_be_a_feature(write_config):
    features = [{"name": "default", "type": "numeric"}]

    assert "['default'] are declared both as features and as target/id" in error_of(
        write_config({"features": features})
    )


def test_out_of_range_settings_are_refused(write_config):
    message = error_of(write_config({"model.test_size": 1.5, "drift.bins": 1, "airflow.task_timeout_minutes": 0}))

    assert "3 problem(s)" in message
    assert "model.test_size" in message and "drift.bins" in message
    assert "airflow.task_timeout_minutes: Input should be greater than 0 (got 0)" in message


def test_airflow_settings_default_when_left_out(write_config):
    config = load_config(write_config({"airflow": DELETE}))

    assert (config.airflow.retries, config.airflow.task_timeout_minutes, config.airflow.schedule) == (2, 60, "@daily")


def test_source_path_with_an_unknown_placeholder_is_refused_when_the_config_loads(write_config):
    path = write_config({"source.path": "landing/{ds}/{hour}.csv"})

    try:
        load_config(path)
    except ConfigError as error:
        assert "source.path" in str(error)
    else:
        raise AssertionError("a source path with {hour} was accepted")


def test_a_file_that_is_not_text_is_refused_as_a_config_error(tmp_path: Path):
    path = tmp_path / "credit_default.yaml"
    path.write_bytes(b"\xff\xfename: credit_default\n")

    assert str(path) in error_of(path)


def test_get_pipeline_reads_from_another_directory(tmp_path: Path, write_config):
    write_config()

    assert get_pipeline("credit_default", directory=tmp_path).name == "credit_default"
    assert config_module.config_paths(tmp_path) == [tmp_path / "credit_default.yaml"]


def test_a_config_is_the_class_of_its_task_and_still_a_pipeline_config():
    credit, house = get_pipeline("credit_default"), get_pipeline("house_prices")

    assert isinstance(credit, ClassificationPipeline) and isinstance(house, RegressionPipeline)
    assert isinstance(credit, PipelineConfig) and isinstance(house, PipelineConfig)


def test_model_validate_of_pipeline_config_picks_the_class_by_task(credit_raw: dict):
    config = PipelineConfig.model_validate(credit_raw)

    assert type(config) is ClassificationPipeline
    with pytest.raises(ValidationError, match="not available for task 'classification'"):
        PipelineConfig.model_validate({**credit_raw, "model": {**credit_raw["model"], "estimator": "ridge"}})


def test_model_copy_keeps_the_task_class_and_its_properties():
    config = get_pipeline("house_prices")

    tuned = config.model_copy(update={"metric": "r2"})

    assert type(tuned) is RegressionPipeline
    assert (tuned.greater_is_better, tuned.dag_id) == (True, "ml_training__house_prices")


def test_model_validate_accepts_a_config_round_tripped_through_json():
    config = get_pipeline("house_prices")

    again = PipelineConfig.model_validate(config.model_dump(mode="json"))

    assert again == config
    assert again.config_hash() == config.config_hash()


# -- drift and validation settings ----------------------------------------------------------


def test_drift_thresholds_given_in_the_file_are_merged_over_the_defaults(write_config):
    config = load_config(write_config({"drift.thresholds": {"wasserstein": {"drifted": 0.2, "severe": 0.6}}}))

    assert (config.drift.levels("wasserstein").drifted, config.drift.levels("wasserstein").severe) == (0.2, 0.6)
    assert config.drift.levels("psi").drifted == 0.1  # a default kept
    assert set(config.drift.thresholds) == {"wasserstein", "psi", "jensen_shannon", "ks", "unseen_share",
                                            "missing_rate_change"}


def test_drift_settings_default_when_left_out(write_config):
    drift = load_config(write_config({"drift": DELETE})).drift

    assert (drift.numeric_statistic, drift.categorical_statistic) == ("wasserstein", "jensen_shannon")
    assert (drift.min_batch_rows, drift.drift_share, drift.critical_features) == (200, 0.5, [])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"drift.thresholds": {"wasserstien": {"drifted": 0.1, "severe": 0.5}}},
         "unknown drift statistic(s) ['wasserstien']"),
        ({"drift.thresholds": {"psi": {"drifted": 0.3, "severe": 0.2}}},
         "severe (0.2) must not be below drifted (0.3)"),
        ({"drift.numeric_statistic": "unseen_share"}, "drift.numeric_statistic"),
        ({"drift.drift_share": 0}, "drift.drift_share: Input should be greater than 0"),
        ({"drift.critical_features": ["income", "salary"]}, "drift.critical_features ['salary'] are not declared"),
        ({"drift.psi_threshold": 0.2}, "drift.psi_threshold: unknown key"),
        ({"validation.max_out_of_range_share": 1.5}, "validation.max_out_of_range_share"),
        ({"validation.range_tolerance": -0.1}, "validation.range_tolerance"),
    ],
    ids=["unknown statistic", "severe below drifted", "statistic not for numeric", "zero drift share",
         "undeclared critical feature", "the removed psi_threshold", "share above 1", "negative tolerance"],
)
def test_bad_drift_and_validation_settings_are_refused_naming_the_key(write_config, changes: dict, expected: str):
    assert expected in error_of(write_config(changes))


def test_validation_tolerances_default_to_one_percent_out_of_range_and_ten_percent_past_training(write_config):
    rules = load_config(write_config({"validation": {"min_rows": 500}})).validation

    assert (rules.max_out_of_range_share, rules.range_tolerance) == (0.01, 0.1)


def test_a_config_without_a_validation_section_takes_validations_default_as_its_drift_minimum(write_config):
    config = load_config(write_config({"validation": DELETE, "drift.min_batch_rows": DELETE}))

    assert config.drift.min_batch_rows == config.validation.min_rows == 100
