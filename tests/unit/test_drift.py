"""Drift: PSI of a batch against the reference profile of the training rows, and the verdict."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from include.ml import simulate
from include.ml.config import DriftConfig, FeatureSpec
from include.ml.drift import ReferenceProfile, drift_report, psi

NUMERIC = FeatureSpec(name="x", type="numeric")
LEVEL = FeatureSpec(name="level", type="categorical")


def sample(n: int = 2000, shift: float = 0.0, seed: int = 0, levels=("a", "b", "c")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1.0, n), "level": rng.choice(list(levels), n)})


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return ReferenceProfile(bins=10).fit(sample(seed=1), [NUMERIC, LEVEL])


# -- psi ------------------------------------------------------------------------------------


def test_psi_of_identical_shares_is_zero():
    shares = np.array([0.1, 0.2, 0.3, 0.4])

    assert psi(shares, shares) == 0.0


def test_psi_matches_the_textbook_formula():
    expected = math.fsum([(0.9 - 0.5) * math.log(0.9 / 0.5), (0.1 - 0.5) * math.log(0.1 / 0.5)])

    assert psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(expected)


def test_psi_stays_finite_when_a_bin_is_empty_on_either_side():
    value = psi(np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.5, 0.5]))

    assert math.isfinite(value)
    assert value > 1.0


def test_psi_grows_with_the_size_of_the_shift():
    reference = np.array([0.25, 0.25, 0.25, 0.25])

    small = psi(reference, np.array([0.3, 0.25, 0.25, 0.2]))
    large = psi(reference, np.array([0.6, 0.2, 0.1, 0.1]))

    assert 0 < small < large


# -- reference profile ----------------------------------------------------------------------


def test_a_batch_from_the_same_distribution_scores_low(profile):
    result = profile.compare(sample(seed=2))

    assert result["x"]["psi"] < 0.05
    assert result["level"]["psi"] < 0.05


def test_the_training_rows_themselves_score_zero(profile):
    result = profile.compare(sample(seed=1))

    assert result["x"]["psi"] == pytest.approx(0.0, abs=1e-12)
    assert result["level"]["psi"] == pytest.approx(0.0, abs=1e-12)


def test_a_shifted_batch_scores_higher_than_an_unshifted_one(profile):
    unshifted = profile.compare(sample(seed=3))["x"]
    shifted = profile.compare(sample(seed=3, shift=0.5))["x"]

    assert shifted["psi"] > 0.2 > unshifted["psi"]
    assert shifted["mean_batch"] == pytest.approx(0.5, abs=0.1)
    assert shifted["mean_reference"] == pytest.approx(0.0, abs=0.1)


def test_unseen_categories_are_listed_with_their_share(profile):
    batch = sample(seed=4, levels=("a", "b", "c", "new", "newer"))

    result = profile.compare(batch)["level"]

    assert result["unseen_levels"] == ["new", "newer"]
    assert result["unseen_share"] == pytest.approx(0.4, abs=0.05)
    assert result["psi"] > 0.2


def test_a_rise_in_missing_values_is_drift(profile):
    batch = sample(seed=5)
    batch.loc[batch.index[:600], "x"] = np.nan

    result = profile.compare(batch)["x"]

    assert result["missing_reference"] == 0.0
    assert result["missing_batch"] == pytest.approx(0.3)
    assert result["psi"] > 0.2


def test_missing_levels_are_compared_as_their_own_level():
    reference = ReferenceProfile().fit(pd.DataFrame({"level": ["a", None] * 500}), [LEVEL])

    result = reference.compare(pd.DataFrame({"level": ["a"] * 1000}))["level"]

    assert result["missing_reference"] == 0.5
    assert result["missing_batch"] == 0.0
    assert result["psi"] > 1.0


def test_a_constant_or_empty_training_column_still_gives_a_finite_psi():
    features = [FeatureSpec(name="const", type="numeric"), FeatureSpec(name="empty", type="numeric")]
    reference = ReferenceProfile().fit(pd.DataFrame({"const": [3.0] * 100, "empty": [np.nan] * 100}), features)

    result = reference.compare(pd.DataFrame({"const": np.linspace(0, 6, 100), "empty": np.arange(100.0)}))

    assert math.isfinite(result["const"]["psi"]) and result["const"]["psi"] > 0.2
    assert math.isfinite(result["empty"]["psi"]) and result["empty"]["psi"] > 0.2


def test_numeric_values_that_arrive_as_text_are_compared_as_numbers(profile):
    batch = sample(seed=2)
    as_text = batch.assign(x=batch["x"].astype(str))

    assert profile.compare(as_text)["x"]["psi"] == pytest.approx(profile.compare(batch)["x"]["psi"])


def test_a_profile_survives_a_round_trip_through_json(profile):
    stored = json.loads(json.dumps(profile.to_dict()))

    restored = ReferenceProfile.from_dict(stored)

    assert restored.to_dict() == profile.to_dict()
    batch = sample(seed=6, shift=0.3, levels=("a", "b", "z"))
    assert restored.compare(batch) == profile.compare(batch)


def test_the_profile_remembers_its_bins_and_rows(profile):
    data = profile.to_dict()

    assert data["bins"] == 10
    assert data["rows"] == 2000
    assert len(data["numeric"]["x"]["edges"]) == 9
    assert sum(data["numeric"]["x"]["shares"]) == pytest.approx(1.0)


# -- the report -----------------------------------------------------------------------------


def test_any_drifted_feature_makes_the_batch_drift_by_default(profile):
    report = drift_report(profile, sample(seed=7, shift=1.0), DriftConfig(psi_threshold=0.2))

    assert report["verdict"] == "drift"
    assert report["drifted_features"] == ["x"]
    assert report["features"]["x"]["drifted"] is True
    assert report["features"]["level"]["drifted"] is False
    assert report["drifted_share"] == 0.5
    assert (report["reference_rows"], report["batch_rows"]) == (2000, 2000)


def test_drift_share_sets_how_many_features_must_drift(profile):
    report = drift_report(profile, sample(seed=7, shift=1.0), DriftConfig(drift_share=0.5))

    assert report["drifted_features"] == ["x"]
    assert report["verdict"] == "none"  # half drifted, not more than half


def test_the_psi_threshold_decides_which_features_drift(profile):
    batch = sample(seed=8, shift=0.3)

    strict = drift_report(profile, batch, DriftConfig(psi_threshold=0.01))
    lenient = drift_report(profile, batch, DriftConfig(psi_threshold=5.0))

    assert strict["verdict"] == "drift"
    assert lenient["verdict"] == "none" and lenient["drifted_features"] == []


def test_drifted_features_are_listed_worst_first(profile):
    batch = sample(seed=9, shift=0.4, levels=("a", "new"))

    report = drift_report(profile, batch, DriftConfig(psi_threshold=0.01))

    psis = [report["features"][n]["psi"] for n in report["drifted_features"]]
    assert len(psis) == 2
    assert psis == sorted(psis, reverse=True)


def test_a_drifted_simulated_day_drifts_and_a_normal_day_does_not(credit_config):
    day = dt.date(2026, 1, 1)
    reference = ReferenceProfile(bins=10).fit(simulate.credit_default(day, 1500, 7, False), credit_config.features)

    normal = drift_report(reference, simulate.credit_default(day + dt.timedelta(days=1), 1500, 7, False),
                          credit_config.drift)
    drifted = drift_report(reference, simulate.credit_default(day + dt.timedelta(days=1), 1500, 7, True),
                           credit_config.drift)

    assert normal["verdict"] == "none"
    assert drifted["verdict"] == "drift"
    assert drifted["drifted_features"][0] == "channel"
    assert drifted["features"]["channel"]["unseen_levels"] == ["bnpl_partner"]
    assert {"income", "utilization"} <= set(drifted["drifted_features"])
