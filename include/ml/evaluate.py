"""Metrics for a fitted model on holdout rows, and the quality gates a candidate must pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from include.ml.config import PipelineConfig


def score(model, frame: pd.DataFrame, config: PipelineConfig, feature_names: list[str]) -> dict[str, float]:
    """All metrics of the config's task for ``model`` on ``frame``: roc_auc, accuracy... or rmse, mae, r2."""
    x, y = frame[feature_names], frame[config.target]
    if config.task == "classification":
        predicted = model.predict(x)
        proba = model.predict_proba(x)
        binary = proba.shape[1] == 2
        result = {
            "accuracy": skm.accuracy_score(y, predicted),
            # the positive class is the model's second class, whatever its labels are ("yes", 1, True)
            "f1": skm.f1_score(y, predicted, average="binary", pos_label=model.classes_[1]) if binary
            else skm.f1_score(y, predicted, average="macro"),
        }
        if binary:
            positive, is_positive = proba[:, 1], (y == model.classes_[1]).to_numpy()
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


def quality_gates(candidate: float, champion: float | None, config: PipelineConfig) -> dict:
    """Decide whether a candidate's primary metric passes the absolute and the champion gates.

    Returns ``{"passed": bool, "reasons": [...], "delta": candidate - champion or None}``; for
    metrics where lower is better (rmse, mae, log_loss) ``min_score`` is a ceiling.
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
        if sign * delta < -gates.max_regression:
            reasons.append(
                f"{config.metric} {candidate:.4g} is worse than production's {champion:.4g} by "
                f"{abs(delta):.4g}, more than the allowed {gates.max_regression:g}"
            )
    return {"passed": not reasons, "reasons": reasons, "delta": delta}
