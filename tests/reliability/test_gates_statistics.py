"""The champion/challenger gate at real sizes (issue 16): a stream of one distribution with about 3%
positives and 2,500 rows a day, a 7-day training window and credit_default's gate, through every step.

Equal-quality retrains are not frozen out: after the first week at most 1 run in 10 is rejected, over
5 seeds of 20 days. A candidate whose true ROC AUC (on 50,000 fresh rows of the same generator) is at
least 0.05 below the champion's is rejected by the comparison every time.

The stream is credit_default's generator with its intercept shifted: keeping each positive row with
probability ``POSITIVE_KEEP`` (and every negative) adds ``log(POSITIVE_KEEP)`` to the logit of every
row and leaves the features' class-conditional distributions as they were, so the batches are one
distribution, only rarer in defaults. CPU-heavy (100 runs of HistGradientBoosting on about 12k rows
and a 1,000-resample paired bootstrap each): 6 to 7 minutes on a loaded 2-core machine. Run with ``-s``
to see each seed's branches, interval lower ends and the degraded candidate's true gap.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from include.ml import fitting, simulate, steps
from include.ml.config import PipelineConfig
from include.ml.paths import PIPELINES_DIR

pytestmark = pytest.mark.reliability

ROWS_PER_DAY = 2500
WINDOW = 7  # model.window_batches
DAYS = 20
SEEDS = (101, 202, 303, 404, 505)
FIRST_WEEK = 7  # runs of days 1-7 train on a window still filling up: not counted
DEGRADED_DAY = 14  # per seed, this day's candidate is trained without two informative features' signal
FRESH_ROWS = 50_000  # rows from the same generator the true AUC of champion and candidate is measured on
MIN_TRUE_GAP = 0.05
MAX_REJECTED_SHARE = 0.1
START = dt.date(2026, 3, 1)

# credit_default's generator gives about 13% positives; keeping this share of them gives about 3.2% (a day of
# these seeds: 2.4% to 4.4%, above credit_default's validation.min_class_share of 2%)
POSITIVE_KEEP = 0.22
# two informative features of credit_default's generator: shuffled in the training rows, they leave a
# candidate about 0.1 AUC worse than the champion and still above gates.min_score (0.70), so only the
# comparison with the champion can reject it
SHUFFLED = ("utilization", "late_payments_12m")


def stream_batch(day: dt.date, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``day`` from the 3%-positive stream (credit_default's columns; ids unique per day)."""
    drawn = math.ceil(rows / (0.85 + 0.15 * POSITIVE_KEEP) * 1.1) + 50
    frame = simulate.credit_default(day, drawn, seed=seed, drifted=False)
    keep = np.random.default_rng([seed, day.toordinal(), 16]).random(len(frame)) < POSITIVE_KEEP
    frame = frame[(frame["default"] == 0) | keep].head(rows).reset_index(drop=True)
    assert len(frame) == rows
    return frame


def window_config() -> PipelineConfig:
    """credit_default as shipped (features as declared, its gate) with a 7-day training window."""
    raw = yaml.safe_load((PIPELINES_DIR / "credit_default.yaml").read_text())
    raw["model"]["window_batches"] = WINDOW
    return PipelineConfig.model_validate(raw)


def true_auc(model, frame: pd.DataFrame, config: PipelineConfig) -> float:
    from sklearn.metrics import roc_auc_score

    names = [f.name for f in config.features]
    proba = model.predict_proba(frame[names])[:, list(model.classes_).index(1)]
    return float(roc_auc_score(frame[config.target] == 1, proba))


def fit_without_signal(real_fit):
    """``fitting.fit`` on training rows whose :data:`SHUFFLED` columns are shuffled (each keeps its
    values, loses its link to the target): a candidate clearly worse than one trained on the same rows."""
    def fit(train: pd.DataFrame, config: PipelineConfig, features):
        scrambled = train.copy()
        rng = np.random.default_rng(0)
        for name in SHUFFLED:
            scrambled[name] = rng.permutation(scrambled[name].to_numpy())
        return real_fit(scrambled, config, features)

    return fit


