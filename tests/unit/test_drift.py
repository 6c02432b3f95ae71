"""Drift: a reference profile of the training rows, per-feature statistics of a batch against it, the
levels and the sampling noise that decide which features drift, and the dataset verdict.

Most batches here are built from evenly spaced normal quantiles (no sampling noise), so a shift of
0.3 standard deviations gives a Wasserstein distance of 0.300 and the rules are tested exactly. How
the statistics behave over many random samples is tests/unit/test_drift_statistics.py's subject.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from include.ml import presentation, simulate
from include.ml.config import DriftConfig, FeatureSpec
from include.ml.drift import DriftReport, ReferenceProfile, drift_report, jensen_shannon, psi
from include.ml.errors import PipelineError

NUMERIC = ["x0", "x1", "x2", "x3"]
FEATURES = [*(FeatureSpec(name=n, type="numeric") for n in NUMERIC), FeatureSpec(name="level", type="categorical")]
LEVELS = ("a", "b", "c", "d")
REFERENCE_ROWS = 2000


def normal(n: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """``n`` evenly spaced quantiles of N(shift, scale²): a sample without sampling noise."""
    return norm.ppf((np.arange(n) + 0.5) / n) * scale + shift


def levels(n: int, counts: dict[str, int] | None = None) -> list:
    """``n`` category values: the given counts, the rest spread evenly over a, b, c, d."""
    values = [level for level, count in (counts or {}).items() for _ in range(count)]
    return values + [LEVELS[i % len(LEVELS)] for i in range(n - len(values))]


def batch(n: int = REFERENCE_ROWS, shifts: dict[str, float] | None = None, counts: dict | None = None) -> pd.DataFrame:
    """Five features like the reference: x0..x3 standard normal (shifted by ``shifts``), and ``level``."""
    shifts = shifts or {}
    return pd.DataFrame({**{name: normal(n, shifts.get(name, 0.0)) for name in NUMERIC}, "level": levels(n, counts)})


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return ReferenceProfile(bins=10).fit(batch(), FEATURES)


@pytest.fixture
def report_of(profile: ReferenceProfile):
    """``report_of(frame, **drift_settings) -> DriftReport`` against the module's reference profile."""

    def report(frame: pd.DataFrame, **settings) -> DriftReport:
        return drift_report(profile, frame, DriftConfig(**settings))

    return report


# -- psi and Jensen-Shannon -----------------------------------------------------------------


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


def test_jensen_shannon_is_zero_for_equal_shares_one_for_disjoint_ones_and_symmetric():
    p, q = np.array([0.7, 0.3, 0.0]), np.array([0.2, 0.3, 0.5])

    assert jensen_shannon(p, p) == 0.0
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon(q, p))
    assert 0 < jensen_shannon(p, q) < 1


# -- the reference profile ------------------------------------------------------------------


def test_the_profile_keeps_a_fine_quantile_grid_and_coarse_bins_of_each_numeric_feature(profile):
    data = profile.to_dict()
    x0 = data["numeric"]["x0"]

    assert (data["format"], data["bins"], data["rows"], data["n_quantiles"]) == (2, 10, REFERENCE_ROWS, 1001)
    assert len(x0["quantiles"]) == len(x0["cdf"]) == 1001
    assert (x0["quantiles"][0], x0["quantiles"][-1]) == (pytest.approx(normal(2000).min()),
                                                         pytest.approx(normal(2000).max()))
    assert x0["cdf"][-1] == 1.0
    assert len(x0["edge_index"]) == 9
    assert x0["shares"] == pytest.approx([0.1] * 10, abs=1e-3)
    assert (x0["mean"], x0["std"], x0["missing_rate"]) == (pytest.approx(0.0, abs=1e-9), pytest.approx(1.0, abs=0.01),
                                                           0.0)


def test_the_profile_keeps_the_level_shares_missing_rate_and_singletons_of_a_categorical_feature():
    frame = pd.DataFrame({"level": ["a"] * 6 + ["b"] * 2 + ["rare", "once", None, None]})

    entry = ReferenceProfile().fit(frame, [FEATURES[-1]]).to_dict()["categorical"]["level"]

    assert entry["shares"] == {"a": 0.6, "b": 0.2, "rare": 0.1, "once": 0.1}
    assert entry["missing_rate"] == pytest.approx(2 / 12)
    assert entry["singletons"] == 2


