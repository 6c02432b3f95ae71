"""Metrics for a fitted model on holdout rows, and the quality gates a candidate must pass.

Classification is binary or multiclass, decided by the classes the model was fitted on. Binary
metrics judge the positive class (:func:`positive_class`); multiclass ones are macro averages over
one-vs-rest problems (roc_auc, average_precision, f1) or need no positive class (accuracy,
balanced_accuracy, log_loss).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from include.ml.config import PipelineConfig
from include.ml.errors import InputDataError
from include.ml.feature_rules import level_label

PROBA_PREFIX = "proba_"  # a prediction file's column of one class's probability: proba_<class>


class PositiveLabelError(InputDataError):
    """``positive_label`` does not fit the target's classes (not one of them, or not two classes)."""


def positive_index(classes: Sequence, positive_label=None) -> int:
    """The position in ``classes`` (a model's ``classes_``, or a prediction file's classes as text) of
    the positive class: the class ``positive_label`` names, matched as text (:func:`level_label`, so
    1 finds the class 1 or "1"), else the second class, which scikit-learn sorts (numerically for
    numbers: 10 of 2 and 10; "yes" of "no" and "yes"; 1 of 0 and 1).

    Raises :class:`PositiveLabelError` when ``positive_label`` is set and there are not two classes
    or it is not one of them, ``ValueError`` when there are not two classes."""
    classes = list(classes)
    if len(classes) != 2:
        if positive_label is not None:
            raise PositiveLabelError(
                f"positive_label {positive_label!r} is for binary classification, but the target has "
                f"{len(classes)} classes {classes}: remove positive_label from the pipeline config")
        raise ValueError(f"a positive class needs a binary classifier; the classes are {classes}")
    if positive_label is None:
        return 1
    for index, label in enumerate(classes):
        if level_label(label) == level_label(positive_label):
            return index
    raise PositiveLabelError(
        f"positive_label {positive_label!r} is not one of the target's classes {classes}: set positive_label "
        "to one of them in the pipeline config, or check the target column of the batch")


def positive_class(classes: Sequence, positive_label=None):
    """The positive class of a binary classifier (see :func:`positive_index`): the element of
    ``classes`` itself, so of the classes' type."""
    return list(classes)[positive_index(classes, positive_label)]


def positive_probability(model, proba: np.ndarray, positive_label=None) -> np.ndarray:
    """The column of ``proba`` (``model.predict_proba``) of the model's :func:`positive_class`."""
    return proba[:, positive_index(model.classes_, positive_label)]


def is_binary(classes: Sequence) -> bool:
    """Whether a classifier with these classes is binary (else multiclass)."""
    return len(list(classes)) == 2


def class_metadata(model, config: PipelineConfig) -> dict:
    """What a registered version records of its classes: ``classes`` (in the model's order) and the
    ``positive_label`` it was judged by (binary only; None otherwise). Both as JSON values."""
    if config.task != "classification":
        return {"classes": None, "positive_label": None}
    classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
    return {"classes": classes,
            "positive_label": positive_class(classes, config.positive_label) if is_binary(classes) else None}


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
    """All metrics of the config's task for ``model`` on ``frame``: roc_auc, accuracy, balanced_accuracy,
    f1, average_precision, log_loss (binary: of the positive class; multiclass: macro one-vs-rest), or
    rmse, mae, r2."""
    x, y = frame[feature_names], frame[config.target].to_numpy()
    if config.task != "classification":
        predicted = model.predict(x)
        return {"rmse": float(np.sqrt(skm.mean_squared_error(y, predicted))),
                "mae": float(skm.mean_absolute_error(y, predicted)), "r2": float(skm.r2_score(y, predicted))}
    classes = list(model.classes_)
    proba = model.predict_proba(x)
    predicted = model.classes_[np.argmax(proba, axis=1)]  # what predict() returns, one pass through the model
    if is_binary(classes) or config.positive_label is not None:  # a positive_label of 3 classes: an error
        index = positive_index(classes, config.positive_label)
        positive, scores = classes[index], proba[:, index]
    else:
        positive, scores = None, proba
    result = {name: metric_value(name, y, predicted, positive, classes)
              for name in ("accuracy", "balanced_accuracy", "f1")}
    for name in ("roc_auc", "average_precision"):
        result[name] = metric_value(name, y, scores, positive, classes)
    result["log_loss"] = metric_value("log_loss", y, proba, positive, classes)
    return result


