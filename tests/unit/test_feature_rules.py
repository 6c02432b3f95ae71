"""Feature rules, written once: the same rule breaks on the same rows whether a batch is validated
(pandera) or scored row by row, and a raw value becomes the same category level everywhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from include.ml.config import FeatureSpec, ValidationRules
from include.ml.errors import BatchValidationError
from include.ml.feature_rules import (
    ERROR,
    WARNING,
    FeatureRules,
    as_booleans,
    as_datetimes,
    level_label,
    level_labels,
)
from include.ml.validate import check_batch

SPECS = [
    FeatureSpec(name="age", type="numeric", min=18, max=100),
    FeatureSpec(name="plan", type="categorical", allowed=["1", "2", "gold"]),
]


@pytest.mark.parametrize(("value", "label"), [(3.0, "3"), (3, "3"), (np.float32(7.0), "7"), (2.5, "2.5"),
                                              ("gold", "gold"), (True, "True")])
def test_a_whole_number_float_is_the_same_level_as_the_integer(value, label):
    assert level_label(value) == label


def test_levels_of_a_column_are_text_with_missing_kept_missing():
    labels = level_labels(pd.Series([1.0, np.nan, 2.0, 1.0]))
    assert labels.iloc[[0, 2, 3]].tolist() == ["1", "2", "1"] and pd.isna(labels.iloc[1])
    assert level_labels(pd.Series([2.0, "2", "x"], dtype=object)).tolist() == ["2", "2", "x"]


def test_each_scored_row_gets_its_first_broken_rule_as_reason():
    chunk = pd.DataFrame({"age": [30, "old", 12, np.inf, None, 101], "plan": [1.0, "gold", 2, "silver", "x", None]})

    clean, problem = FeatureRules(SPECS).row_problems(chunk)

    assert problem.tolist() == ["", "age: not a number", "age: below minimum 18", "age: infinite",
                                "plan: not an allowed level", "age: above maximum 100"]
    assert clean["age"].dtype == "float64" and clean["plan"].iloc[0] == "1"


def test_validation_and_scoring_flag_the_same_rows_for_the_same_rule(credit_config):
    config = credit_config.model_copy(update={"target": "y", "id_columns": [], "validation": ValidationRules(
        min_rows=1, max_out_of_range_share=0.0)})
    batch = pd.DataFrame({"age": [30, 40, 12, 50, 101] * 4, "plan": ["1", "2", "gold", "silver", "1"] * 4,
                          "y": [0, 1] * 10})

    with pytest.raises(BatchValidationError) as raised:
        check_batch(batch, config, SPECS)
    _clean, problem = FeatureRules(SPECS).row_problems(batch)

    by_message = {f["message"].split(" (first rows")[0]: f["rows"] for f in raised.value.failures}

    def rejected(reason: str) -> list[int]:
        return problem.index[problem == reason].tolist()

    assert by_message["column 'age': 4 values below minimum 18"] == rejected("age: below minimum 18") == [2, 7, 12, 17]
    assert by_message["column 'age': 4 values above maximum 100"] == rejected("age: above maximum 100")
    assert by_message["column 'plan': 4 values not among allowed levels ['1', '2', 'gold']"] == rejected(
        "plan: not an allowed level")


def test_rule_severities_follow_the_validation_settings_and_the_reference():
    settings = ValidationRules(max_out_of_range_share=0.05, max_missing=0.2)
    reference = {"numeric": {"age": {"quantiles": [20.0, 60.0]}}, "categorical": {"plan": {"shares": {"1": 1.0}}}}

    rules = FeatureRules(SPECS, settings, reference).rules

    assert {r.message: r.severity for r in rules["age"]} == {
        "has more than 20% missing values": ERROR, "are not numbers": ERROR, "are infinite": ERROR,
        "below minimum 18": 0.05, "above maximum 100": 0.05,
        "below the training range (min 20, tolerance 4)": WARNING,
        "above the training range (max 60, tolerance 4)": WARNING}
    assert [r.reason for r in rules["plan"]] == [None, "plan: not an allowed level", None]  # rows: declared rules only


def test_validation_scoring_and_drift_read_a_mixed_level_column_the_same_way(credit_config):
    from include.ml.drift import ReferenceProfile

    config = credit_config.model_copy(update={"target": "y", "id_columns": [], "validation": ValidationRules(
        min_rows=1)})
    batch = pd.DataFrame({"age": [30.0] * 4, "plan": pd.Series([2.0, "2", "gold", None], dtype=object),
                          "y": [0, 1, 0, 1]})

    validated = check_batch(batch, config, SPECS).frame["plan"]
    scored = FeatureRules(SPECS).row_problems(batch)[0]["plan"]
    profiled = ReferenceProfile().fit(batch, SPECS).categorical_["plan"]["shares"]

    assert validated.tolist()[:3] == scored.tolist()[:3] == ["2", "2", "gold"]
    assert pd.isna(validated.iloc[3]) and pd.isna(scored.iloc[3]) and set(profiled) == {"2", "gold"}


# -- boolean and datetime features ----------------------------------------------------------

TYPED = [FeatureSpec(name="member", type="boolean"), FeatureSpec(name="signup", type="datetime"),
         FeatureSpec(name="closed", type="datetime", format="%d/%m/%Y")]


def test_booleans_are_read_from_bools_numbers_and_words_in_any_case():
    values, not_booleans = as_booleans(pd.Series([True, False, 1, 0.0, "Yes", " no ", "TRUE", "f", "y", "N", None,
                                                  "maybe", 2], dtype=object))

    assert values.iloc[:10].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert not_booleans.tolist() == [False] * 11 + [True, True]


def test_dates_are_read_from_datetimes_iso_text_and_a_declared_format_in_utc():
    aware = pd.Series(pd.to_datetime(["2026-01-31T10:00:00+02:00"]))
    assert as_datetimes(aware)[0].iloc[0] == pd.Timestamp("2026-01-31 08:00")
    values, not_dates = as_datetimes(pd.Series(["2026-01-31", "2026-02-01 08:30", "31/01/2026", None, "soon"]))
    assert values.iloc[1] == pd.Timestamp("2026-02-01 08:30")
    assert not_dates.tolist() == [False, False, True, False, True]
    assert as_datetimes(pd.Series([20260131, 5]))[1].all()  # numbers are not dates
    assert as_datetimes(pd.Series(["31/01/2026"]), "%d/%m/%Y")[0].iloc[0] == pd.Timestamp("2026-01-31")


def test_a_scored_row_with_a_bad_date_or_boolean_is_rejected_with_its_reason():
    chunk = pd.DataFrame({"member": ["yes", "maybe", "no", True],
                          "signup": ["2026-01-01", "2026-01-02", "soon", pd.NA],
                          "closed": ["01/02/2026", "2026-02-01", "01/02/2026", "13/13/2026"]})

    clean, problem = FeatureRules(TYPED).row_problems(chunk)

    assert problem.tolist() == ["", "member: not a boolean", "signup: not a date", "closed: not a date"]
    assert clean["member"].dtype == "float64" and clean["signup"].dtype == "datetime64[ns]"
    assert clean["closed"].iloc[0] == pd.Timestamp("2026-02-01")


def test_validation_refuses_a_batch_whose_dates_are_not_dates_naming_the_column(credit_config):
    frame = pd.DataFrame({"member": [True, False] * 100, "signup": ["2026-01-01"] * 150 + ["n/a"] * 50,
                          "closed": ["01/02/2026"] * 200, "y": [0, 1] * 100})
    config = credit_config.model_copy(update={"target": "y", "id_columns": [],
                                              "validation": ValidationRules(min_rows=10)})

    with pytest.raises(BatchValidationError) as caught:
        check_batch(frame, config, TYPED)

    assert "column 'signup': 50 values are not dates" in str(caught.value)
