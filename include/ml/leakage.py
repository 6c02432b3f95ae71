"""The target-leakage guard: a score no real model reaches, or one feature that alone predicts the target.

Either holds a candidate (a person decides) with "possible target leakage in X". A feature's
strength with the target is measured on the holdout rows, in one vectorised pass per kind:

- classification: ROC AUC, as max(auc, 1 - auc), of the raw numeric feature, and of every feature's
  levels encoded by their class rate (binary: of the positive class; multiclass: one-vs-rest macro).
  The rates are cross-fitted (learnt on one half of the rows, applied to the other), so a column of
  unique values (an id, a timestamp) scores 0.5, not a perfect 1.0 on the rows it was learnt from;
- regression: |Pearson correlation| with the target of the raw numeric feature, or of the levels'
  cross-fitted target mean for the other kinds.

The cost is bounded: at most :data:`MAX_CELLS` rows x features are looked at (a seeded sample of rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.feature_rules import level_label

BEST_POSSIBLE = {"roc_auc": 1.0, "accuracy": 1.0, "balanced_accuracy": 1.0, "f1": 1.0, "average_precision": 1.0,
                 "r2": 1.0, "rmse": 0.0, "mae": 0.0, "log_loss": 0.0}
PERFECT_TOLERANCE = 1e-9
MAX_CELLS = 5_000_000  # rows x features looked at, at most
MIN_CLASS_ROWS = 5  # a feature's AUC needs at least this many rows of each side (non-missing)
MIN_ROWS = 20  # a correlation needs at least this many non-missing rows
SEED = 0


def is_perfect(metric: str, score: float) -> bool:
    """Whether ``score`` is the best value ``metric`` can take (within :data:`PERFECT_TOLERANCE`)."""
    return abs(score - BEST_POSSIBLE[metric]) <= PERFECT_TOLERANCE


def _column_auc(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """max(auc, 1 - auc) of every column of ``scores`` (rows x columns, NaN = missing, left out)
    against the same column of boolean ``truth``; NaN where a column has too few rows of a side."""
    from scipy.stats import rankdata

    present = ~np.isnan(scores)
    ranks = rankdata(scores, axis=0, nan_policy="omit")
    positives = (truth & present).sum(axis=0)
    negatives = (~truth & present).sum(axis=0)
    u = np.where(truth & present, ranks, 0.0).sum(axis=0) - positives * (positives + 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = u / (positives * negatives)
    auc = np.where((positives >= MIN_CLASS_ROWS) & (negatives >= MIN_CLASS_ROWS), auc, np.nan)
    return np.maximum(auc, 1 - auc)


def _column_correlation(values: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Pearson correlation| of every column of ``values`` (NaN = missing, left out per column)
    with ``y``; NaN for a constant column or too few rows."""
    present = ~np.isnan(values)
    count = present.sum(axis=0)
    x = np.where(present, values, 0.0)
    ys = np.where(present, y[:, None], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = x.sum(axis=0) / count, ys.sum(axis=0) / count
        dx, dy = np.where(present, x - mx, 0.0), np.where(present, ys - my, 0.0)
        r = (dx * dy).sum(axis=0) / np.sqrt((dx ** 2).sum(axis=0) * (dy ** 2).sum(axis=0))
    return np.where(count >= MIN_ROWS, np.abs(r), np.nan)


def _cross_fitted(levels: pd.Series, targets: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Every row's level encoded by the mean of ``targets`` (rows x k) over the rows of the other
    ``fold`` with the same level; a level the other fold lacks gets that fold's overall mean."""
    encoded = np.empty(targets.shape)
    codes = pd.Series(pd.factorize(levels, use_na_sentinel=False)[0], index=levels.index).to_numpy()
    for side in (False, True):
        learn, apply = fold != side, fold == side
        table = pd.DataFrame(targets[learn]).groupby(codes[learn]).mean()
        fallback = targets[learn].mean(axis=0)
        found = table.reindex(codes[apply]).to_numpy()
        encoded[apply] = np.where(np.isnan(found), fallback, found)
    return encoded


def feature_strengths(frame: pd.DataFrame, features: list[FeatureSpec], config: PipelineConfig) -> dict[str, float]:
    """How well each feature alone predicts ``config.target`` on ``frame`` (see the module): ROC AUC
    for classification, |correlation| for regression. Features it cannot be measured for are left out."""
    frame = frame[frame[config.target].notna()]
    names = [f.name for f in features if f.name in frame.columns]
    if not names or len(frame) < MIN_ROWS:
        return {}
    rng = np.random.default_rng(SEED)
    rows = min(len(frame), max(1_000, MAX_CELLS // len(names)))
    if rows < len(frame):
        frame = frame.iloc[np.sort(rng.choice(len(frame), rows, replace=False))]
    fold = rng.permutation(len(frame)) % 2 == 1
    kinds = {f.name: f.type for f in features}
    numeric = [n for n in names if kinds[n] == "numeric"]
    values = frame[numeric].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float) if numeric else None
    classification = config.task == "classification"
    if classification:
        labels = np.array([level_label(v) for v in frame[config.target]], dtype=object)
        classes = sorted(set(labels))
        if len(classes) < 2:
            return {}
        binary = len(classes) == 2
        if binary and config.positive_label is not None:
            judged = [level_label(config.positive_label)]
        else:
            judged = [classes[1]] if binary else classes
        targets = np.column_stack([labels == c for c in judged])
    else:
        y = pd.to_numeric(frame[config.target], errors="coerce").to_numpy(dtype=float)
        targets = y[:, None]
    strength: dict[str, float] = {}
    if numeric:
        if classification:  # one-vs-rest macro over the judged classes
            per_class = np.stack([_column_auc(values, targets[:, [k]]) for k in range(targets.shape[1])])
            raw = per_class.mean(axis=0)
        else:
            raw = _column_correlation(values, y)
        strength.update({n: float(v) for n, v in zip(numeric, raw, strict=True) if np.isfinite(v)})
    # levels: every non-numeric feature, and numeric ones of a multiclass target (a class code as a number)
    encoded_names = [n for n in names if kinds[n] != "numeric" or (classification and len(judged) > 2)]
    for name in encoded_names:
        levels = frame[name].map(lambda v: None if pd.isna(v) else level_label(v))
        encoded = _cross_fitted(levels, targets.astype(float), fold)
        if classification:
            per_class = _column_auc(encoded, targets)  # column k: class k's rate against class k
            value = float(np.mean(per_class[np.isfinite(per_class)])) if np.isfinite(per_class).any() else np.nan
        else:
            value = float(_column_correlation(encoded, y)[0])
        if np.isfinite(value):
            strength[name] = max(value, strength.get(name, value))
    return strength


def leakage_reasons(frame: pd.DataFrame, features: list[FeatureSpec], config: PipelineConfig,
                    score: float) -> list[str]:
    """The reasons to hold a candidate for possible target leakage: its ``score`` on the holdout
    ``frame`` is perfect, or features reach ``gates.leakage_threshold`` alone (strongest first)."""
    threshold = config.gates.leakage_threshold
    reasons = []
    if is_perfect(config.metric, score):
        reasons.append(
            f"possible target leakage in the model's score: {config.metric} {score:.6g} on {len(frame)} holdout rows "
            "is the best possible value, which real data does not give; check that no feature is computed from the "
            "target or known only after the outcome, then drop it from features (or promote by hand if it is "
            "genuine)")
    measure = "ROC AUC" if config.task == "classification" else "|correlation|"
    found = sorted(((v, n) for n, v in feature_strengths(frame, features, config).items() if v >= threshold),
                   reverse=True)
    for value, name in found:
        reasons.append(
            f"possible target leakage in {name}: alone it reaches {measure} {value:.4f} with the target on the "
            f"holdout (gates.leakage_threshold {threshold:g}); check that {name} is known before the outcome, then "
            "drop it from features (or promote by hand if it is genuine)")
    return reasons