def _aligned(model, proba: np.ndarray, classes: Sequence | None) -> np.ndarray:
    """``proba`` with one column per class of ``classes`` (another model's, say), in that order; a
    class the model does not know gets probability 0."""
    own = [level_label(c) for c in model.classes_]
    if classes is None or own == [level_label(c) for c in classes]:
        return proba
    aligned = np.zeros((len(proba), len(classes)))
    for index, label in enumerate(classes):
        if level_label(label) in own:
            aligned[:, index] = proba[:, own.index(level_label(label))]
    return aligned


def metric_inputs(model, frame: pd.DataFrame, config: PipelineConfig, feature_names: list[str],
                  classes: Sequence | None = None) -> np.ndarray:
    """What the primary metric is computed from, per holdout row: the positive-class probability
    (binary roc_auc, average_precision), the class probabilities (log_loss, multiclass roc_auc and
    average_precision; in the order of ``classes`` when given, else the model's), or the prediction."""
    x = frame[feature_names]
    if config.metric in ("roc_auc", "average_precision", "log_loss"):
        classes = list(model.classes_ if classes is None else classes)
        proba = _aligned(model, model.predict_proba(x), classes)
        if config.metric != "log_loss" and is_binary(classes):
            return proba[:, positive_index(classes, config.positive_label)]
        return proba
    return np.asarray(model.predict(x))


def prediction_values(model, x: pd.DataFrame, task: str, positive_label=None) -> np.ndarray | pd.DataFrame:
    """What prediction drift watches, per row: the probability of a binary classifier's
    :func:`positive_class`, every class's probability of a multiclass one (a DataFrame with a
    ``proba_<class>`` column per class, in ``classes_`` order, as scoring writes them), or a
    regressor's prediction."""
    if task != "classification":
        return np.asarray(model.predict(x), dtype=float)
    proba = model.predict_proba(x)
    if is_binary(model.classes_) or positive_label is not None:  # a positive_label of 3 classes: an error
        return positive_probability(model, proba, positive_label)
    return pd.DataFrame(proba, columns=[proba_column(c) for c in model.classes_], index=x.index)


def _one_vs_rest(y: np.ndarray, classes: Sequence | None, n_columns: int) -> np.ndarray:
    """Row x class indicator of ``y`` against ``classes`` (a truth outside them is 0 everywhere)."""
    if classes is None or len(classes) != n_columns:
        raise ValueError(f"multiclass metrics need the {n_columns} classes of the probability columns")
    as_text = np.array([level_label(v) for v in y], dtype=object)
    return np.column_stack([as_text == level_label(c) for c in classes])


def _column_of(y: np.ndarray, classes: Sequence) -> np.ndarray:
    """The column (position in ``classes``) of every truth in ``y``; ``ValueError`` names a truth
    outside the classes."""
    position = {level_label(c): i for i, c in enumerate(classes)}
    unknown = sorted({level_label(v) for v in y} - set(position))
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the model's classes {list(classes)}")
    return np.array([position[level_label(v)] for v in y])


def metric_value(metric: str, y: np.ndarray, inputs: np.ndarray, positive=None, classes: Sequence | None = None
                 ) -> float:
    """The metric ``metric`` of outputs ``inputs`` against truth ``y`` (see :func:`metric_inputs`).

    Binary (``positive`` given): roc_auc and average_precision of ``positive`` from its probability,
    f1 of ``positive``. Multiclass (2-D probabilities with ``classes`` in their column order, no
    ``positive``): macro averages over the classes present in ``y`` (roc_auc, average_precision), macro
    f1. ``ValueError`` when the rows cannot give the metric (one class only)."""
    y = np.asarray(y)
    inputs = np.asarray(inputs)
    if metric in ("roc_auc", "average_precision"):
        if inputs.ndim == 1:
            score = skm.roc_auc_score if metric == "roc_auc" else skm.average_precision_score
            return float(score(y == positive, inputs))
        truth = _one_vs_rest(y, classes, inputs.shape[1])
        if metric == "roc_auc":
            value = _ovr_auc_rows(truth, inputs, np.arange(len(y))[None, :])[0]
        else:
            present = truth.any(axis=0) & ~truth.all(axis=0)
            value = np.mean([skm.average_precision_score(truth[:, i], inputs[:, i]) for i in np.flatnonzero(present)]
                            ) if present.sum() >= 2 else np.nan
        if not np.isfinite(value):
            raise ValueError(f"{metric} needs rows of at least two classes")
        return float(value)
    if metric == "log_loss":
        if classes is not None:  # truth as column numbers: log_loss sorts its labels, the columns are the model's
            return float(skm.log_loss(_column_of(y, classes), inputs, labels=np.arange(len(classes))))
        return float(skm.log_loss(y == positive, inputs[:, 1]) if inputs.shape[1] == 2 else skm.log_loss(y, inputs))
    if metric == "accuracy":
        return float(skm.accuracy_score(y, inputs))
    if metric == "balanced_accuracy":
        with warnings.catch_warnings():  # a class predicted but absent from these rows
            warnings.simplefilter("ignore", UserWarning)
            return float(skm.balanced_accuracy_score(y, inputs))
    if metric == "f1":
        if positive is not None:
            return float(skm.f1_score(y, inputs, pos_label=positive))
        return float(skm.f1_score(y, inputs, average="macro"))
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


