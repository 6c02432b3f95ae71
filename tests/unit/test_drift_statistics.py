"""Drift statistics on generated data with known, injected drift, over many seeds.

The data imitate a customer table: a symmetric, a skewed (log-normal), an exponential, a count
(Poisson), a numeric with 5% missing values and a bounded share (beta), plus two categoricals
(4 levels with a 5% level, 8 levels down to 3%). Each seed fits a reference profile on its own
"training data" of 2,000, 5,000 or 20,000 rows and reuses it for every batch size, so the
sampling noise of small references is part of what is measured.

Everything is seeded: a rate measured here is the same on every run.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from include.ml import presentation
from include.ml.config import DRIFT_STATISTICS, DriftConfig, FeatureSpec, Levels
from include.ml.drift import DriftReport, ReferenceProfile, drift_report
from include.ml.extract import read_batch

REFERENCE_ROWS = (2_000, 5_000, 20_000)  # training data sizes, cycled over the seeds
BATCH_ROWS = (500, 5_000, 50_000)
FALSE_ALARM_SEEDS = 200
# The 50,000-row batch runs on the first 100 seeds only (it costs ten times more): still 800
# feature comparisons, and 1% of them would be 8 false alarms.
FALSE_ALARM_SEEDS_AT = {500: FALSE_ALARM_SEEDS, 5_000: FALSE_ALARM_SEEDS, 50_000: 100}
MAX_FALSE_ALARM_RATE = 0.01

INCOME_SIGMA = 0.8
INCOME_STD = math.sqrt((math.exp(INCOME_SIGMA**2) - 1) * math.exp(2 * 10 + INCOME_SIGMA**2))
AGE_STD = 12.0
TENURE_STD = 3.0  # an exponential's std is its scale


def _balance(rng: np.random.Generator, n: int) -> np.ndarray:
    values = rng.normal(1_000, 300, n)
    values[rng.random(n) < 0.05] = np.nan
    return values


NUMERIC_DRAWS = {
    "age": lambda rng, n: rng.normal(40, AGE_STD, n),
    "income": lambda rng, n: rng.lognormal(10, INCOME_SIGMA, n),
    "tenure_years": lambda rng, n: rng.exponential(TENURE_STD, n),
    "open_accounts": lambda rng, n: rng.poisson(3, n),
    "balance": _balance,
    "utilisation": lambda rng, n: rng.beta(2, 5, n),
}
CATEGORY_SHARES = {
    "channel": {"web": 0.5, "branch": 0.3, "phone": 0.15, "partner": 0.05},
    "region": {"north": 0.3, "south": 0.2, "east": 0.15, "west": 0.1, "centre": 0.1, "coast": 0.07,
               "islands": 0.05, "abroad": 0.03},
}
FEATURES = [FeatureSpec(name=name, type="numeric") for name in NUMERIC_DRAWS] + [
    FeatureSpec(name=name, type="categorical") for name in CATEGORY_SHARES
]
FEATURE_NAMES = [spec.name for spec in FEATURES]

# Levels near zero leave the sampling-noise level as the only gate.
NOISE_ONLY = DriftConfig(thresholds={s: Levels(drifted=1e-9, severe=1e-9) for s in DRIFT_STATISTICS})


def _categories(rng: np.random.Generator, shares: dict[str, float], n: int) -> pd.Series:
    levels = pd.array(list(shares), dtype="str")
    codes = np.searchsorted(np.cumsum(list(shares.values())), rng.random(n))
    return pd.Series(levels.take(np.minimum(codes, len(levels) - 1)))


def customers(rng: np.random.Generator, n: int, columns: list[str] | None = None) -> pd.DataFrame:
    """``n`` rows of the simulated customer table (only ``columns``, default all)."""
    columns = columns or FEATURE_NAMES
    data = {}
    for name in columns:
        if name in NUMERIC_DRAWS:
            data[name] = NUMERIC_DRAWS[name](rng, n)
        else:
            data[name] = _categories(rng, CATEGORY_SHARES[name], n)
    return pd.DataFrame(data)


def is_alarm(feature: dict) -> bool:
    return feature["level"] in ("drifted", "severe")


def assert_clean_report(report: DriftReport) -> dict:
    """Every statistic and noise level is a finite number or None, and the report serialises as
    strict JSON and renders as HTML; returns the JSON round trip."""
    for name, feature in report.features.items():
        for kind in ("statistics", "noise"):
            for statistic, value in feature[kind].items():
                assert value is None or math.isfinite(value), f"{name} {kind} {statistic} is {value}"
    assert report.verdict in ("drift", "warn", "none", "insufficient_data")
    presentation.render("drift_table.html.j2", report=report)
    return json.loads(json.dumps(report.to_dict(), allow_nan=False))


# -- no drift: false alarms ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def no_drift_alarms() -> dict[str, dict[int, Counter]]:
    """False alarms per config, batch size and feature, over unshifted batches."""
    configs = {"default": DriftConfig(), "noise_only": NOISE_ONLY}
    alarms = {config: {rows: Counter() for rows in BATCH_ROWS} for config in configs}
    for seed in range(FALSE_ALARM_SEEDS):
        rng = np.random.default_rng(seed)
        training = customers(rng, REFERENCE_ROWS[seed % len(REFERENCE_ROWS)])
        profile = ReferenceProfile(bins=10).fit(training, FEATURES)
        for rows in BATCH_ROWS:
            if seed >= FALSE_ALARM_SEEDS_AT[rows]:
                continue
            batch = customers(rng, rows)
            for config_name, config in configs.items():
                report = drift_report(profile, batch, config)
                alarms[config_name][rows].update(n for n, f in report.features.items() if is_alarm(f))
    return alarms


def _rates(alarms: Counter, seeds: int) -> str:
    per_feature = ", ".join(f"{name} {alarms[name]}/{seeds}" for name in FEATURE_NAMES)
    total = sum(alarms.values())
    return f"{total}/{seeds * len(FEATURE_NAMES)} = {total / (seeds * len(FEATURE_NAMES)):.3%} ({per_feature})"


@pytest.mark.parametrize("rows", BATCH_ROWS)
def test_without_drift_at_most_one_percent_of_features_raise_a_false_alarm(no_drift_alarms, rows):
    seeds = FALSE_ALARM_SEEDS_AT[rows]
    alarms = no_drift_alarms["default"][rows]
    print(f"default levels, batch {rows}: false alarms {_rates(alarms, seeds)}")

    assert sum(alarms.values()) / (seeds * len(FEATURE_NAMES)) <= MAX_FALSE_ALARM_RATE, _rates(alarms, seeds)


@pytest.mark.parametrize("rows", BATCH_ROWS)
def test_with_levels_near_zero_the_noise_level_alone_keeps_false_alarms_at_most_one_percent(
    no_drift_alarms, rows
):
    # With the default levels the noise level decides only at small batches; a user who lowers
    # the levels relies on it everywhere.
    seeds = FALSE_ALARM_SEEDS_AT[rows]
    alarms = no_drift_alarms["noise_only"][rows]
    print(f"noise level only, batch {rows}: false alarms {_rates(alarms, seeds)}")

    assert sum(alarms.values()) / (seeds * len(FEATURE_NAMES)) <= MAX_FALSE_ALARM_RATE, _rates(alarms, seeds)


# -- known drift: detection ----------------------------------------------------------------------

DETECTION_SEEDS = 100


@pytest.mark.parametrize(("feature", "std"), [("age", AGE_STD), ("income", INCOME_STD)],
                         ids=["normal", "log-normal"])
def test_a_mean_shift_of_a_quarter_std_is_detected_in_95_percent_of_seeds_from_5000_rows(feature, std):
    spec = [FeatureSpec(name=feature, type="numeric")]
    detected = Counter()
    for seed in range(DETECTION_SEEDS):
        rng = np.random.default_rng(10_000 + seed)
        training = customers(rng, REFERENCE_ROWS[seed % len(REFERENCE_ROWS)], [feature])
        profile = ReferenceProfile(bins=10).fit(training, spec)
        for rows in (5_000, 50_000):
            batch = customers(rng, rows, [feature])
            batch[feature] += 0.25 * std
            detected[rows] += is_alarm(drift_report(profile, batch, DriftConfig()).features[feature])
    print(f"{feature} shifted by 0.25 std: detected in {dict(detected)} of {DETECTION_SEEDS} seeds")

    assert detected[5_000] >= 0.95 * DETECTION_SEEDS, dict(detected)
    assert detected[50_000] >= 0.95 * DETECTION_SEEDS, dict(detected)


def test_a_severe_shift_gives_the_verdict_drift_every_time():
    verdicts = Counter()
    for seed in range(50):
        rng = np.random.default_rng(20_000 + seed)
        profile = ReferenceProfile(bins=10).fit(customers(rng, REFERENCE_ROWS[seed % 3]), FEATURES)
        for rows in BATCH_ROWS:
            batch = customers(rng, rows)
            batch["age"] += AGE_STD
            batch["income"] += INCOME_STD
            batch["tenure_years"] += TENURE_STD
            batch["channel"] = batch["channel"].where(rng.random(rows) >= 0.1, "app")
            verdicts[(rows, drift_report(profile, batch, DriftConfig()).verdict)] += 1

    assert verdicts == {(rows, "drift"): 50 for rows in BATCH_ROWS}


# -- CSV and Parquet give the same numbers -------------------------------------------------------


def _with_gaps(values: pd.Series, rng: np.random.Generator, share: float) -> pd.Series:
    return values.mask(rng.random(len(values)) < share)


def _reports_from_csv_and_parquet(tmp_path, profile: ReferenceProfile, batch: pd.DataFrame):
    batch.to_csv(tmp_path / "batch.csv", index=False)
    batch.to_parquet(tmp_path / "batch.parquet", index=False)
    return (drift_report(profile, read_batch(tmp_path / "batch.csv"), DriftConfig()),
            drift_report(profile, read_batch(tmp_path / "batch.parquet"), DriftConfig()))


def _differences(csv: DriftReport, parquet: DriftReport) -> list[str]:
    found = [] if csv.verdict == parquet.verdict else [f"verdict {csv.verdict} vs {parquet.verdict}"]
    for name, from_csv in csv.features.items():
        from_parquet = parquet.features[name]
        for key in ("level", "rows", "n", "infinite", "unseen_levels"):
            if from_csv.get(key) != from_parquet.get(key):
                found.append(f"{name} {key}: {from_csv.get(key)} vs {from_parquet.get(key)}")
        for kind in ("statistics", "noise"):
            for statistic, value in from_csv[kind].items():
                other = from_parquet[kind][statistic]
                same = (value is None and other is None) or (
                    value is not None and other is not None and math.isclose(value, other, rel_tol=1e-9, abs_tol=1e-12))
                if not same:
                    found.append(f"{name} {kind} {statistic}: {value} vs {other}")
    return found


def test_a_batch_gives_the_same_statistics_from_csv_as_from_parquet(tmp_path):
    rng = np.random.default_rng(30_000)
    profile = ReferenceProfile(bins=10).fit(customers(rng, 5_000), FEATURES)
    batch = customers(rng, 3_000)
    batch["age"] += 0.25 * AGE_STD  # some drift, so that levels differ between features
    batch["channel"] = _with_gaps(batch["channel"].where(rng.random(3_000) >= 0.03, "app"), rng, 0.05)
    batch["region"] = _with_gaps(batch["region"], rng, 0.2)
    batch.loc[[3, 70, 900], "tenure_years"] = [np.inf, -np.inf, np.inf]

    csv, parquet = _reports_from_csv_and_parquet(tmp_path, profile, batch)

    assert _differences(csv, parquet) == []
    assert csv.features["age"]["level"] == "drifted"
    assert csv.features["channel"]["unseen_levels"] == ["app"]
    assert csv.features["balance"]["missing_rate"] == parquet.features["balance"]["missing_rate"] > 0
    assert csv.features["tenure_years"]["infinite"] == 3


@pytest.mark.parametrize(
    ("levels", "gaps"),
    [
        pytest.param(["1", "2", "3", "4"], 0.05, id="whole-number codes with gaps"),
        pytest.param(["A1", "B2", "C3"], 0.05, id="text codes with gaps"),
    ],
)
def test_a_coded_categorical_gives_the_same_statistics_from_csv_as_from_parquet(tmp_path, levels, gaps):
    rng = np.random.default_rng(30_001)
    spec = [FeatureSpec(name="code", type="categorical")]
    shares = dict.fromkeys(levels, 1 / len(levels))
    # the reference as training stores it after validation: text levels, missing as NaN
    training = pd.DataFrame({"code": _with_gaps(_categories(rng, shares, 5_000), rng, gaps)})
    profile = ReferenceProfile(bins=10).fit(training, spec)
    batch = pd.DataFrame({"code": _with_gaps(_categories(rng, shares, 2_000), rng, gaps)})

    csv, parquet = _reports_from_csv_and_parquet(tmp_path, profile, batch)

    assert _differences(csv, parquet) == []
    assert csv.verdict == "none"


# -- edge cases: a clear result, never a crash or a NaN ------------------------------------------


@pytest.fixture(scope="module")
def customer_profile() -> ReferenceProfile:
    return ReferenceProfile(bins=10).fit(customers(np.random.default_rng(40_000), 5_000), FEATURES)


def _customer_batch(rows: int = 2_000) -> pd.DataFrame:
    return customers(np.random.default_rng(40_001), rows)


def _one_numeric(reference: np.ndarray, batch: np.ndarray) -> DriftReport:
    profile = ReferenceProfile(bins=10).fit(pd.DataFrame({"x": reference}), [FeatureSpec(name="x", type="numeric")])
    return drift_report(profile, pd.DataFrame({"x": batch}), DriftConfig())


def _one_categorical(reference: list, batch: list) -> DriftReport:
    spec = [FeatureSpec(name="c", type="categorical")]
    profile = ReferenceProfile(bins=10).fit(pd.DataFrame({"c": pd.Series(reference, dtype="str")}), spec)
    return drift_report(profile, pd.DataFrame({"c": pd.Series(batch, dtype="str")}), DriftConfig())


def test_a_constant_reference_column_shows_no_drift_while_the_batch_keeps_its_value():
    report = _one_numeric(np.full(3_000, 3.0), np.full(1_000, 3.0))

    assert_clean_report(report)
    assert report.features["x"]["level"] == "none"
    assert report.features["x"]["statistics"]["wasserstein"] == 0.0
    assert report.verdict == "none"


@pytest.mark.parametrize(
    ("constant", "moved_to"),
    [
        (0.0, 1.0),
        (3.0, 4.0),
        pytest.param(2025.0, 2026.0, id="year 2025 to 2026"),
    ],
)
def test_a_constant_reference_column_drifts_when_the_batch_moves_to_another_value(constant, moved_to):
    report = _one_numeric(np.full(3_000, constant), np.full(1_000, moved_to))

    assert_clean_report(report)
    assert is_alarm(report.features["x"]), report.features["x"]
    assert report.verdict == "drift"


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_column_missing_throughout_the_reference_drifts_when_the_batch_has_values(kind):
    filled = np.random.default_rng(1).normal(size=1_000) if kind == "numeric" else ["a", "b"] * 500
    empty = np.full(3_000, np.nan) if kind == "numeric" else [None] * 3_000
    report = _one_numeric(empty, filled) if kind == "numeric" else _one_categorical(empty, filled)
    feature = next(iter(report.features.values()))

    assert_clean_report(report)
    assert feature["level"] == "severe"
    assert feature["statistics"]["missing_rate_change"] == 1.0
    assert report.verdict == "drift"


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_column_missing_throughout_the_batch_is_severe_drift_in_its_missing_rate(kind):
    filled = np.random.default_rng(1).normal(size=3_000) if kind == "numeric" else ["a", "b"] * 1_500
    empty = np.full(1_000, np.nan) if kind == "numeric" else [None] * 1_000
    report = _one_numeric(filled, empty) if kind == "numeric" else _one_categorical(filled, empty)
    feature = next(iter(report.features.values()))

    assert_clean_report(report)
    assert feature["level"] == "severe"
    assert feature["statistics"]["missing_rate_change"] == 1.0
    assert report.verdict == "drift"


@pytest.mark.parametrize("kind", ["numeric", "categorical"])
def test_a_column_missing_in_both_reference_and_batch_is_not_drift(kind):
    report = (_one_numeric(np.full(3_000, np.nan), np.full(1_000, np.nan)) if kind == "numeric"
              else _one_categorical([None] * 3_000, [None] * 1_000))

    assert_clean_report(report)
    assert report.verdict == "none"


def test_a_single_level_categorical_shows_no_drift_while_the_batch_keeps_that_level():
    report = _one_categorical(["yes"] * 3_000, ["yes"] * 1_000)

    assert_clean_report(report)
    assert report.features["c"]["level"] == "none"
    assert report.verdict == "none"


def test_a_category_seen_only_in_the_batch_is_named_and_its_share_reported(customer_profile):
    batch = _customer_batch()
    batch["channel"] = batch["channel"].where(np.arange(len(batch)) % 20 != 0, "app")  # 5% new

    report = drift_report(customer_profile, batch, DriftConfig())

    assert_clean_report(report)
    channel = report.features["channel"]
    assert channel["unseen_levels"] == ["app"]
    assert channel["statistics"]["unseen_share"] == pytest.approx(0.05)
    assert channel["level"] == "drifted"
    assert report.drifted_features == ["channel"]


def test_a_new_level_of_a_single_level_categorical_is_drift():
    report = _one_categorical(["yes"] * 3_000, ["yes"] * 900 + ["no"] * 100)

    assert_clean_report(report)
    assert report.features["c"]["unseen_levels"] == ["no"]
    assert is_alarm(report.features["c"])


def test_infinities_in_the_batch_are_counted_as_non_finite_and_left_out_of_the_comparison(customer_profile):
    batch = _customer_batch()
    batch.loc[:9, "income"] = np.inf
    batch.loc[10:14, "income"] = -np.inf

    report = drift_report(customer_profile, batch, DriftConfig())

    assert_clean_report(report)
    income = report.features["income"]
    assert income["infinite"] == 15
    assert income["n"] == len(batch) - 15
    assert income["level"] == "none"
    assert report.verdict == "none"


def test_a_column_of_only_infinities_is_severe_drift_not_a_crash():
    report = _one_numeric(np.random.default_rng(2).normal(size=3_000), np.full(1_000, np.inf))

    assert_clean_report(report)
    assert report.features["x"]["infinite"] == 1_000
    assert report.features["x"]["level"] == "severe"


def test_an_empty_batch_is_insufficient_data(customer_profile):
    report = drift_report(customer_profile, _customer_batch().iloc[:0], DriftConfig())

    assert_clean_report(report)
    assert report.verdict == "insufficient_data"
    assert report.drifted_features == []


def test_a_badly_shifted_batch_below_min_batch_rows_is_insufficient_data_not_drift(customer_profile):
    batch = _customer_batch(100)
    for name, std in (("age", AGE_STD), ("income", INCOME_STD), ("tenure_years", TENURE_STD)):
        batch[name] += std

    report = drift_report(customer_profile, batch, DriftConfig())

    assert_clean_report(report)
    assert report.verdict == "insufficient_data"
    assert "min_batch_rows" in report.reasons[0]
    assert report.drifted_features == []


@pytest.mark.parametrize("rows", [0, 100])
def test_features_of_a_batch_too_small_to_compare_read_insufficient_data_not_none(customer_profile, rows):
    report = drift_report(customer_profile, _customer_batch(rows), DriftConfig())

    assert {name: f["level"] for name, f in report.features.items()} == dict.fromkeys(
        FEATURE_NAMES, "insufficient_data")


def test_an_empty_batch_flags_no_feature_even_one_missing_throughout_the_reference():
    report = _one_numeric(np.full(3_000, np.nan), np.array([]))

    assert_clean_report(report)
    assert report.verdict == "insufficient_data"
    assert report.drifted_features == []