def test_a_profile_survives_a_round_trip_through_json(profile):
    stored = json.loads(json.dumps(profile.to_dict()))

    restored = ReferenceProfile.from_dict(stored)

    assert restored.to_dict() == profile.to_dict()
    frame = batch(shifts={"x0": 0.3}, counts={"z": 50})
    assert drift_report(restored, frame, DriftConfig()) == drift_report(profile, frame, DriftConfig())


OLD_FORMAT = {"bins": 10, "rows": 100, "numeric": {"x0": {"edges": [0.0], "shares": [0.5, 0.5]}}, "categorical": {}}


@pytest.mark.parametrize(("stored", "format_named"), [(OLD_FORMAT, 1), ({**OLD_FORMAT, "format": 3}, 3)],
                         ids=["format 1 (no format key)", "format 3"])
def test_a_profile_of_another_format_is_refused_saying_what_to_do(stored: dict, format_named: int):
    with pytest.raises(PipelineError) as caught:
        ReferenceProfile.from_dict(stored)

    message = str(caught.value)
    assert f"reference profile format {format_named} is not the supported 2" in message
    assert "retrain" in message


# -- per-feature statistics -----------------------------------------------------------------


def test_the_training_rows_themselves_score_zero_and_do_not_drift(report_of):
    report = report_of(batch())

    for name, stats in report.features.items():
        assert stats["level"] == "none", name
        assert all(v == pytest.approx(0.0, abs=1e-9) for v in stats["statistics"].values() if v is not None), name
    assert (report.verdict, report.reasons, report.drifted_features) == ("none", [], [])


def test_a_fresh_sample_of_the_training_distribution_does_not_drift(report_of):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({**{n: rng.normal(0, 1, 2000) for n in NUMERIC}, "level": rng.choice(LEVELS, 2000)})

    report = report_of(frame)

    assert report.verdict == "none"
    assert report.drifted_features == []


def test_wasserstein_is_the_shift_in_training_standard_deviations():
    wide = ReferenceProfile().fit(pd.DataFrame({"x0": normal(2000, scale=4.0)}), FEATURES[:1])

    report = drift_report(wide, pd.DataFrame({"x0": normal(2000, shift=1.2, scale=4.0)}), DriftConfig())

    stats = report.features["x0"]["statistics"]
    assert stats["wasserstein"] == pytest.approx(0.3, abs=0.005)
    assert stats["ks"] == pytest.approx(2 * norm.cdf(0.15) - 1, abs=0.005)
    assert report.features["x0"]["mean"] == pytest.approx(1.2)
    assert report.features["x0"]["reference_mean"] == pytest.approx(0.0, abs=1e-9)


def test_every_numeric_statistic_grows_with_the_shift(report_of):
    small = report_of(batch(shifts={"x0": 0.2})).features["x0"]["statistics"]
    large = report_of(batch(shifts={"x0": 0.8})).features["x0"]["statistics"]

    for statistic in ("psi", "jensen_shannon", "wasserstein", "ks"):
        assert 0 < small[statistic] < large[statistic], statistic


def test_values_beyond_the_training_range_count_in_full_in_the_wasserstein_distance():
    reference = ReferenceProfile().fit(pd.DataFrame({"x0": np.arange(100.0)}), FEATURES[:1])

    far = drift_report(reference, pd.DataFrame({"x0": np.arange(100.0) + 1000}), DriftConfig())

    scale = np.arange(100.0).std()
    assert far.features["x0"]["statistics"]["wasserstein"] == pytest.approx(1000 / scale, rel=0.01)


def test_unseen_categories_are_listed_with_their_share(report_of):
    report = report_of(batch(counts={"new": 300, "newer": 100}))

    level = report.features["level"]
    assert level["unseen_levels"] == ["new", "newer"]
    assert level["statistics"]["unseen_share"] == pytest.approx(0.2)
    assert level["level"] == "severe"


def test_a_rise_in_missing_values_is_drift(report_of):
    frame = batch()
    frame.loc[frame.index[:800], "x0"] = np.nan

    x0 = report_of(frame).features["x0"]

    assert (x0["reference_missing_rate"], x0["missing_rate"]) == (0.0, pytest.approx(0.4))
    assert x0["statistics"]["missing_rate_change"] == pytest.approx(0.4)
    assert x0["level"] == "severe"
    assert any(r.startswith("missing_rate_change 0.400 > ") for r in x0["reasons"])


