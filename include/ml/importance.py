"""Permutation importance of a fitted model on its holdout: how much the primary metric worsens when
one feature's values are shuffled among the rows, which breaks that feature's link to the target and
nothing else.

Bounded for wide data: at most :data:`MAX_ROWS` holdout rows (a seeded subsample), at most
:data:`REPEATS` shuffles per feature, and a time budget (:data:`BUDGET_SECONDS`) after which the
features not yet shuffled are listed as unmeasured. Shuffles go round by round (every feature once,
then every feature again), so a budget cut leaves each measured feature with at least one shuffle.
Memory: at most :data:`BATCH_ROWS` rows of shuffled copies at a time.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pandas as pd

from include.ml.config import PipelineConfig

MAX_ROWS = 2_000  # enough to rank features; every training run pays rows x features x repeats predictions
REPEATS = 3
BUDGET_SECONDS = 60.0
BATCH_ROWS = 100_000  # rows (shuffled copies of the subsample) per call of the model: the memory bound


def permutation_importance(model, holdout: pd.DataFrame, config: PipelineConfig, feature_names: list[str], *,
                           max_rows: int = MAX_ROWS, repeats: int = REPEATS,
                           budget_seconds: float = BUDGET_SECONDS) -> dict:
    """Shuffle each of ``feature_names`` in (a subsample of) ``holdout`` and measure the primary metric.

    Returns the JSON a version stores: ``metric``, ``rows``, ``repeats``, ``seconds``, ``score`` (the
    unshuffled metric), ``features`` (most important first: ``feature``, ``importance`` = mean worsening
    of the metric in its own units, positive = the model relies on it, ``std``, ``repeats``) and
    ``unmeasured`` (features the time budget left out)."""
    from include.ml.evaluate import is_binary, metric_inputs, metric_value, positive_class

    started = time.perf_counter()
    rng = np.random.default_rng(config.model.seed)
    rows = holdout if len(holdout) <= max_rows else holdout.sample(n=max_rows, random_state=config.model.seed)
    work = rows[feature_names].copy()
    y = rows[config.target].to_numpy()
    classes = list(model.classes_) if config.task == "classification" else None
    positive = positive_class(classes, config.positive_label) if classes and is_binary(classes) else None
    sign = 1.0 if config.greater_is_better else -1.0

    def score(inputs: np.ndarray) -> float:
        return metric_value(config.metric, y, inputs, positive, classes)

    base = score(metric_inputs(model, work, config, feature_names))
    drops: dict[str, list[float]] = {name: [] for name in feature_names}
    # several shuffled copies of the rows go through the model in one call (the pipeline's per-call overhead
    # dominates on small holdouts), at most BATCH_ROWS rows at a time
    per_call = max(1, BATCH_ROWS // max(len(work), 1))
    for _ in range(repeats):
        for first in range(0, len(feature_names), per_call):
            if time.perf_counter() - started > budget_seconds:
                break
            names = feature_names[first:first + per_call]
            copies = []
            for name in names:
                copy = work.copy()
                copy[name] = work[name].iloc[rng.permutation(len(work))].set_axis(work.index)  # dtype kept
                copies.append(copy)
            inputs = metric_inputs(model, pd.concat(copies, ignore_index=True), config, feature_names)
            for index, name in enumerate(names):
                with contextlib.suppress(ValueError):  # the metric cannot be computed on these rows: left out
                    drops[name].append(sign * (base - score(inputs[index * len(work):(index + 1) * len(work)])))
    measured = [{"feature": name, "importance": float(np.mean(found)), "std": float(np.std(found)),
                 "repeats": len(found)} for name, found in drops.items() if found]
    measured.sort(key=lambda item: -item["importance"])
    return {"metric": config.metric, "rows": len(work), "repeats": repeats, "score": float(base),
            "seconds": round(time.perf_counter() - started, 3), "budget_seconds": budget_seconds,
            "features": measured, "unmeasured": [name for name, found in drops.items() if not found]}


def ranking(importance: dict | None) -> dict[str, int]:
    """Feature -> rank (1 = most important) of a stored :func:`permutation_importance`; empty without one."""
    return {item["feature"]: rank for rank, item in enumerate((importance or {}).get("features", []), start=1)}


def top_features(importance: dict | None, count: int) -> list[str]:
    """The ``count`` most important features of a stored :func:`permutation_importance` whose importance
    is above zero (a feature the model ignores is never made critical)."""
    found = [item["feature"] for item in (importance or {}).get("features", []) if item["importance"] > 0]
    return found[:count]
