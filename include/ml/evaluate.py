"""Metrics for a fitted model on holdout rows, and the quality gates a candidate must pass."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from include.ml.config import PipelineConfig

PROBA_PREFIX = "proba_"  # a prediction file's column of one class's probability: proba_<class>


def positive_class(classes: Sequence):
    """The positive class of a binary classifier: the second of its ``classes_``, which scikit-learn
    sorts (numerically for numbers: 10 of 2 and 10; "yes" of "no" and "yes"; 1 of 0 and 1). Raises
    ``ValueError`` when there are not exactly two classes."""
    classes = list(classes)
    if len(classes) != 2:
        raise ValueError(f"a positive class needs a binary classifier; the classes are {classes}")
    return classes[1]


def positive_probability(model, proba: np.ndarray) -> np.ndarray:
    """The column of ``proba`` (``model.predict_proba``) of the model's :func:`positive_class`."""
    return proba[:, list(model.classes_).index(positive_class(model.classes_))]


def proba_column(label) -> str:
    """The prediction-file column holding the probability of class ``label``."""
    return f"{PROBA_PREFIX}{label}"


def proba_classes(columns: Iterable[str]) -> list[str]:
    """The classes of a prediction file's ``proba_<class>`` columns, in the order of ``columns``.

    Scoring writes them in the model's ``classes_`` order, so a file's own column order is the
    model's: ``["2", "10"]``, never the text sort ``["10", "2"]``. Classes come back as text (column
    names are text), comparable with :func:`~include.ml.feature_rules.level_label` of the labels."""
    return [c.removeprefix(PROBA_PREFIX) for c in columns if c.startswith(PROBA_PREFIX)]


def holdout_metrics(model, frame: pd.DataFrame, config: PipelineConfig, feature_names: list[str]) -> dict[str, float]:
    """All metrics of the config's task for ``model`` on ``frame``: roc_auc, accuracy... or rmse, mae, r2."""
    x, y = frame[feature_names], frame[config.target]
    if config.task == "classification":
        predicted = model.predict(x)
        proba = model.predict_proba(x)
        binary = proba.shape[1] == 2
        result = {
            "accuracy": skm.accuracy_score(y, predicted),
            "f1": skm.f1_score(y, predicted, average="binary", pos_label=positive_class(model.classes_)) if binary
            else skm.f1_score(y, predicted, average="macro"),
        }
        if binary:
            positive = positive_probability(model, proba)
            is_positive = (y == positive_class(model.classes_)).to_numpy()
            result["roc_auc"] = skm.roc_auc_score(is_positive, positive)
            result["average_precision"] = skm.average_precision_score(is_positive, positive)
        else:
            result["roc_auc"] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=model.classes_)
        result["log_loss"] = skm.log_loss(y, proba, labels=model.classes_)
    else:
        predicted = model.predict(x)
        result = {
            "rmse": float(np.sqrt(skm.mean_squared_error(y, predicted))),
            "mae": skm.mean_absolute_error(y, predicted),
            "r2": skm.r2_score(y, predicted),
        }
    return {k: float(v) for k, v in result.items()}


def metric_inputs(model, frame: pd.DataFrame, config: PipelineConfig, feature_names: list[str]) -> np.ndarray:
    """What the primary metric is computed from, per holdout row: the positive-class probability
    (roc_auc, average_precision), the class probabilities (log_loss), or the prediction."""
    x = frame[feature_names]
    if config.metric in ("roc_auc", "average_precision"):
        return positive_probability(model, model.predict_proba(x))
    if config.metric == "log_loss":
        return model.predict_proba(x)
    return np.asarray(model.predict(x))


def prediction_values(model, x: pd.DataFrame, task: str) -> np.ndarray:
    """One number per row to watch for prediction drift: the probability of the model's
    :func:`positive_class`, or a regressor's prediction."""
    if task == "classification":
        return positive_probability(model, model.predict_proba(x))
    return np.asarray(model.predict(x), dtype=float)