def test_missing_category_values_are_compared_as_a_missing_rate():
    reference = ReferenceProfile().fit(pd.DataFrame({"level": ["a", None] * 500}), FEATURES[-1:])

    level = drift_report(reference, pd.DataFrame({"level": ["a"] * 1000}), DriftConfig()).features["level"]

    assert (level["reference_missing_rate"], level["missing_rate"]) == (0.5, 0.0)
    assert level["statistics"]["missing_rate_change"] == 0.5
    assert level["level"] == "severe"


def test_a_constant_or_empty_training_column_still_gives_a_verdict():
    features = [FeatureSpec(name="const", type="numeric"), FeatureSpec(name="empty", type="numeric")]
    reference = ReferenceProfile().fit(pd.DataFrame({"const": [3.0] * 300, "empty": [np.nan] * 300}), features)

    report = drift_report(reference, pd.DataFrame({"const": np.linspace(4, 6, 300), "empty": np.arange(300.0)}),
                          DriftConfig())

    const, empty = report.features["const"], report.features["empty"]
    assert const["statistics"]["wasserstein"] == 1.0  # every row left the only value training saw
    assert const["level"] == "severe"
    assert empty["statistics"]["wasserstein"] is None  # nothing to compare values with
    assert empty["statistics"]["missing_rate_change"] == 1.0 and empty["level"] == "severe"
    assert report.verdict == "drift"
    json.dumps(report.to_dict(), allow_nan=False)  # no NaN or infinity reaches drift.json


def test_numeric_values_that_arrive_as_text_are_compared_as_numbers(report_of):
    frame = batch(shifts={"x0": 0.3})

    as_text = report_of(frame.assign(x0=frame["x0"].astype(str))).features["x0"]

    assert as_text["statistics"] == pytest.approx(report_of(frame).features["x0"]["statistics"])


def test_infinite_values_are_counted_and_left_out_of_the_distribution(report_of):
    frame = batch()
    frame.loc[[0, 1], "x0"] = np.inf

    x0 = report_of(frame).features["x0"]

    assert x0["infinite"] == 2
    assert x0["n"] == REFERENCE_ROWS - 2
    assert math.isfinite(x0["statistics"]["wasserstein"])


# -- which features drift: levels and sampling noise ----------------------------------------


def test_a_feature_drifts_above_the_drifted_level_and_is_severe_above_the_severe_level(report_of):
    frame = batch(shifts={"x0": 0.3})  # Wasserstein 0.300, sampling noise about 0.12

    default = report_of(frame).features["x0"]
    lenient = report_of(frame, thresholds={"wasserstein": {"drifted": 0.4, "severe": 0.8}}).features["x0"]
    strict = report_of(frame, thresholds={"wasserstein": {"drifted": 0.05, "severe": 0.25}}).features["x0"]

    assert (default["level"], lenient["level"], strict["level"]) == ("drifted", "none", "severe")
    assert default["checks"] == {"wasserstein": "drifted", "missing_rate_change": "none"}


def test_a_shift_above_the_level_but_within_sampling_noise_does_not_count():
    reference = ReferenceProfile().fit(pd.DataFrame({"x0": normal(20_000)}), FEATURES[:1])

    def x0(rows: int) -> dict:
        frame = pd.DataFrame({"x0": normal(rows, shift=0.15)})  # Wasserstein 0.15, above the level 0.1
        return drift_report(reference, frame, DriftConfig()).features["x0"]

    small, large = x0(250), x0(20_000)

    assert small["statistics"]["wasserstein"] == pytest.approx(0.15, abs=0.005)
    assert small["noise"]["wasserstein"] > 0.15
    assert small["level"] == "none"
    assert small["reasons"] == []
    assert large["noise"]["wasserstein"] < 0.1
    assert large["level"] == "drifted"


def test_sampling_noise_shrinks_as_the_batch_grows(report_of):
    noise = [report_of(batch(n=n)).features["x0"]["noise"]["wasserstein"] for n in (250, 2000, 20_000)]

    assert noise[0] > noise[1] > noise[2] > 0


def test_a_drifted_feature_says_which_statistic_by_how_much_and_against_what(report_of):
    x0 = report_of(batch(shifts={"x0": 0.3})).features["x0"]

    noise = x0["noise"]["wasserstein"]
    assert x0["reasons"] == [f"wasserstein 0.300 > {max(0.1, noise):.3f} (drifted level 0.1, noise {noise:.3f})"]