@dataclass
class SeedResult:
    seed: int
    branches: dict[int, str] = field(default_factory=dict)  # day number -> branch of the run
    lower: dict[int, float | None] = field(default_factory=dict)  # day number -> interval's lower end
    reasons: dict[int, list[str]] = field(default_factory=dict)
    degraded_gap: float | None = None  # champion's true AUC minus the degraded candidate's
    degraded_branch: str | None = None
    degraded_lower: float | None = None
    degraded_score: float | None = None  # its roc_auc on the holdout

    @property
    def counted(self) -> list[int]:
        return [d for d in self.branches if d > FIRST_WEEK and d != DEGRADED_DAY]

    @property
    def rejected(self) -> list[int]:
        return [d for d in self.counted if self.branches[d] == "reject"]


def run_stream(seed: int, home: Path, monkeypatch: pytest.MonkeyPatch) -> SeedResult:
    monkeypatch.setenv("ML_HOME", str(home))
    config = window_config()
    registry = steps.registry_for(config)
    result = SeedResult(seed)
    for number in range(1, DAYS + 1):
        day = START + dt.timedelta(days=number - 1)
        ds = day.isoformat()
        landing = config.source.path_for(ds)
        landing.parent.mkdir(parents=True, exist_ok=True)
        stream_batch(day, ROWS_PER_DAY, seed).to_csv(landing, index=False)
        with monkeypatch.context() as patch:
            if number == DEGRADED_DAY:
                patch.setattr(fitting, "fit", fit_without_signal(fitting.fit))
            results = steps.run_steps(config, f"scheduled__{ds}T00:00:00+00:00", ds)
        decision, evaluation, outcome = results["drift_check"], results["evaluate"], results["conclude"]
        interval = evaluation["gates"].get("interval") or {}
        result.branches[number] = decision["branch"]
        result.lower[number] = interval.get("lower")
        result.reasons[number] = decision["reasons"]
        if number == DEGRADED_DAY:
            fresh = stream_batch(dt.date(2030, 1, 1), FRESH_ROWS, seed + 1)
            champion = registry.load(evaluation["champion_version"])
            candidate = registry.load(outcome["version"])
            result.degraded_gap = true_auc(champion, fresh, config) - true_auc(candidate, fresh, config)
            result.degraded_branch, result.degraded_lower = decision["branch"], interval.get("lower")
            result.degraded_score = evaluation["score"]
    return result


def test_equal_retrains_pass_the_gate_and_a_clearly_worse_candidate_is_rejected_every_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = window_config()
    results = [run_stream(seed, tmp_path / f"seed{seed}", monkeypatch) for seed in SEEDS]
    table = "\n".join(
        f"seed {r.seed}: rejected days {r.rejected} of {len(r.counted)}; branches "
        f"{''.join(r.branches[d][0] for d in sorted(r.branches))}; lower ends after week 1 "
        f"{[round(r.lower[d], 3) for d in r.counted if r.lower[d] is not None]}; degraded day: gap "
        f"{r.degraded_gap:.3f}, holdout roc_auc {r.degraded_score:.3f}, {r.degraded_branch}, lower "
        f"{r.degraded_lower:.3f}, reasons {r.reasons[DEGRADED_DAY]}; rejections (any day) "
        f"{ {d: r.reasons[d] for d in r.branches if r.branches[d] == 'reject' and d != DEGRADED_DAY} }"
        for r in results)
    print(table)

    counted = sum(len(r.counted) for r in results)
    rejected = sum(len(r.rejected) for r in results)
    assert counted == len(SEEDS) * (DAYS - FIRST_WEEK - 1)
    assert rejected <= MAX_REJECTED_SHARE * counted, table
    for r in results:
        assert r.degraded_gap >= MIN_TRUE_GAP, table
        assert r.degraded_branch == "reject", table
        # rejected by the comparison with production, not only by the absolute minimum
        assert r.degraded_lower is not None and r.degraded_lower <= -config.gates.max_regression, table
