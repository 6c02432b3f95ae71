"""Batch validation: a clean batch passes typed, a broken one fails naming every broken rule at once,
a few odd values (outside a declared range, beyond the training range, unseen levels) only warn, and
quarantine keeps a copy with the reasons while the landing file stays where it is."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.drift import ReferenceProfile
from include.ml.errors import BatchValidationError, InputDataError
from include.ml.extract import read_batch
from include.ml.validate import build_schema, check_batch, infer, infer_features, quarantine, validate_frame


def failures_of(frame: pd.DataFrame, config: PipelineConfig, features=None, reference=None) -> BatchValidationError:
    with pytest.raises(BatchValidationError) as caught:
        check_batch(frame, config, config.features if features is None else features, reference)
    return caught.value


def with_rules(config: PipelineConfig, **rules) -> PipelineConfig:
    """``config`` with some ``validation`` settings changed."""
    return config.model_copy(update={"validation": config.validation.model_copy(update=rules)})


# -- a clean batch --------------------------------------------------------------------------


def test_a_clean_batch_passes_with_numeric_features_as_floats(credit_frame, credit_config):
    clean = validate_frame(credit_frame, credit_config, credit_config.features)

    assert len(clean) == len(credit_frame)
    numeric = [f.name for f in credit_config.features if f.type == "numeric"]
    assert (clean[numeric].dtypes == "float64").all()
    assert clean["late_payments_12m"].tolist() == credit_frame["late_payments_12m"].astype(float).tolist()
    assert set(clean["home_ownership"].dropna()) <= {"rent", "mortgage", "own"}


@pytest.mark.parametrize("broken_rows", [1, 40], ids=["a warning", "an error"])
def test_validation_does_not_change_the_batch_it_was_given(credit_frame, credit_config, broken_rows: int):
    credit_frame.loc[: broken_rows - 1, "utilization"] = 7.0
    before = credit_frame.copy()
    outcome = pytest.raises(BatchValidationError) if broken_rows > 8 else contextlib.nullcontext()

    with outcome:
        check_batch(credit_frame, credit_config, credit_config.features)

    pd.testing.assert_frame_equal(credit_frame, before)


def test_a_regression_batch_passes_with_inferred_features(house_frame, house_config):
    features = infer_features(house_frame, house_config)

    clean = validate_frame(house_frame, house_config, features)

    assert clean["price"].dtype == "float64"
    assert len(clean) == len(house_frame)


def test_text_levels_read_from_csv_pass_the_allowed_check(tmp_path: Path, credit_frame, credit_config):
    path = tmp_path / "batch.csv"
    credit_frame.to_csv(path, index=False)

    clean = validate_frame(read_batch(path), credit_config, credit_config.features)

    assert len(clean) == len(credit_frame)


# -- broken batches: one rule at a time -----------------------------------------------------


def _set(column: str, rows, value):
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str) and pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = value
        return frame

    return mutate


CREDIT_CASES = {
    "missing feature column": (
        lambda f: f.drop(columns=["age"]),
        "age", "column 'age': is missing from the batch",
    ),
    "missing target column": (
        lambda f: f.drop(columns=["default"]),
        "default", "column 'default': is missing from the batch",
    ),
    "missing id column": (
        lambda f: f.drop(columns=["customer_id"]),
        "customer_id", "column 'customer_id': is missing from the batch",
    ),
    "text in a numeric column": (
        _set("income", [3, 9], "n/a"),
        "income", "column 'income': 2 values are not numbers (first rows: 3, 9; values: 'n/a', 'n/a')",
    ),
    "values below minimum (over 1% of rows)": (
        _set("utilization", range(5, 25), -0.5),
        "utilization", "column 'utilization': 20 values below minimum 0 (first rows: 5, 6, 7, 8, 9; "
                       "values: -0.5, -0.5, -0.5) [2.50% of rows; the limit is 1.00%]",
    ),
    "values above maximum (over 1% of rows)": (
        _set("age", range(100), 150.0),
        "age", "column 'age': 100 values above maximum 120 (first rows: 0, 1, 2, 3, 4; "
               "values: 150.0, 150.0, 150.0) [12.50% of rows; the limit is 1.00%]",
    ),
    "infinity": (
        _set("months_employed", [11], np.inf),
        "months_employed", "column 'months_employed': 1 values are infinite (first rows: 11",
    ),
    "too many missing values (feature limit)": (
        _set("education", range(0, 800, 2), None),
        "education", "column 'education': has more than 30% missing values (",
    ),
    "too many missing values (default limit)": (
        _set("region", range(0, 800, 4), None),
        "region", "column 'region': has more than 10% missing values (25.0%)",
    ),
    "categories outside allowed (over 1% of rows)": (
        _set("home_ownership", range(2, 802, 40), "castle"),
        "home_ownership",
        "column 'home_ownership': 20 values not among allowed levels ['rent', 'mortgage', 'own'] "
        "(first rows: 2, 42, 82, 122, 162; values: 'castle', 'castle', 'castle') [2.50% of rows; the limit is 1.00%]",
    ),
    "single-class target": (
        lambda f: f.assign(default=0),
        "default", "column 'default': has a single class",
    ),
    "rare class below its minimum share": (
        lambda f: f.assign(default=[1] + [0] * (len(f) - 1)),
        "default", "column 'default': class '1' has 1 of 800 rows (0.12%), below validation.min_class_share 2.00%",
    ),
    "fewer rows than min_rows": (
        lambda f: f.head(120),
        None, "batch: has fewer than 500 rows (has 120)",
    ),
}


@pytest.mark.parametrize("case", CREDIT_CASES)
def test_a_broken_batch_fails_naming_the_column_and_the_problem(case: str, credit_frame, credit_config):
    mutate, column, expected = CREDIT_CASES[case]

    error = failures_of(mutate(credit_frame), credit_config)

    assert expected in str(error)
    assert [(f["column"], f["severity"]) for f in error.failures if f["message"].startswith(expected)] == [
        (column, "error")]
    assert isinstance(error, InputDataError)  # fails at once, no retries


def test_three_classes_pass_validation(credit_frame, credit_config):
    labels = np.array(["low", "mid", "high"])[np.arange(len(credit_frame)) % 3]

    clean = validate_frame(credit_frame.assign(default=labels), credit_config, credit_config.features)

    assert sorted(clean["default"].unique()) == ["high", "low", "mid"]


def test_min_class_share_holds_per_class_and_names_the_rare_one(credit_frame, credit_config):
    labels = np.where(np.arange(len(credit_frame)) % 2 == 0, "a", "b").astype(object)
    labels[:8] = "rare"  # 8 of 800 rows: 1%, below the config's 2%

    error = failures_of(credit_frame.assign(default=labels), credit_config)

    assert [f["class"] for f in error.failures] == ["rare"]
    assert "class 'rare' has 8 of 800 rows (1.00%), below validation.min_class_share 2.00%" in str(error)


def test_rows_without_a_target_are_dropped_and_counted_by_default(credit_frame, credit_config):
    credit_frame.loc[[4, 9], "default"] = None

    result = check_batch(credit_frame, credit_config, credit_config.features)

    assert result.unlabelled_rows == 2
    assert len(result.frame) == len(credit_frame) - 2 and 4 not in result.frame.index
    assert result.warnings == []  # 0.25% of rows: below max_unlabelled_share


def test_many_rows_without_a_target_warn_above_max_unlabelled_share(credit_frame, credit_config):
    credit_frame.loc[range(0, 800, 5), "default"] = None  # 20%

    result = check_batch(credit_frame, credit_config, credit_config.features)

    (warning,) = result.warnings
    assert result.unlabelled_rows == 160
    assert warning["message"].startswith("column 'default': 160 rows (20.0%) have no target value")
    assert "validation.max_unlabelled_share 10.0%" in warning["message"]


def test_rows_without_a_target_fail_the_batch_under_the_error_policy(credit_frame, credit_config):
    credit_frame.loc[[4], "default"] = None

    error = failures_of(credit_frame, with_rules(credit_config, unlabelled="error"))

    assert "column 'default': 1 rows (0.1%) have no target value (first rows: 4); validation.unlabelled is " \
           "'error'" in str(error)
    assert [f["severity"] for f in error.failures] == ["error"]


def test_failures_carry_the_offending_rows_their_count_and_share(credit_frame, credit_config):
    credit_frame.loc[[10, 20, 30], "utilization"] = 2.0

    (failure,) = check_batch(credit_frame, credit_config, credit_config.features).warnings

    assert failure["column"] == "utilization"
    assert failure["rule"] == "above maximum 1"
    assert failure["count"] == 3
    assert failure["rows"] == [10, 20, 30]
    assert failure["share"] == pytest.approx(3 / 800)
    assert failure["severity"] == "warning"


def test_every_error_and_warning_is_collected_in_one_pass_errors_first(credit_frame, credit_config):
    broken = credit_frame.drop(columns=["age"])
    broken["income"] = broken["income"].astype(object)
    broken.loc[3, "income"] = "abc"
    broken.loc[5, "utilization"] = 1.5
    broken.loc[6, "months_employed"] = np.inf
    broken.loc[8, "home_ownership"] = "castle"
    broken.loc[: len(broken) // 2, "education"] = None

    error = failures_of(broken, credit_config)

    assert [(f["severity"], f["column"]) for f in error.failures] == [
        ("error", "income"), ("error", "age"), ("error", "months_employed"), ("error", "education"),
        ("warning", "utilization"), ("warning", "home_ownership")]
    message = str(error)
    assert message.startswith("batch failed validation for pipeline 'credit_default' (4 problem(s)):")
    errors, warnings = message.split("\n  warnings:\n")
    assert errors.count("\n  - ") == 4
    assert warnings.count("  - ") == 2 and "column 'utilization': 1 values above maximum 1" in warnings


def test_a_regression_target_must_be_numbers(house_frame, house_config):
    features = infer_features(house_frame, house_config)
    house_frame["price"] = house_frame["price"].astype(object)
    house_frame.loc[[1, 2], "price"] = "call us"

    error = failures_of(house_frame, house_config, features)

    assert "column 'price': 2 values are not numbers (first rows: 1, 2; values: 'call us', 'call us')" in str(error)


def test_an_infinite_regression_target_is_refused(house_frame, house_config):
    features = infer_features(house_frame, house_config)
    house_frame.loc[0, "price"] = np.inf

    assert "column 'price': 1 values are infinite" in str(failures_of(house_frame, house_config, features))


def test_a_word_in_a_numeric_csv_column_is_reported_not_silently_dropped(tmp_path: Path, credit_frame, credit_config):
    credit_frame["age"] = credit_frame["age"].astype(object)
    credit_frame.loc[42, "age"] = "forty"
    path = tmp_path / "batch.csv"
    credit_frame.to_csv(path, index=False)

    error = failures_of(read_batch(path), credit_config)

    assert "column 'age': 1 values are not numbers (first rows: 42; values: 'forty')" in str(error)


def test_integer_category_codes_with_a_missing_value_match_their_allowed_levels(
    tmp_path: Path, credit_frame, credit_config
):
    features = [*credit_config.features, FeatureSpec(name="segment", type="categorical", allowed=["1", "2", "3"])]
    credit_frame["segment"] = [1 + i % 3 for i in range(len(credit_frame))]
    credit_frame.loc[0, "segment"] = None  # pandas now reads the column as float64
    path = tmp_path / "batch.csv"
    credit_frame.to_csv(path, index=False)

    clean = validate_frame(read_batch(path), credit_config, features)

    assert set(clean["segment"].dropna()) == {"1", "2", "3"}


# -- severities: what only warns ------------------------------------------------------------


@pytest.fixture
def training_profile(credit_frame, credit_config) -> dict:
    """The stored reference profile (as a dict) of a model trained on ``credit_frame``: income 9,100 to
    179,900, months_employed 1 to 420, channels online, branch and broker."""
    return ReferenceProfile().fit(credit_frame, credit_config.features).to_dict()


def test_a_clean_batch_passes_without_warnings(credit_frame, credit_config, training_profile):
    result = check_batch(credit_frame, credit_config, credit_config.features, training_profile)

    assert result.warnings == []
    assert len(result.frame) == len(credit_frame)


def test_a_few_values_outside_a_declared_range_warn_and_the_batch_passes(credit_frame, credit_config):
    credit_frame.loc[[5, 6], "age"] = 150.0

    result = check_batch(credit_frame, credit_config, credit_config.features)

    assert [w["message"] for w in result.warnings] == [
        "column 'age': 2 values above maximum 120 (first rows: 5, 6; values: 150.0, 150.0) "
        "[0.25% of rows; the limit is 1.00%]"]
    assert result.warnings[0]["severity"] == "warning"
    assert len(result.frame) == len(credit_frame)


def test_rows_repeating_an_earlier_row_exactly_warn_and_a_near_copy_does_not(credit_frame, credit_config):
    repeated = pd.concat([credit_frame, credit_frame.iloc[[3, 10]]], ignore_index=True)
    near = credit_frame.iloc[[20]].assign(age=credit_frame.loc[20, "age"] + 1)
    batch = pd.concat([repeated, near], ignore_index=True)

    result = check_batch(batch, credit_config, credit_config.features)

    [warning] = [w for w in result.warnings if w["rule"] == "repeat an earlier row exactly"]
    last = len(credit_frame)
    assert (warning["count"], warning["rows"]) == (2, [last, last + 1])
    assert warning["message"].startswith(f"batch: 2 rows repeat an earlier row exactly (first rows: {last}, {last + 1}")


@pytest.mark.parametrize(("rows", "severity"), [(8, "warning"), (9, "error")], ids=["1.00%", "1.12%"])
def test_out_of_range_values_are_an_error_only_above_max_out_of_range_share(
    credit_frame, credit_config, rows: int, severity: str
):
    credit_frame.loc[: rows - 1, "utilization"] = 1.5

    try:
        failures = check_batch(credit_frame, credit_config, credit_config.features).warnings
    except BatchValidationError as error:
        failures = error.failures

    assert [(f["column"], f["severity"]) for f in failures] == [("utilization", severity)]


def test_max_out_of_range_share_zero_makes_a_single_value_an_error(credit_frame, credit_config):
    credit_frame.loc[5, "utilization"] = 1.5

    error = failures_of(credit_frame, with_rules(credit_config, max_out_of_range_share=0.0))

    assert "column 'utilization': 1 values above maximum 1 (first rows: 5; values: 1.5) " \
           "[0.12% of rows; the limit is 0.00%]" in str(error)


def test_a_few_levels_outside_the_allowed_list_warn(credit_frame, credit_config):
    credit_frame.loc[[2, 3], "home_ownership"] = "castle"

    (warning,) = check_batch(credit_frame, credit_config, credit_config.features).warnings

    assert warning["column"] == "home_ownership"
    assert warning["message"].endswith("[0.25% of rows; the limit is 1.00%]")


def test_levels_training_never_saw_warn_however_many(credit_frame, credit_config, training_profile):
    credit_frame.loc[: 399, "channel"] = "bnpl_partner"

    (warning,) = check_batch(credit_frame, credit_config, credit_config.features, training_profile).warnings

    assert warning["severity"] == "warning"
    assert warning["message"] == ("column 'channel': 400 values are levels training never saw (first rows: "
                                  "0, 1, 2, 3, 4; values: 'bnpl_partner', 'bnpl_partner', 'bnpl_partner')")


def test_values_beyond_the_training_range_and_its_tolerance_warn(credit_frame, credit_config, training_profile):
    credit_frame.loc[5, "income"] = 185_000.0  # above the training max 179,900, within the 10% tolerance
    credit_frame.loc[6, "income"] = 250_000.0  # beyond the tolerance (17,080)

    (warning,) = check_batch(credit_frame, credit_config, credit_config.features, training_profile).warnings

    assert warning["message"] == ("column 'income': 1 values above the training range (max 179900, tolerance "
                                  "17080) (first rows: 6; values: 250000.0)")


def test_range_tolerance_sets_how_far_past_the_training_range_a_value_may_go(
    credit_frame, credit_config, training_profile
):
    credit_frame.loc[5, "months_employed"] = 0.5  # allowed (min 0), below the training min 1

    lenient = check_batch(credit_frame, credit_config, credit_config.features, training_profile)
    exact = check_batch(credit_frame, with_rules(credit_config, range_tolerance=0.0), credit_config.features,
                        training_profile)

    assert lenient.warnings == []
    assert [w["message"] for w in exact.warnings] == [
        "column 'months_employed': 1 values below the training range (min 1, tolerance 0) "
        "(first rows: 5; values: 0.5)"]


def test_warnings_are_listed_after_the_errors_of_a_failing_batch(credit_frame, credit_config, training_profile):
    credit_frame.loc[: 99, "age"] = 15.0  # 12.5% below the minimum 18: an error (within the training range)
    credit_frame.loc[3, "channel"] = "bnpl_partner"

    error = failures_of(credit_frame, credit_config, reference=training_profile)

    assert [(f["column"], f["severity"]) for f in error.failures] == [("age", "error"), ("channel", "warning")]
    assert str(error).endswith("\n  warnings:\n  - column 'channel': 1 values are levels training never saw "
                               "(first rows: 3; values: 'bnpl_partner')")


def test_without_a_reference_profile_nothing_is_checked_against_training(credit_frame, credit_config):
    credit_frame.loc[3, "channel"] = "bnpl_partner"
    credit_frame.loc[4, "income"] = 10_000_000.0

    assert check_batch(credit_frame, credit_config, credit_config.features).warnings == []


def test_the_schema_policy_says_which_checks_error_warn_or_depend_on_the_share(credit_config, training_profile):
    schema, policy = build_schema(credit_config, credit_config.features, training_profile)

    assert "income" in schema.columns
    assert policy["below minimum 18"] == policy["not among allowed levels ['rent', 'mortgage', 'own']"] == 0.01
    assert policy["are levels training never saw"] == "warning"
    assert policy["has fewer than 500 rows"] == policy["are infinite"] == "error"


def test_validate_frame_returns_only_the_clean_frame(credit_frame, credit_config):
    credit_frame.loc[5, "age"] = 150.0

    clean = validate_frame(credit_frame, credit_config, credit_config.features)

    assert isinstance(clean, pd.DataFrame)
    assert clean.loc[5, "age"] == 150.0


# -- inferring features ---------------------------------------------------------------------


def test_inferred_features_are_numeric_by_dtype_and_skip_target_and_ids(house_frame, house_config):
    features = infer_features(house_frame, house_config)

    kinds = {f.name: f.type for f in features}
    assert "price" not in kinds and "sale_id" not in kinds
    assert kinds["area_m2"] == "numeric"
    assert kinds["neighbourhood"] == "categorical"
    assert len(kinds) == 10


@pytest.mark.parametrize(("dates", "date_format"), [
    (["2026-01-31", "2026-02-01T08:30:00", "2025-12-24 23:59"], None),
    (["31/01/2026", "01/02/2026", "24/12/2025"], "%d/%m/%Y"),
    (["31.01.2026 08:30", "01.02.2026 09:00", "24.12.2025 10:15"], "%d.%m.%Y %H:%M"),
], ids=["iso", "day-first", "dotted-with-time"])
def test_text_dates_are_inferred_as_datetime_with_the_format_that_reads_them(house_frame, house_config, dates,
                                                                            date_format):
    frame = house_frame.assign(listed=[dates[i % 3] for i in range(len(house_frame))])

    spec = next(f for f in infer_features(frame, house_config) if f.name == "listed")

    assert (spec.type, spec.format) == ("datetime", date_format)


def test_an_all_different_measurement_is_numeric_and_a_column_named_paid_is_not_an_id(house_frame, house_config):
    rng = np.random.default_rng(0)
    frame = house_frame.assign(paid=rng.permutation(10**6)[:len(house_frame)], weight=rng.normal(size=len(house_frame)))

    kinds = {f.name: f.type for f in infer_features(frame, house_config)}

    assert kinds["paid"] == "numeric" and kinds["weight"] == "numeric"


def test_inference_types_win_and_notes_name_columns_the_batch_lacks(house_frame, house_config):
    config = house_config.model_copy(update={"inference": house_config.inference.model_copy(
        update={"types": {"rooms": "categorical", "ghost": "numeric"}})})

    inferred = infer(house_frame, config)

    assert {f.name: f.type for f in inferred.features}["rooms"] == "categorical"
    assert "inference names column(s) ['ghost'] the batch does not have" in inferred.notes


# -- quarantine -----------------------------------------------------------------------------


def test_quarantine_copies_the_batch_with_its_reasons_and_leaves_the_source(tmp_path: Path):
    source = tmp_path / "landing" / "2026-01-01.csv"
    source.parent.mkdir()
    source.write_text("a,b\n1,2\n")
    failures = [{"column": "a", "rule": "below minimum 5", "count": 1, "rows": [0], "message": "column 'a': ..."}]

    destination = quarantine(source, tmp_path / "quarantine" / "2026-01-01__run", failures, {"run_id": "run"})

    assert source.read_text() == "a,b\n1,2\n"
    assert (destination / "2026-01-01.csv").read_text() == "a,b\n1,2\n"
    reasons = json.loads((destination / "reasons.json").read_text())
    assert reasons["source"] == str(source)
    assert reasons["run_id"] == "run"
    assert reasons["failures"] == failures
    assert "quarantined_at" in reasons


def test_quarantining_again_replaces_the_reasons(tmp_path: Path):
    source = tmp_path / "batch.csv"
    source.write_text("a\n1\n")
    target = tmp_path / "q"

    quarantine(source, target, [{"message": "first"}], {})
    quarantine(source, target, [{"message": "second"}], {})

    assert json.loads((target / "reasons.json").read_text())["failures"] == [{"message": "second"}]