def test_the_numeric_statistic_setting_chooses_what_gates_numeric_features(report_of):
    frame = batch(shifts={"x0": 0.3})  # KS D about 0.12

    by_ks = report_of(frame, numeric_statistic="ks", thresholds={"ks": {"drifted": 0.2, "severe": 0.4}})

    assert by_ks.features["x0"]["gating"] == ["ks", "missing_rate_change"]
    assert by_ks.features["x0"]["level"] == "none"
    assert report_of(frame).features["x0"]["gating"] == ["wasserstein", "missing_rate_change"]


def test_categorical_features_are_gated_by_their_statistic_unseen_share_and_missing_rate(report_of):
    frame = batch(counts={"new": 60})  # 3% unseen: Jensen-Shannon about 0.12

    level = report_of(frame, thresholds={"jensen_shannon": {"drifted": 0.3, "severe": 0.5}}).features["level"]

    assert level["gating"] == ["jensen_shannon", "unseen_share", "missing_rate_change"]
    assert level["checks"] == {"jensen_shannon": "none", "unseen_share": "drifted", "missing_rate_change": "none"}
    assert level["level"] == "drifted"


# -- the dataset verdict --------------------------------------------------------------------


def test_one_mildly_drifted_feature_of_five_is_a_warning(report_of):
    report = report_of(batch(shifts={"x0": 0.3}))

    assert report.verdict == "warn"
    assert report.drifted_features == ["x0"]
    assert report.severe_features == []
    assert report.drifted_share == pytest.approx(0.2)
    assert report.reasons == ["1 feature(s) drifted, below the dataset rule: x0"]


def test_the_dataset_drifts_when_the_drifted_share_reaches_drift_share(report_of):
    two, three = batch(shifts={"x0": 0.3, "x1": 0.3}), batch(shifts={"x0": 0.3, "x1": 0.3, "x2": 0.3})

    assert report_of(two).verdict == "warn"  # 2 of 5 < 0.5
    assert report_of(three).verdict == "drift"  # 3 of 5
    assert report_of(three).reasons == ["3 of 5 features drifted (share 0.60 >= 0.5)"]
    assert report_of(two, drift_share=0.4).verdict == "drift"  # reaching the share is enough
    assert report_of(three, drift_share=0.8).verdict == "warn"


def test_one_severely_drifted_feature_makes_the_dataset_drift(report_of):
    report = report_of(batch(shifts={"x0": 0.6}))

    assert report.features["x0"]["level"] == "severe"
    assert report.drifted_share == pytest.approx(0.2)
    assert report.verdict == "drift"
    assert report.reasons == ["severe drift in x0"]
    assert report.severe_features == ["x0"]


def test_a_critical_feature_that_drifts_makes_the_dataset_drift(report_of):
    frame = batch(shifts={"x0": 0.3})

    critical = report_of(frame, critical_features=["x0"])
    other_critical = report_of(frame, critical_features=["x1"])

    assert critical.verdict == "drift"
    assert critical.reasons == ["critical feature(s) drifted: x0"]
    assert other_critical.verdict == "warn"


def test_a_batch_below_min_batch_rows_is_insufficient_data_however_shifted(report_of):
    frame = batch(n=150, shifts={"x0": 1.0, "x1": 1.0, "x2": 1.0})

    small = report_of(frame)
    allowed = report_of(frame, min_batch_rows=100)

    assert small.verdict == "insufficient_data"
    assert small.reasons == ["batch has 150 rows, fewer than drift.min_batch_rows 200"]
    assert small.features["x0"]["checks"]["wasserstein"] == "insufficient_data"
    assert allowed.verdict == "drift"


def test_the_report_says_the_sizes_and_the_settings_used(report_of):
    report = report_of(batch(n=500), critical_features=["x3"])

    assert (report.batch_rows, report.reference_rows) == (500, REFERENCE_ROWS)
    assert report.settings["critical_features"] == ["x3"]
    assert report.settings["thresholds"]["wasserstein"] == {"drifted": 0.1, "severe": 0.5}
    assert report.reference_version is None


def test_features_the_batch_lacks_are_listed_and_not_compared(report_of):
    report = report_of(batch().drop(columns=["x2"]))

    assert report.missing_features == ["x2"]
    assert "x2" not in report.features
    assert report.verdict == "none"