def _ovr_auc_rows(truth: np.ndarray, proba: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """Macro one-vs-rest ROC AUC of every resample (``truth``: row x class indicator, ``proba`` in the
    same column order), over the classes present in all the rows, each as one, vectorised like
    :func:`_auc_rows`. NaN where a resample lacks one of those classes, or fewer than two are present."""
    present = np.flatnonzero(truth.any(axis=0) & ~truth.all(axis=0))
    if len(present) < 2:
        return np.full(len(samples), np.nan)
    per_class = np.stack([_auc_rows(truth[:, i], proba[:, i], samples) for i in present])
    return per_class.mean(axis=0)  # NaN propagates: a resample missing a class is skipped, not re-weighted


def _multiplicities(samples: np.ndarray, n: int) -> np.ndarray:
    """Resample x row: how often each of the ``n`` rows is drawn in each resample."""
    offsets = samples + (np.arange(len(samples)) * n)[:, None]
    return np.bincount(offsets.ravel(), minlength=len(samples) * n).reshape(len(samples), n).astype(float)


def _ap_rows(truth: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision (scikit-learn's: recall steps times precision, one step per distinct score)
    of every resample given as row multiplicities; NaN where a resample holds no positive."""
    order = np.argsort(-scores, kind="mergesort")
    ranked = scores[order]
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1)  # the last row of each tie
    drawn = weights[:, order]
    tp = np.cumsum(drawn * truth[order], axis=1)[:, ends]
    fp = np.cumsum(drawn * ~truth[order], axis=1)[:, ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = tp / tp[:, -1:]
    steps = np.diff(recall, axis=1, prepend=0.0)
    return (steps * precision).sum(axis=1)


def _resample_values(metric: str, y: np.ndarray, inputs: np.ndarray, positive, classes: Sequence | None,
                     samples: np.ndarray) -> np.ndarray:
    """A classification metric of every resample of a block at once (as :func:`metric_value` of each
    resample's rows); NaN where a resample cannot give it. Multiclass roc_auc and average_precision
    need every class of ``y`` in a resample, as :func:`_ovr_auc_rows`."""
    if metric == "roc_auc":
        if inputs.ndim == 2:
            return _ovr_auc_rows(_one_vs_rest(y, classes, inputs.shape[1]), inputs, samples)
        return _auc_rows(y == positive, inputs, samples)
    weights = _multiplicities(samples, len(y))
    rows = samples.shape[1]
    if metric == "average_precision":
        if inputs.ndim == 1:
            return _ap_rows(y == positive, inputs, weights)
        truth = _one_vs_rest(y, classes, inputs.shape[1])
        present = np.flatnonzero(truth.any(axis=0) & ~truth.all(axis=0))
        if len(present) < 2:
            return np.full(len(samples), np.nan)
        return np.stack([_ap_rows(truth[:, i], inputs[:, i], weights) for i in present]).mean(axis=0)
    if metric == "log_loss":
        eps = np.finfo(float).eps
        if classes is None:  # binary without its classes: the second column is the positive class's
            chosen = np.where(y == positive, inputs[:, 1], inputs[:, 0])
        else:
            chosen = inputs[np.arange(len(y)), _column_of(y, classes)]
        return weights @ -np.log(np.clip(chosen, eps, 1 - eps)) / rows
    y_text = np.array([level_label(v) for v in y], dtype=object)
    predicted = np.array([level_label(v) for v in inputs], dtype=object)
    if metric == "accuracy":
        return weights @ (y_text == predicted) / rows
    if positive is not None and metric == "f1":
        labels = [level_label(positive)]
    else:
        labels = sorted(set(y_text) | set(predicted))
    truth = np.column_stack([y_text == label for label in labels]).astype(float)
    said = np.column_stack([predicted == label for label in labels]).astype(float)
    hits, support, guessed = weights @ (truth * said), weights @ truth, weights @ said
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "f1":  # macro over the labels true or predicted in the resample; binary: the positive's
            per_label = np.where(support + guessed > 0, 2 * hits / (support + guessed), np.nan)
            if positive is not None:
                return np.nan_to_num(per_label[:, 0])  # 0 when the positive class is neither true nor said
        else:  # balanced_accuracy: the mean recall of the classes true in the resample
            per_label = np.where(support > 0, hits / support, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(per_label, axis=1)


def paired_bootstrap(y: np.ndarray, candidate: np.ndarray, champion: np.ndarray, config: PipelineConfig,
                     positive=None, classes: Sequence | None = None) -> dict:
    """Confidence interval of (candidate - champion) on the primary metric, resampling the same rows
    for both (seeded). ``candidate`` and ``champion`` are :func:`metric_inputs`; ``positive`` is a
    binary classifier's positive class, ``classes`` the column order of multiclass probabilities.
    Resamples a metric cannot be computed on (a class missing) are skipped.

    Classification metrics are computed for a whole block of resamples at once
    (:func:`_resample_values`; ROC AUC one-vs-rest per class of a multiclass model); regression
    metrics one resample at a time."""
    gates = config.gates
    rng = np.random.default_rng(gates.bootstrap_seed)
    y = np.asarray(y)
    differences: list[float] = []
    candidate, champion = np.asarray(candidate), np.asarray(champion)
    # resamples in blocks: memory stays ~ block x rows (x 3 for ranks), not resamples x rows
    block = max(1, min(gates.bootstrap_resamples, 5_000_000 // max(len(y), 1)))
    for start in range(0, gates.bootstrap_resamples, block):
        samples = rng.integers(0, len(y), (min(block, gates.bootstrap_resamples - start), len(y)))
        if config.task == "classification":
            found = (_resample_values(config.metric, y, candidate, positive, classes, samples)
                     - _resample_values(config.metric, y, champion, positive, classes, samples))
            differences.extend(float(d) for d in found if np.isfinite(d))
            continue
        for rows in samples:
            try:
                differences.append(metric_value(config.metric, y[rows], candidate[rows], positive, classes)
                                   - metric_value(config.metric, y[rows], champion[rows], positive, classes))
            except ValueError:
                continue
    tail = (1 - gates.confidence) / 2
    lower, upper = np.quantile(differences, [tail, 1 - tail]) if differences else (np.nan, np.nan)
    return {
        "difference": metric_value(config.metric, y, candidate, positive, classes)
        - metric_value(config.metric, y, champion, positive, classes),
        "lower": float(lower), "upper": float(upper), "confidence": gates.confidence,
        "resamples": len(differences), "seed": gates.bootstrap_seed,
        **holdout_size(y, config.task),
    }


def holdout_size(y: np.ndarray, task: str) -> dict:
    """The holdout's effective size, what the interval's width depends on: ``rows``, and for
    classification the ``rarest_class`` (as text) and its ``rarest_class_rows``."""
    if task != "classification" or len(y) == 0:
        return {"rows": len(y)}
    labels, counts = np.unique(np.array([level_label(v) for v in y], dtype=object), return_counts=True)
    rarest = int(np.argmin(counts))
    return {"rows": len(y), "rarest_class": str(labels[rarest]), "rarest_class_rows": int(counts[rarest])}


def fit_baseline(y: pd.Series, task: str) -> dict:
    """The trivial model a candidate must beat, fitted on training targets ``y`` as JSON: the class
    prior (``DummyClassifier(strategy="prior")``: ``classes``, ``prior``) or the mean
    (``DummyRegressor``: ``mean``)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    y = y.dropna().to_numpy()
    x = np.zeros((len(y), 1))
    if task != "classification":
        return {"strategy": "mean", "mean": float(DummyRegressor(strategy="mean").fit(x, y).constant_[0, 0])}
    dummy = DummyClassifier(strategy="prior").fit(x, y)
    return {"strategy": "prior", "classes": [c.item() if isinstance(c, np.generic) else c for c in dummy.classes_],
            "prior": [float(p) for p in dummy.class_prior_]}


def baseline_score(baseline: dict, y: np.ndarray, config: PipelineConfig, classes: Sequence | None = None) -> float:
    """The primary metric of :func:`fit_baseline`'s model on holdout targets ``y``: every row gets
    the prior (its most likely class as the label) or the mean. ``classes``: the candidate's, whose
    column order and positive class the metric follows (default: the baseline's own)."""
    y = np.asarray(y)
    if baseline["strategy"] == "mean":
        return metric_value(config.metric, y, np.full(len(y), baseline["mean"]))
    own = {level_label(c): share for c, share in zip(baseline["classes"], baseline["prior"], strict=True)}
    classes = list(baseline["classes"] if classes is None else classes)
    prior = np.array([own.get(level_label(c), 0.0) for c in classes])
    binary = is_binary(classes)
    positive = positive_class(classes, config.positive_label) if binary else None
    if config.metric in ("accuracy", "balanced_accuracy", "f1"):
        return metric_value(config.metric, y, np.full(len(y), classes[int(np.argmax(prior))]),
                            positive, classes)
    proba = np.tile(prior, (len(y), 1))
    if config.metric != "log_loss" and binary:
        return metric_value(config.metric, y, proba[:, classes.index(positive)], positive, classes)
    return metric_value(config.metric, y, proba, positive, classes)


def champion_comparison(candidate_model, champion_model, holdout: pd.DataFrame, config: PipelineConfig,
                        candidate_features: list[str], champion_features: list[str]) -> dict:
    """:func:`paired_bootstrap` of the candidate against the champion on the same holdout rows: the
    champion's probabilities in the candidate's class order, the positive class by ``positive_label``."""
    classes = list(candidate_model.classes_) if config.task == "classification" else None
    positive = positive_class(classes, config.positive_label) if classes and is_binary(classes) else None
    return paired_bootstrap(
        holdout[config.target].to_numpy(), metric_inputs(candidate_model, holdout, config, candidate_features),
        metric_inputs(champion_model, holdout, config, champion_features, classes), config, positive, classes)


def _too_wide(interval: dict, config: PipelineConfig) -> str:
    """What an interval too wide to decide needs: the holdout's effective size and the knobs that
    narrow it (or allow for it)."""
    size = f"{interval['rows']} holdout rows" if "rows" in interval else "the holdout"
    if "rarest_class_rows" in interval:
        size += f", {interval['rarest_class_rows']} of them of the rarest class {interval['rarest_class']!r}"
    return (f"; the point difference is within the allowed regression but the interval (width "
            f"{interval['upper'] - interval['lower']:.4g}) is too wide to decide on {size}: train on more batches "
            f"(model.window_batches, now {config.model.window_batches}), lower gates.confidence (now "
            f"{config.gates.confidence:g}) or allow more regression (gates.max_regression)")


def quality_gates(candidate: float, champion: float | None, config: PipelineConfig,
                  interval: dict | None = None, baseline: float | None = None) -> dict:
    """Decide whether a candidate passes the absolute gate, the baseline gate and the
    champion/challenger gate.

    The candidate must be better than the ``baseline`` score (the class prior or the mean on the same
    holdout, :func:`baseline_score`) by ``min_gain_over_baseline``, and better at all. With a bootstrap
    ``interval`` of (candidate - champion), it must not be worse than production by more than
    ``max_regression`` at the interval's pessimistic end; without one the point difference is used.
    For losses (rmse, mae, log_loss) lower is better: ``min_score`` is a ceiling and the interval is
    read the other way round. Returns ``{"passed", "reasons", "delta", "interval", "baseline"}``.
    """
    gates, better = config.gates, config.greater_is_better
    sign = 1.0 if better else -1.0
    reasons = []
    meets_floor = sign * (candidate - gates.min_score) >= 0
    if not meets_floor:
        bound = "at least" if better else "at most"
        reasons.append(f"{config.metric} {candidate:.4g} is not {bound} the minimum {gates.min_score:g}")
    if baseline is not None:
        gain = sign * (candidate - baseline)
        if not (gain >= gates.min_gain_over_baseline and gain > 0):
            trivial = "the mean" if config.task != "classification" else "the class prior"
            reasons.append(f"does not beat the baseline (predicting {trivial}): {config.metric} {candidate:.4g} vs "
                           f"baseline {baseline:.4g}, needs at least margin {gates.min_gain_over_baseline:g} "
                           "(and to be better at all)")
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
                wide = sign * delta >= -gates.max_regression and interval["upper"] > interval["lower"]
                reasons.append(
                    f"{config.metric} {candidate:.4g} vs production's {champion:.4g}: the "
                    f"{interval['confidence']:.0%} interval of the improvement reaches {worst:+.4g}, "
                    f"not above the allowed regression -{gates.max_regression:g}"
                    + (_too_wide(interval, config) if wide else "")
                )
        elif sign * delta < -gates.max_regression:
            reasons.append(
                f"{config.metric} {candidate:.4g} is worse than production's {champion:.4g} by "
                f"{abs(delta):.4g}, more than the allowed {gates.max_regression:g}"
            )
    return {"passed": not reasons, "reasons": reasons, "delta": delta, "interval": interval, "baseline": baseline}