def metric_value(metric: str, y: np.ndarray, inputs: np.ndarray, positive=None) -> float:
    """The metric ``metric`` of outputs ``inputs`` against truth ``y`` (see :func:`metric_inputs`)."""
    if metric == "roc_auc":
        return float(skm.roc_auc_score(y == positive, inputs))
    if metric == "average_precision":
        return float(skm.average_precision_score(y == positive, inputs))
    if metric == "log_loss":
        return float(skm.log_loss(y == positive, inputs[:, 1]) if inputs.shape[1] == 2 else skm.log_loss(y, inputs))
    if metric == "accuracy":
        return float(skm.accuracy_score(y, inputs))
    if metric == "f1":
        return float(skm.f1_score(y, inputs, pos_label=positive))
    if metric == "rmse":
        return float(np.sqrt(np.mean((y - inputs) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(y - inputs)))
    return float(skm.r2_score(y, inputs))


def _auc_rows(is_positive: np.ndarray, scores: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample at once (Mann-Whitney U from tie-averaged ranks); NaN where a
    resample holds one class only."""
    from scipy.stats import rankdata

    labels = is_positive[samples]
    ranks = rankdata(scores[samples], axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((ranks * labels).sum(axis=1) - positives * (positives + 1) / 2) / (positives * negatives)


def paired_bootstrap(y: np.ndarray, candidate: np.ndarray, champion: np.ndarray, config: PipelineConfig,
                     positive=None) -> dict:
    """Confidence interval of (candidate - champion) on the primary metric, resampling the same rows
    for both (seeded). Resamples a metric cannot be computed on (one class only) are skipped."""
    gates = config.gates
    rng = np.random.default_rng(gates.bootstrap_seed)
    y = np.asarray(y)
    differences: list[float] = []
    # resamples in blocks: memory stays ~ block x rows, not resamples x rows
    block = max(1, min(gates.bootstrap_resamples, 5_000_000 // max(len(y), 1)))
    for start in range(0, gates.bootstrap_resamples, block):
        samples = rng.integers(0, len(y), (min(block, gates.bootstrap_resamples - start), len(y)))
        if config.metric == "roc_auc":
            is_positive = y == positive
            found = _auc_rows(is_positive, candidate, samples) - _auc_rows(is_positive, champion, samples)
            differences.extend(float(d) for d in found if np.isfinite(d))
            continue
        for rows in samples:
            try:
                differences.append(metric_value(config.metric, y[rows], candidate[rows], positive)
                                   - metric_value(config.metric, y[rows], champion[rows], positive))
            except ValueError:
                continue
    tail = (1 - gates.confidence) / 2
    lower, upper = np.quantile(differences, [tail, 1 - tail]) if differences else (np.nan, np.nan)
    return {
        "difference": metric_value(config.metric, y, candidate, positive)
        - metric_value(config.metric, y, champion, positive),
        "lower": float(lower), "upper": float(upper), "confidence": gates.confidence,
        "resamples": len(differences), "seed": gates.bootstrap_seed,
    }


def quality_gates(candidate: float, champion: float | None, config: PipelineConfig,
                  interval: dict | None = None) -> dict:
    """Decide whether a candidate passes the absolute gate and the champion/challenger gate.

    With a bootstrap ``interval`` of (candidate - champion), the candidate must not be worse than
    production by more than ``max_regression`` at the interval's pessimistic end; without one the
    point difference is used. For losses (rmse, mae, log_loss) lower is better: ``min_score`` is a
    ceiling and the interval is read the other way round. Returns ``{"passed", "reasons", "delta"}``.
    """
    gates, better = config.gates, config.greater_is_better
    sign = 1.0 if better else -1.0
    reasons = []
    meets_floor = sign * (candidate - gates.min_score) >= 0
    if not meets_floor:
        bound = "at least" if better else "at most"
        reasons.append(f"{config.metric} {candidate:.4g} is not {bound} the minimum {gates.min_score:g}")
    delta = None
    if champion is not None:
        delta = candidate - champion
        if interval is not None and not np.isfinite(interval["lower"]):
            reasons.append(f"cannot compare with production: no bootstrap resample of the {config.metric} "
                           "difference could be computed (the holdout is too small or holds one class)")
        elif interval is not None:
            # the pessimistic end of the interval, as an improvement (positive = better)
            worst = interval["lower"] if better else -interval["upper"]
            if not worst > -gates.max_regression:
                reasons.append(
                    f"{config.metric} {candidate:.4g} vs production's {champion:.4g}: the "
                    f"{interval['confidence']:.0%} interval of the improvement reaches {worst:+.4g}, "
                    f"not above the allowed regression -{gates.max_regression:g}"
                )
        elif sign * delta < -gates.max_regression:
            reasons.append(
                f"{config.metric} {candidate:.4g} is worse than production's {champion:.4g} by "
                f"{abs(delta):.4g}, more than the allowed {gates.max_regression:g}"
            )
    return {"passed": not reasons, "reasons": reasons, "delta": delta, "interval": interval}
