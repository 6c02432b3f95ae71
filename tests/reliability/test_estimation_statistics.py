"""Estimated against realised ROC AUC (issue 21) on streams built here, with the pipeline's own model
(credit_default's estimator and preprocessing, :func:`include.ml.fitting.fit`) and the calibration a
version stores (:func:`include.ml.estimation.fit_calibration` on its holdout).

Covariate drift only: the features' distributions move from date to date (a shifted mean, a wider
spread, a skewed uniform) while the label rule ``P(y | x)`` stays the same, so the calibration learnt on
the holdout still holds. Ten scoring dates of 2,000 rows, at least 10% positives each: the mean
absolute difference between the estimated and the realised ROC AUC is at most 0.03 for each of three
seeds with a 1,000-row holdout, and at most 0.02 with a 6,000-row one.

Concept drift: from the fifth date the label rule changes (one feature's effect reverses). The inputs
look the same to the model, the estimate stays where it was, the realised AUC falls: the estimation
error on those dates is many times the covariate-drift one.

(The shipped generator is not used: its drift also changes how a new level relates to the target,
which is concept drift.) About 20 s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from include.ml import estimation, fitting
from include.ml.config import FeatureSpec, get_pipeline

pytestmark = pytest.mark.reliability

FEATURES = ["x1", "x2", "x3", "x4", "noise"]
SEEDS = (11, 22, 33)
DATES, BATCH_ROWS, TRAIN_ROWS = 10, 2_000, 4_000
SMALL_HOLDOUT, LARGE_HOLDOUT = 1_000, 6_000
CONCEPT_FROM = 5  # the date from which the label rule changes in the concept-drift stream


def batch(rng: np.random.Generator, rows: int, drift: float = 0.0, concept: bool = False) -> pd.DataFrame:
    """``rows`` rows whose features drift by ``drift`` (0: the training distribution); the label is drawn
    from the same logistic rule, or with ``concept`` from a rule where x1 works the other way."""
    x = pd.DataFrame({
        "x1": rng.normal(drift, 1.0, rows), "x2": rng.normal(-drift / 2, 1.0 + drift / 3, rows),
        "x3": rng.uniform(0, 1, rows) ** (1 + drift), "x4": rng.normal(0, 1, rows), "noise": rng.normal(0, 1, rows)})
    effect = -1.1 if concept else 1.1
    logit = -1.6 + effect * x["x1"] - 0.8 * x["x2"] + 1.4 * (x["x3"] > 0.6) + 0.3 * x["x4"] ** 2
    x["y"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return x


@pytest.fixture(scope="module")
def config():
    base = get_pipeline("credit_default")
    return base.model_copy(update={"features": [FeatureSpec(name=f, type="numeric") for f in FEATURES],
                                   "target": "y"})


def errors(config, seed: int, holdout_rows: int, concept: bool = False) -> tuple[list[float], list[float]]:
    """Per scoring date: |estimated - realised| ROC AUC, and the share of positives."""
    rng = np.random.default_rng(seed)
    model = fitting.fit(batch(rng, TRAIN_ROWS), config, config.features)
    holdout = batch(rng, holdout_rows)
    calibration = estimation.fit_calibration(holdout["y"].to_numpy(), model.predict_proba(holdout[FEATURES]),
                                             list(model.classes_))
    gaps, positives = [], []
    for day in range(DATES):
        scored = batch(rng, BATCH_ROWS, drift=0.1 * day, concept=concept and day >= CONCEPT_FROM)
        proba = model.predict_proba(scored[FEATURES])
        estimated = estimation.estimate(calibration, proba)["metrics"]["roc_auc"]["value"]
        gaps.append(abs(estimated - roc_auc_score(scored["y"], proba[:, 1])))
        positives.append(float(scored["y"].mean()))
    return gaps, positives


@pytest.mark.parametrize(("holdout_rows", "bound"), [(SMALL_HOLDOUT, 0.03), (LARGE_HOLDOUT, 0.02)])
def test_under_covariate_drift_the_estimate_follows_the_realised_auc(config, holdout_rows, bound):
    for seed in SEEDS:
        gaps, positives = errors(config, seed, holdout_rows)
        assert min(positives) >= 0.10, f"seed {seed}: a batch has {min(positives):.1%} positives"
        print(f"seed {seed}, holdout {holdout_rows}: mean |estimated - realised| {np.mean(gaps):.4f}")
        assert np.mean(gaps) <= bound, f"seed {seed}: mean error {np.mean(gaps):.4f} above {bound}"


def test_under_concept_drift_the_estimate_misses_and_the_error_shows_it(config):
    for seed in SEEDS:
        gaps, _ = errors(config, seed, LARGE_HOLDOUT, concept=True)
        before, after = np.mean(gaps[:CONCEPT_FROM]), np.mean(gaps[CONCEPT_FROM:])
        print(f"seed {seed}: mean error {before:.4f} before the label rule changed, {after:.4f} after")
        assert before <= 0.02 and after >= 0.1 and after >= 5 * before
