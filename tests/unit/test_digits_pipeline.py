"""The shipped ``digits`` pipeline on real data: scikit-learn's bundled handwritten digits (1,797 8x8
scans, 10 classes), delivered by ``simulate.digits`` as small daily batches and run through every
training step, as the DAG runs them.

Three days from the same images, then a day whose scans are shifted one pixel (drift).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from include.ml import fitting, paths, simulate
from include.ml.config import PipelineConfig, get_pipeline
from include.ml.records import RunWorkspace

DAY1 = dt.date(2026, 1, 1)
SAME_DAYS = 3  # on the distribution of the first; the day after them drifts


@dataclass(frozen=True)
class DigitsHistory:
    home: Path
    config: PipelineConfig
    summaries: list[dict]


@pytest.fixture(scope="module")
def digits_history(tmp_path_factory: pytest.TempPathFactory, run_day) -> DigitsHistory:
    home = tmp_path_factory.mktemp("digits_history")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("digits")
        simulate.write_batches(config, DAY1, SAME_DAYS + 1, drift_from=DAY1 + dt.timedelta(days=SAME_DAYS))
        summaries = [run_day(config, (DAY1 + dt.timedelta(days=i)).isoformat()) for i in range(SAME_DAYS + 1)]
    return DigitsHistory(home=home, config=config, summaries=summaries)


def test_digits_batches_are_real_images_ten_classes_and_the_same_for_the_same_seed_and_day():
    batch = simulate.digits(DAY1, 450, seed=5, drifted=False)

    assert batch.shape == (450, 1 + 64 + 1)
    assert batch["digit"].nunique() == 10
    assert batch.drop(columns=["image_id", "digit"]).isin(range(17)).all().all()
    assert batch.equals(simulate.digits(DAY1, 450, seed=5, drifted=False))
    assert not batch.equals(simulate.digits(DAY1 + dt.timedelta(days=1), 450, seed=5, drifted=False))


def test_consecutive_days_and_the_scoring_files_never_share_an_image():
    def images(frame: pd.DataFrame) -> set[tuple]:
        return set(map(tuple, frame.drop(columns=["image_id"]).to_numpy()))

    day1, day2 = (simulate.digits(DAY1 + dt.timedelta(days=i), 450, seed=5, drifted=False) for i in range(2))
    scored = simulate.digits_scoring(DAY1, 300, seed=5, drifted=False)

    assert not images(day1) & images(day2)  # yesterday's champion has not seen today's holdout
    assert not (images(day1) | images(day2)) & images(scored)


def test_the_first_digits_run_promotes_a_ten_class_model(digits_history: DigitsHistory):
    first = digits_history.summaries[0]

    assert (first["branch"], first["production_after"]) == ("promote", "v0001")
    assert first["metric"] == "accuracy" and first["score"] >= digits_history.config.gates.min_score


def test_runs_on_the_same_distribution_are_not_held_for_drift_nor_refused(digits_history: DigitsHistory):
    same = digits_history.summaries[1:SAME_DAYS]

    assert all(s["drift_verdict"] in ("none", "warn") for s in same), [s["reasons"] for s in same]
    assert [s["branch"] for s in same] == ["promote"] * len(same), [s["reasons"] for s in same]


def test_a_day_of_shifted_scans_is_held_for_drift(digits_history: DigitsHistory):
    shifted = digits_history.summaries[SAME_DAYS]

    assert (shifted["branch"], shifted["drift_verdict"]) == ("hold", "drift")
    assert shifted["production_after"] == digits_history.summaries[SAME_DAYS - 1]["production_after"]


def test_the_digits_model_is_as_accurate_as_plain_scikit_learn_on_the_same_split(
        digits_history: DigitsHistory, monkeypatch: pytest.MonkeyPatch):
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("ML_HOME", str(digits_history.home))
    config = digits_history.config
    for summary in digits_history.summaries[:SAME_DAYS]:
        validated = pd.read_parquet(paths.workspace_dir(config.name, summary["run_id"]) / RunWorkspace.VALIDATED)
        split = fitting.split(validated, config)
        pixels = [f.name for f in config.features]
        baseline = LogisticRegression(max_iter=2000).fit(split.train[pixels], split.train[config.target])
        plain = baseline.score(split.holdout[pixels], split.holdout[config.target])

        assert summary["score"] >= plain - 0.03, (summary["logical_date"], summary["score"], plain)


def test_the_monitoring_page_the_report_and_the_emails_show_a_ten_class_pipeline(digits_history, monkeypatch):
    from include.ml import alerts, monitoring, scoring

    monkeypatch.setenv("ML_HOME", str(digits_history.home))
    config = digits_history.config
    simulate.write_scoring_batches(config, DAY1, 1)
    summaries = [scoring.score_partition(config, str(path), DAY1.isoformat())
                 for path in scoring.partitions(config, DAY1.isoformat())]
    scored = scoring.summarise(config, DAY1.isoformat(), summaries)
    detail = monitoring.pipeline_detail(config)
    page = monitoring.render_pipeline(detail)
    held = digits_history.summaries[-1]
    email = alerts.outcome_email(held)

    assert [r["outcome"] for r in detail["runs"]] == [s["branch"] for s in digits_history.summaries]
    assert f"{digits_history.summaries[0]['score']:.4f}" in page  # the first version's accuracy
    assert scored["rows"] == scored["scored"] and scored["prediction_drift"]["verdict"] == "none"
    assert held["branch"] == "hold" and "not promoted" in email.subject
    assert f"candidate {config.metric}" in email.html