def test_drifted_features_are_listed_severe_first_then_by_how_far_past_their_level(report_of):
    report = report_of(batch(shifts={"x0": 0.2, "x1": 0.4, "x2": 0.7}))

    assert [(n, s["level"]) for n, s in report.ordered_features()] == [
        ("x2", "severe"), ("x1", "drifted"), ("x0", "drifted"), ("level", "none"), ("x3", "none")]
    assert report.drifted_features == ["x2", "x1", "x0"]
    assert report.severe_features == ["x2"]


def drift_table(report: DriftReport) -> str:
    """The drift report's HTML table, as the dashboard, the report file and the emails show it."""
    return presentation.render("drift_table.html.j2", report=report)


def test_a_report_survives_a_round_trip_through_json(report_of):
    report = report_of(batch(shifts={"x0": 0.6}, counts={"new": 40}))
    report.reference_version = "v0007"

    restored = DriftReport.from_dict(json.loads(json.dumps(report.to_dict())))

    assert restored == report
    assert drift_table(restored) == drift_table(report)


# -- the summary and the HTML table ---------------------------------------------------------


@pytest.fixture(scope="module")
def credit_reports() -> tuple[DriftReport, DriftReport]:
    """credit_default: a normal and a drifted day, each against the profile of the day before."""
    from include.ml.config import get_pipeline

    config = get_pipeline("credit_default")
    day = dt.date(2026, 1, 1)
    reference = ReferenceProfile(bins=10).fit(simulate.credit_default(day, 1500, 7, False), config.features)
    later = day + dt.timedelta(days=1)
    return (drift_report(reference, simulate.credit_default(later, 1500, 7, False), config.drift),
            drift_report(reference, simulate.credit_default(later, 1500, 7, True), config.drift))


def test_a_drifted_simulated_day_drifts_and_a_normal_day_does_not(credit_reports):
    normal_day, drifted_day = credit_reports

    assert normal_day.verdict == "none"
    assert drifted_day.verdict == "drift"
    assert drifted_day.drifted_features[0] == "channel"
    assert drifted_day.features["channel"]["unseen_levels"] == ["bnpl_partner"]
    assert {"income", "utilization"} <= set(drifted_day.drifted_features)
    critical = next(r for r in drifted_day.reasons if r.startswith("critical feature(s) drifted: "))
    assert set(critical.split(": ", 1)[1].split(", ")) == {"income", "utilization"}


def test_the_summary_is_small_the_verdict_counts_and_the_five_worst_features(credit_reports):
    report = credit_reports[1]

    summary = report.summary()

    assert len(report.features) == 15
    assert [w["feature"] for w in summary["worst"]] == [n for n, _ in report.ordered_features()[:5]]
    assert summary["worst"][0] == {"feature": "channel", "level": "severe",
                                   "reasons": report.features["channel"]["reasons"]}
    assert "features" not in summary
    assert (summary["verdict"], summary["drifted_features"]) == ("drift", report.drifted_features)
    assert len(json.dumps(summary)) < len(json.dumps(report.to_dict())) / 5


def test_the_summary_of_a_report_with_fewer_than_five_features_lists_them_all(report_of):
    summary = report_of(batch(shifts={"x0": 0.3})[["x0", "level"]]).summary()

    assert [(w["feature"], w["level"]) for w in summary["worst"]] == [("x0", "drifted"), ("level", "none")]
    assert summary["drifted_share"] == 0.5


HTML_ROW = re.compile(r"<tr><td>(.*?)</td><td class='num'>(?:\d+|–)</td><td>(\w+)</td>"
                      r"<td><span class='badge'[^>]*>(\w+)</span></td>")


def test_the_html_table_lists_every_feature_severe_first(report_of):
    report = report_of(batch(shifts={"x0": 0.3, "x2": 0.7}, counts={"new": 40}), critical_features=["x1"])

    page = drift_table(report)

    assert HTML_ROW.findall(page) == [(n, s["type"], s["level"]) for n, s in report.ordered_features()]
    assert [level for _, _, level in HTML_ROW.findall(page)] == ["severe", "drifted", "drifted", "none", "none"]
    assert page.startswith("<p>Drift verdict <b>drift</b>: 3 of 5 features drifted (1 severely); batch 2000 rows")
    assert "any critical feature (x1)" in page
    assert "<td>new</td>" in page  # the unseen level


