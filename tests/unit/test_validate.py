"""Batch validation: a clean batch passes typed, a broken one fails naming every broken rule at once,
and quarantine keeps a copy with the reasons while the landing file stays where it is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import BatchValidationError, InputDataError
from include.ml.extract import read_batch
from include.ml.validate import infer_features, quarantine, validate_frame


def failures_of(frame: pd.DataFrame, config: PipelineConfig, features=None) -> BatchValidationError:
    with pytest.raises(BatchValidationError) as caught:
        validate_frame(frame, config, config.features if features is None else features)
    return caught.value


# -- a clean batch --------------------------------------------------------------------------


def test_a_clean_batch_passes_with_numeric_features_as_floats(credit_frame, credit_config):
    clean = validate_frame(credit_frame, credit_config, credit_config.features)

    assert len(clean) == len(credit_frame)
    numeric = [f.name for f in credit_config.features if f.type == "numeric"]
    assert (clean[numeric].dtypes == "float64").all()
    assert clean["late_payments_12m"].tolist() == credit_frame["late_payments_12m"].astype(float).tolist()
    assert set(clean["home_ownership"].dropna()) <= {"rent", "mortgage", "own"}


def test_validation_does_not_change_the_batch_it_was_given(credit_frame, credit_config):
    before = credit_frame.copy()
    credit_frame.loc[3, "utilization"] = 7.0

    with pytest.raises(BatchValidationError):
        validate_frame(credit_frame, credit_config, credit_config.features)

    before.loc[3, "utilization"] = 7.0
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
    "value below minimum": (
        _set("utilization", [5], -0.5),
        "utilization", "column 'utilization': 1 values below minimum 0 (first rows: 5; values: -0.5)",
    ),
    "value above maximum": (
        _set("age", [7, 8], 150.0),
        "age", "column 'age': 2 values above maximum 120 (first rows: 7, 8; values: 150.0, 150.0)",
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
    "category outside allowed": (
        _set("home_ownership", [2], "castle"),
        "home_ownership",
        "column 'home_ownership': 1 values not among allowed levels ['rent', 'mortgage', 'own'] "
        "(first rows: 2; values: 'castle')",
    ),
    "single-class target": (
        lambda f: f.assign(default=0),
        "default", "column 'default': has a single class",
    ),
    "rare class below its minimum share": (
        lambda f: f.assign(default=[1] + [0] * (len(f) - 1)),
        "default", "column 'default': has a class below 2% of rows",
    ),
    "missing target values": (
        _set("default", [4], None),
        "default", "column 'default': 1 values are missing (target values are required) (first rows: 4",
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
    assert any(f["column"] == column and f["message"] in str(error) for f in error.failures)
    assert isinstance(error, InputDataError)  # fails at once, no retries


def test_failures_carry_the_offending_rows_and_their_count(credit_frame, credit_config):
    credit_frame.loc[[10, 20, 30], "utilization"] = 2.0

    (failure,) = failures_of(credit_frame, credit_config).failures

    assert failure["column"] == "utilization"
    assert failure["rule"] == "above maximum 1"
    assert failure["count"] == 3
    assert failure["rows"] == [10, 20, 30]


def test_every_problem_is_collected_in_one_pass(credit_frame, credit_config):
    broken = credit_frame.drop(columns=["age"])
    broken["income"] = broken["income"].astype(object)
    broken.loc[3, "income"] = "abc"
    broken.loc[5, "utilization"] = 1.5
    broken.loc[6, "months_employed"] = np.inf
    broken.loc[8, "home_ownership"] = "castle"
    broken.loc[: len(broken) // 2, "education"] = None

    error = failures_of(broken, credit_config)

    columns = sorted(f["column"] for f in error.failures)
    assert columns == ["age", "education", "home_ownership", "income", "months_employed", "utilization"]
    assert str(error).startswith("batch failed validation for pipeline 'credit_default' (6 problem(s)):")
    assert str(error).count("\n  - ") == 6


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


# -- inferring features ---------------------------------------------------------------------


def test_inferred_features_are_numeric_by_dtype_and_skip_target_and_ids(house_frame, house_config):
    features = infer_features(house_frame, house_config)

    kinds = {f.name: f.type for f in features}
    assert "price" not in kinds and "sale_id" not in kinds
    assert kinds["area_m2"] == "numeric"
    assert kinds["neighbourhood"] == "categorical"
    assert len(kinds) == 10


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
