"""Estimated performance without labels (confidence-based performance estimation, CBPE): a calibration
of a classifier's probabilities fitted on its holdout at training, and the metric the calibrated
probabilities of a scored batch lead one to expect.

If the calibrated probability of a row is ``p``, the row is positive with probability ``p``: summed over a
batch, the calibrated probabilities give the expected confusion matrix at every threshold, hence the
expected ROC curve (ROC AUC) and the expected share of correct predictions (accuracy). Multiclass: one
calibration per class (one-vs-rest, rows renormalised) and the macro one-vs-rest mean, as
:mod:`include.ml.evaluate` measures it.

This holds while the relation between features and target stays what the holdout showed (covariate
shift only). When it changes (concept drift) the estimate misses, and the gap to the realised metric,
once labels arrive, is the signal (:mod:`include.ml.performance` records both).

Regression gets no estimate: a regressor gives no distribution of its error per row to take an
expectation of (see docs/estimated-performance.md).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from include.ml.errors import InputDataError
from include.ml.feature_rules import level_label

ESTIMATED_METRICS = ("roc_auc", "accuracy")  # what CBPE estimates here; the primary metric among them is judged
# isotonic calibration (any monotone shape) needs this many holdout rows on each side of every class, else
# Platt (a sigmoid of the logit, two numbers): on a 1,000-row holdout with ~250 positives isotonic overfits
# (estimation error up to 0.032 where Platt gave 0.013, tests/reliability/test_estimation_statistics.py)
ISOTONIC_MIN_ROWS = 500
INTERVAL_CONFIDENCE = 0.95  # of the interval a realised metric of a batch this size falls in
ECE_BINS = 10  # equal-width bins of the expected calibration error


class CalibrationError(InputDataError):
    """A stored calibration does not fit the probabilities it is applied to (other classes, bad shape)."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _fit_one(p: np.ndarray, truth: np.ndarray, method: str) -> dict:
    """One class's map from raw to calibrated probability: isotonic breakpoints or Platt's two numbers."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, truth.astype(float))
        return {"x": [float(v) for v in iso.X_thresholds_], "y": [float(v) for v in iso.y_thresholds_]}
    from sklearn.linear_model import LogisticRegression

    platt = LogisticRegression(C=1e6).fit(_logit(p)[:, None], truth.astype(int))
    return {"a": float(platt.coef_[0, 0]), "b": float(platt.intercept_[0])}


def _apply_one(mapping: dict, p: np.ndarray) -> np.ndarray:
    if "x" in mapping:
        return np.interp(p, mapping["x"], mapping["y"])
    return 1.0 / (1.0 + np.exp(-np.clip(mapping["a"] * _logit(p) + mapping["b"], -500, 500)))


def _indicator(y: np.ndarray, classes: list) -> np.ndarray:
    """Row x class indicator of ``y`` (compared as text) against ``classes``."""
    text = np.array([level_label(v) for v in y], dtype=object)
    return np.column_stack([text == level_label(c) for c in classes])


def _columns(proba: np.ndarray) -> list[int]:
    """The columns calibrated: the positive class's (column 1) of a binary model, every class's otherwise."""
    return [1] if proba.shape[1] == 2 else list(range(proba.shape[1]))


def choose_method(truth: np.ndarray) -> str:
    """``isotonic`` (no shape assumed) when every calibrated column has :data:`ISOTONIC_MIN_ROWS` rows of
    each side, else ``platt`` (two numbers, steady on few rows); ``truth`` is the row x column indicator."""
    fewest = min(int(truth.sum(axis=0).min()), int((~truth).sum(axis=0).min()))
    return "isotonic" if fewest >= ISOTONIC_MIN_ROWS else "platt"


def fit_calibration(y: np.ndarray, proba: np.ndarray, classes: list, method: str | None = None) -> dict:
    """Fit the calibration of ``proba`` (rows x classes, in ``classes`` order: a model's
    ``predict_proba`` on its holdout) to the holdout's targets ``y``. ``method``: ``isotonic``,
    ``platt`` or None (:func:`choose_method`). Returns the JSON a version stores: method, classes (as
    text), one map per calibrated column, the holdout's rows and its expected calibration error before
    (``ece``) and after calibration (``ece_calibrated``, two-fold cross-fitted so it is not judged on
    the rows it was fitted on)."""
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != len(classes) or len(classes) < 2:
        raise CalibrationError(f"probabilities of shape {proba.shape} do not fit the classes {classes}")
    columns = _columns(proba)
    truth = _indicator(np.asarray(y), classes)
    method = method or choose_method(truth[:, columns])
    maps = [_fit_one(proba[:, c], truth[:, c], method) for c in columns]
    calibration = {"method": method, "classes": [level_label(c) for c in classes], "maps": maps,
                   "holdout_rows": len(proba), "ece": expected_calibration_error(truth, proba)}
    halves = np.arange(len(proba)) % 2 == 0
    crossed = np.empty_like(proba)
    for fit_on in (halves, ~halves):
        part = {**calibration, "maps": [_fit_one(proba[fit_on, c], truth[fit_on, c], method) for c in columns]}
        crossed[~fit_on] = calibrate(part, proba[~fit_on])
    calibration["ece_calibrated"] = expected_calibration_error(truth, crossed)
    return calibration


def calibrate(calibration: dict, proba: np.ndarray) -> np.ndarray:
    """``proba`` (rows x classes in the calibration's class order) through the stored maps; multiclass
    rows are renormalised to sum to one. :class:`CalibrationError` when the shapes differ."""
    proba = np.asarray(proba, dtype=float)
    classes = calibration["classes"]
    if proba.ndim != 2 or proba.shape[1] != len(classes) or len(calibration["maps"]) != len(_columns(proba)):
        raise CalibrationError(f"probabilities of shape {proba.shape} do not fit the calibration of classes "
                               f"{classes} ({len(calibration['maps'])} maps): was it stored by another version?")
    if proba.shape[1] == 2:
        positive = np.clip(_apply_one(calibration["maps"][0], proba[:, 1]), 0.0, 1.0)
        return np.column_stack([1 - positive, positive])
    out = np.column_stack([_apply_one(m, proba[:, i]) for i, m in enumerate(calibration["maps"])])
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), proba)


def expected_calibration_error(truth: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """The expected calibration error of the predicted class's probability: over equal-width bins of
    that probability, the row-weighted gap between the mean probability and the share predicted right.
    ``truth``: row x class indicator, ``proba`` in the same column order."""
    predicted = np.argmax(proba, axis=1)
    confidence = proba[np.arange(len(proba)), predicted]
    right = truth[np.arange(len(proba)), predicted].astype(float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    gaps = np.abs(np.bincount(which, confidence, bins) - np.bincount(which, right, bins))
    return float(gaps.sum() / max(counts.sum(), 1))


def expected_auc(scores: np.ndarray, p: np.ndarray) -> float | None:
    """The ROC AUC one expects of rows ranked by ``scores`` (the model's raw score) whose chance of being
    positive is ``p`` (calibrated): the trapezoid under the curve of expected true and false positive
    rates at every distinct score. None when the expected positives or negatives are zero."""
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1)  # the last row of each tie
    tp = np.cumsum(p[order])[ends]
    fp = np.cumsum(1.0 - p[order])[ends]
    if len(tp) == 0 or tp[-1] <= 0 or fp[-1] <= 0:
        return None
    tpr, fpr = np.concatenate([[0.0], tp / tp[-1]]), np.concatenate([[0.0], fp / fp[-1]])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _auc_standard_error(auc: float, positives: float, negatives: float) -> float:
    """Hanley and McNeil's standard error of a ROC AUC measured on this many positives and negatives."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) \
        / max(positives * negatives, 1.0)
    return float(np.sqrt(max(variance, 0.0)))


def estimate(calibration: dict, proba: np.ndarray, confidence: float = INTERVAL_CONFIDENCE) -> dict:
    """The expected ROC AUC and accuracy of a batch from its raw probabilities ``proba`` (rows x classes,
    in the calibration's class order) and the stored ``calibration``, each with the interval a realised
    value of a batch this size falls in at ``confidence`` (normal approximation: Hanley-McNeil for ROC
    AUC with the expected class counts, binomial for accuracy; multiclass ROC AUC takes the mean of the
    classes' standard errors, which assumes they move together: wider, never narrower).

    Returns ``{"rows", "method", "metrics": {name: {"value", "lower", "upper"}}}``; a metric that cannot
    be expected (no expected positive) has value None."""
    proba = np.asarray(proba, dtype=float)
    calibrated = calibrate(calibration, proba)
    rows = len(proba)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    predicted = np.argmax(proba, axis=1)  # what scoring predicts: the raw arg-max
    accuracy = float(calibrated[np.arange(rows), predicted].mean()) if rows else None
    aucs, errors = [], []
    for column in _columns(proba):
        value = expected_auc(proba[:, column], calibrated[:, column]) if rows else None
        if value is None:
            continue
        positives = float(calibrated[:, column].sum())
        aucs.append(value)
        errors.append(_auc_standard_error(value, positives, rows - positives))
    auc = float(np.mean(aucs)) if aucs else None

    def bounded(value: float | None, error: float) -> dict:
        if value is None:
            return {"value": None, "lower": None, "upper": None}
        return {"value": value, "lower": max(0.0, value - z * error), "upper": min(1.0, value + z * error)}

    return {"rows": rows, "method": calibration["method"], "confidence": confidence, "metrics": {
        "roc_auc": bounded(auc, float(np.mean(errors)) if errors else 0.0),
        "accuracy": bounded(accuracy, float(np.sqrt(accuracy * (1 - accuracy) / rows)) if rows else 0.0),
    }}


def estimated_performance(config, metadata: dict, proba: np.ndarray | None) -> dict:
    """The estimate of one model version's scored rows, judged like a realised metric
    (:func:`include.ml.performance.judge`: ``performance.floor`` and ``performance.max_drop`` against the
    version's validation score, ``performance.min_rows``). ``metadata``: the version's registry metadata
    (its ``calibration`` and ``metrics``); ``proba``: the rows' raw probabilities in its class order.

    Returns ``metric``, ``value``, ``lower``, ``upper`` (of the primary metric), ``estimates`` (every
    estimated metric), ``rows``, ``method``, ``validation_score``, ``status`` (as a realised record's, or
    ``not_estimated``) and ``reasons``."""
    from include.ml.performance import judge

    record = {"metric": config.metric, "value": None, "lower": None, "upper": None, "estimates": {},
              "rows": 0 if proba is None else len(proba), "method": None,
              "validation_score": (metadata.get("metrics") or {}).get(config.metric),
              "floor": config.performance_floor, "max_drop": config.performance.max_drop}
    calibration = metadata.get("calibration")
    if config.task != "classification":
        why = "regression: a regressor gives no per-row distribution of its error to estimate a metric from"
    elif not calibration:
        why = f"{metadata.get('version', 'this version')} was registered without a calibration (before estimation)"
    elif proba is None or not len(proba):
        why = "no scored rows of this version"
    else:
        why = None
    if why:
        return {**record, "status": "not_estimated", "reasons": [why]}
    found = estimate(calibration, proba)
    record.update(estimates=found["metrics"], method=found["method"], confidence=found["confidence"])
    if config.metric not in ESTIMATED_METRICS:
        why = f"the primary metric {config.metric} is not estimated (only {', '.join(ESTIMATED_METRICS)})"
        return {**record, "status": "not_estimated", "reasons": [why]}
    record.update(found["metrics"][config.metric])
    status, reasons = judge(config, record["value"], record["validation_score"], record["rows"])
    return {**record, "status": status, "reasons": [f"estimated {r}" for r in reasons]}