def test_names_levels_and_reasons_from_the_data_are_escaped_in_the_html_table():
    feature = FeatureSpec(name="<b>kind</b>", type="categorical")
    reference = ReferenceProfile().fit(pd.DataFrame({"<b>kind</b>": ["a", "b"] * 200}), [feature])

    report = drift_report(reference, pd.DataFrame({"<b>kind</b>": ["<script>x</script>"] * 400}), DriftConfig())
    page = drift_table(report)

    assert "<script>" not in page and "<b>kind</b>" not in page
    assert "<td>&lt;b&gt;kind&lt;/b&gt;</td>" in page
    assert "<td>&lt;script&gt;x&lt;/script&gt;</td>" in page


def test_critical_feature_names_are_escaped_in_the_html_caption():
    feature = FeatureSpec(name="debt<income", type="numeric")
    reference = ReferenceProfile().fit(pd.DataFrame({"debt<income": normal(400)}), [feature])

    page = drift_table(drift_report(reference, pd.DataFrame({"debt<income": normal(400)}),
                                    DriftConfig(critical_features=["debt<income"])))

    assert "debt<income" not in page


def test_a_feature_with_too_few_values_to_compare_is_insufficient_data_not_none():
    x0 = FEATURES[0]
    sparse = np.full(2000, np.nan)
    sparse[:300] = normal(300)
    reference = ReferenceProfile().fit(pd.DataFrame({"x0": sparse}), [x0])
    frame = pd.DataFrame({"x0": np.concatenate([normal(150, shift=3.0), np.full(850, np.nan)])})

    feature = drift_report(reference, frame, DriftConfig()).features["x0"]

    assert feature["checks"]["wasserstein"] == "insufficient_data"  # 150 values < min_batch_rows 200
    assert feature["level"] == "insufficient_data"


# -- boolean and datetime features: judged as the model sees them ---------------------------

TYPED_FEATURES = [FeatureSpec(name="member", type="boolean"),
                  FeatureSpec(name="signup", type="datetime", parts=["year", "month", "dayofweek"])]


def typed_frame(seed: int, n: int, member_share: float = 0.4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, n), unit="D")
    return pd.DataFrame({"member": rng.random(n) < member_share, "signup": signup})


def test_a_datetime_is_profiled_by_its_parts_and_a_boolean_as_true_false_levels():
    profile = ReferenceProfile().fit(typed_frame(0, 3_000), TYPED_FEATURES)

    assert set(profile.numeric_) == {"signup.year", "signup.month", "signup.dayofweek"}
    assert profile.numeric_["signup.month"]["source"] == "signup"
    assert set(profile.categorical_["member"]["shares"]) == {"true", "false"}


def test_later_dates_and_yes_no_text_from_the_same_distribution_do_not_drift():
    profile = ReferenceProfile().fit(typed_frame(0, 3_000), TYPED_FEATURES)
    batch = typed_frame(1, 1_000)
    batch["member"] = np.where(batch["member"], "yes", "no")  # as a CSV delivers it
    batch["signup"] = batch["signup"].dt.strftime("%Y-%m-%d")

    report = drift_report(profile, batch, DriftConfig())

    assert report.verdict == "none", report.reasons
    assert report.features["member"]["unseen_levels"] == []
    assert report.features["signup.year"]["source"] == "signup"


def test_a_boolean_whose_share_moves_drifts_and_a_critical_datetime_counts_by_its_parts():
    profile = ReferenceProfile().fit(typed_frame(0, 3_000), TYPED_FEATURES)
    moved = typed_frame(1, 1_000, member_share=0.9)
    moved["signup"] = moved["signup"] + pd.Timedelta(days=3 * 365)

    report = drift_report(profile, moved, DriftConfig(critical_features=["signup"]))

    assert report.verdict == "drift"
    assert "member" in report.drifted_features and "signup.year" in report.severe_features
    assert any(reason.startswith("critical feature(s) drifted: signup.year") for reason in report.reasons)


def test_a_missing_datetime_column_is_named_by_its_column_not_its_parts():
    profile = ReferenceProfile().fit(typed_frame(0, 1_000), TYPED_FEATURES)

    assert profile.missing_features(typed_frame(1, 500).drop(columns="signup")) == ["signup"]
