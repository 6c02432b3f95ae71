"""Drift of a batch against the reference profile of a model's training data.

A :class:`ReferenceProfile` is fitted once on the training rows and stored with the model
version. Per numeric feature: about 1,000 quantiles with the reference CDF at each, coarse bin
edges taken from that grid (open-ended outer bins), bin shares, mean, std and missing rate; per
categorical feature: level shares and missing rate. Features are profiled as the model sees them:
a boolean as the levels true/false, a datetime as one numeric entry per part (``signup.month``).
Applying it to a batch is one vectorised pass per column (``searchsorted`` into the quantile grid,
or category codes and counts); the reference data is never read again.

Per feature the batch gets PSI, normalised Wasserstein distance, Jensen-Shannon distance, KS D
(for information), unseen-level share and change in missing rate. A statistic counts only when
it is above both its configured level and what sampling noise alone produces at this batch and
reference size (false-alarm rate about 1 in 1,000 per statistic); p-values never gate.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from include.ml.config import DriftConfig, FeatureSpec
from include.ml.errors import PipelineError
from include.ml.feature_rules import as_booleans, as_datetimes, datetime_parts, level_label

if TYPE_CHECKING:
    from collections.abc import Iterable

PSI_FLOOR = 1e-4  # share given to empty bins so PSI stays finite
N_QUANTILES = 1001
NOISE_ALPHA = 0.001  # chance that sampling noise alone exceeds a noise level
# Upper 0.1% point of the Wasserstein limit (integral of |Brownian bridge|) over its mean: 2.2-2.8
# for normal, exponential, uniform and log-normal data by simulation. Heavy tails (log-normal
# sigma 1.5, Pareto 3) reached ~1% false alarms at 3 with a 2,000-row reference; 4 covers them.
WASSERSTEIN_NOISE_FACTOR = 4.0
PROFILE_FORMAT = 2
LEVEL_ORDER = {"severe": 3, "drifted": 2, "none": 1, "insufficient_data": 0}


def _chi2_upper(dof: int) -> float:
    from scipy.stats import chi2

    return float(chi2.ppf(1 - NOISE_ALPHA, max(dof, 1)))


def _z_two_sided() -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - NOISE_ALPHA / 2))


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins (empty bins floored)."""
    expected = np.clip(np.asarray(expected, dtype=float), floor, None)
    actual = np.clip(np.asarray(actual, dtype=float), floor, None)
    expected, actual = expected / expected.sum(), actual / actual.sum()
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two share vectors."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max((kl_p + kl_q) / 2, 0.0)))


def _none_if_nan(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass
class ReferenceProfile:
    """Per-feature summary of training data; ``fit`` it once, then :func:`drift_report` batches."""

    bins: int = 10
    n_quantiles: int = N_QUANTILES
    numeric_: dict[str, dict] = field(default_factory=dict)
    categorical_: dict[str, dict] = field(default_factory=dict)
    rows_: int = 0

    def fit(self, frame: pd.DataFrame, features: Iterable[FeatureSpec]) -> ReferenceProfile:
        """Summarise ``frame``'s feature columns as the model sees them; returns self.

        A boolean feature is a categorical of the levels ``true``/``false``; a datetime feature is one
        numeric entry per part the model sees, named ``<feature>.<part>`` and carrying its ``source``
        column and ``part`` (so later dates are judged by their parts, never as unseen levels)."""
        self.rows_ = len(frame)
        for spec in features:
            if spec.type == "numeric":
                self.numeric_[spec.name] = self._fit_numeric(frame[spec.name])
            elif spec.type == "datetime":
                parts = datetime_parts(as_datetimes(frame[spec.name], spec.format)[0], spec.datetime_parts)
                for part in parts.columns:
                    self.numeric_[f"{spec.name}.{part}"] = {**self._fit_numeric(parts[part]), "source": spec.name,
                                                           "part": part, "format": spec.format}
            elif spec.type == "boolean":
                self.categorical_[spec.name] = {**self._fit_categorical(_boolean_levels(frame[spec.name])),
                                                "kind": "boolean"}
            else:
                self.categorical_[spec.name] = self._fit_categorical(frame[spec.name])
        return self

    def _fit_numeric(self, column: pd.Series) -> dict:
        values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        finite = np.sort(values[np.isfinite(values)])
        n = len(finite)
        base = {"rows": len(values), "n": n, "missing_rate": float(1 - n / len(values)) if len(values) else 0.0}
        if n == 0:
            return {**base, "quantiles": [], "cdf": [], "edge_index": [], "shares": [], "mean": None,
                    "std": None, "scale": 1.0, "noise_integral": 0.0}
        probs = np.linspace(0, 1, self.n_quantiles)
        quantiles = np.quantile(finite, probs)
        cdf = np.searchsorted(finite, quantiles, side="right") / n  # reference ECDF at each grid point
        edge_index = np.unique(np.round(np.linspace(0, self.n_quantiles - 1, self.bins + 1)[1:-1]).astype(int))
        std = float(finite.std())
        scale = std if std > 0 else (abs(float(finite.mean())) or 1.0)
        return {
            **base,
            "quantiles": quantiles.tolist(),
            "cdf": cdf.tolist(),
            "edge_index": edge_index.tolist(),
            "shares": self._coarse_shares(cdf, edge_index).tolist(),
            "mean": float(finite.mean()),
            "std": std,
            "scale": scale,
            # integral of sqrt(F(1-F)) over the scale: sets the Wasserstein noise level
            "noise_integral": float(np.sum(np.sqrt(cdf[:-1] * (1 - cdf[:-1])) * np.diff(quantiles)) / scale),
        }

    @staticmethod
    def _coarse_shares(cdf: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
        """Shares of the open-ended coarse bins cut at the grid points ``edge_index``."""
        below = np.concatenate([[0.0], cdf[edge_index], [1.0]])
        return np.diff(below)

    @staticmethod
    def _fit_categorical(column: pd.Series) -> dict:
        present = column.dropna()
        counts = present.value_counts()
        counts.index = [level_label(v) for v in counts.index]
        counts = counts.groupby(level=0, sort=False).sum().sort_values(ascending=False)
        return {
            "rows": len(column),
            "n": len(present),
            "missing_rate": float(column.isna().mean()) if len(column) else 0.0,
            "shares": {str(k): float(v) / max(len(present), 1) for k, v in counts.items()},
            "singletons": int((counts == 1).sum()),
        }

    def features(self) -> list[str]:
        return [*self.numeric_, *self.categorical_]

    def source_of(self, name: str) -> str:
        """The batch column a profiled feature is read from (a datetime part's datetime column)."""
        entry = self.numeric_.get(name) or self.categorical_.get(name) or {}
        return entry.get("source", name)

    def missing_features(self, frame: pd.DataFrame) -> list[str]:
        """Profiled features whose column ``frame`` lacks (so they cannot be compared)."""
        return sorted({self.source_of(name) for name in self.features()} - set(frame.columns))

    def model_view(self, frame: pd.DataFrame, names: Iterable[str]) -> dict[str, pd.Series]:
        """The profiled features ``names`` of ``frame`` as the profile holds them: booleans as the levels
        true/false, each datetime part as numbers; other features as they are."""
        view, dates = {}, {}
        for name in names:
            entry = self.numeric_.get(name) or self.categorical_.get(name)
            source = entry.get("source", name)
            if "part" in entry:
                if source not in dates:
                    dates[source] = as_datetimes(frame[source], entry.get("format"))[0]
                view[name] = datetime_parts(dates[source], (entry["part"],))[entry["part"]]
            elif entry.get("kind") == "boolean":
                view[name] = _boolean_levels(frame[source])
            else:
                view[name] = frame[source]
        return view

    def to_dict(self) -> dict:
        return {"format": PROFILE_FORMAT, "bins": self.bins, "n_quantiles": self.n_quantiles, "rows": self.rows_,
                "numeric": self.numeric_, "categorical": self.categorical_}

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceProfile:
        if data.get("format") != PROFILE_FORMAT:
            raise PipelineError(
                f"reference profile format {data.get('format', 1)} is not the supported {PROFILE_FORMAT}: it was "
                "written by an older version of this pipeline. Compare against a newer version, or retrain.")
        profile = cls(bins=data["bins"], n_quantiles=data.get("n_quantiles", N_QUANTILES))
        profile.rows_ = data["rows"]
        profile.numeric_ = data["numeric"]
        profile.categorical_ = data["categorical"]
        return profile


def _boolean_levels(column: pd.Series) -> pd.Series:
    """A boolean feature's values as the levels ``true``/``false`` (missing or unreadable: NaN)."""
    values = as_booleans(column)[0]
    return values.map({1.0: "true", 0.0: "false"}).astype(object)


# -- applying a profile to a batch ---------------------------------------------------------


def _numeric_statistics(ref: dict, column: pd.Series) -> dict:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite_mask = np.isfinite(values)
    x = values[finite_mask]
    n, m = len(x), ref["n"]
    result: dict[str, Any] = {
        "rows": len(values), "n": n, "reference_n": m,
        "infinite": int(np.isinf(values).sum()),
        "missing_rate": float(1 - n / len(values)) if len(values) else 0.0,
        "reference_missing_rate": ref["missing_rate"],
        "mean": _none_if_nan(float(x.mean())) if n else None,
        "reference_mean": ref["mean"],
    }
    stats = dict.fromkeys(("psi", "jensen_shannon", "wasserstein", "ks"))
    noise = dict.fromkeys(("psi", "jensen_shannon", "wasserstein", "ks"))
    if n and m:
        grid = np.asarray(ref["quantiles"])
        ref_cdf = np.asarray(ref["cdf"])
        index = np.searchsorted(grid, x, side="left")  # the one pass: position of each value in the grid
        counts = np.bincount(index, minlength=len(grid) + 1)
        cdf = np.cumsum(counts)[: len(grid)] / n  # batch ECDF at each grid point
        edge_index = np.asarray(ref["edge_index"], dtype=int)
        batch_shares = ReferenceProfile._coarse_shares(cdf, edge_index)
        ref_shares = np.asarray(ref["shares"])
        inner = float(np.sum(np.diff(grid) * np.abs((cdf[:-1] + cdf[1:]) / 2 - (ref_cdf[:-1] + ref_cdf[1:]) / 2)))
        below = x[index == 0]
        above = x[index == len(grid)]
        tails = float(np.sum(grid[0] - below) + np.sum(above - grid[-1])) / n
        eff = 1 / n + 1 / m
        bins_used = int(np.count_nonzero(ref_shares > 0))
        chi2 = _chi2_upper(bins_used - 1)
        stats.update(
            psi=psi(ref_shares, batch_shares),
            jensen_shannon=jensen_shannon(ref_shares, batch_shares),
            wasserstein=(inner + tails) / ref["scale"],
            ks=float(np.max(np.abs(cdf - ref_cdf))),
        )
        noise.update(
            psi=chi2 * eff,
            jensen_shannon=math.sqrt(chi2 * eff / (8 * math.log(2))),
            wasserstein=WASSERSTEIN_NOISE_FACTOR * math.sqrt(2 / math.pi) * ref["noise_integral"] * math.sqrt(eff),
            ks=math.sqrt(-math.log(NOISE_ALPHA / 2) / 2) * math.sqrt(eff),
        )
        if not ref["std"]:
            # A constant in training has no spread to scale by: the share of values that left the
            # constant (KS D) is the distance; any move of all rows is then severe.
            stats["wasserstein"], noise["wasserstein"] = stats["ks"], noise["ks"]
    result["statistics"], result["noise"] = stats, noise
    return result


def _categorical_statistics(ref: dict, column: pd.Series) -> dict:
    missing = column.isna().to_numpy()
    present = column[~missing]
    levels = list(ref["shares"])
    # factorize once (a hash pass; Arrow strings are dictionary-encoded in C++), then map the few
    # distinct values to the reference levels
    codes, uniques = pd.factorize(present)
    per_unique = np.bincount(codes[codes >= 0], minlength=len(uniques)) if len(uniques) else np.zeros(0, int)
    position = {level: i for i, level in enumerate(levels)}
    counts = np.zeros(len(levels), dtype=float)
    unseen: dict[str, int] = {}
    for value, count in zip(uniques, per_unique, strict=True):
        label = level_label(value)
        index = position.get(label)
        if index is None:
            unseen[label] = unseen.get(label, 0) + int(count)
        else:
            counts[index] += count
    n, m = len(present), ref["n"]
    unseen_count = sum(unseen.values())
    unseen_levels = sorted(unseen, key=lambda level: -unseen[level])[:10]
    batch_shares = np.append(counts, unseen_count) / n if n else np.zeros(len(levels) + 1)
    ref_shares = np.append(np.asarray(list(ref["shares"].values()), dtype=float), 0.0)
    result: dict[str, Any] = {
        "rows": len(column), "n": n, "reference_n": m,
        "missing_rate": float(missing.mean()) if len(missing) else 0.0,
        "reference_missing_rate": ref["missing_rate"],
        "unseen_levels": unseen_levels,
    }
    stats = dict.fromkeys(("psi", "jensen_shannon", "unseen_share"))
    noise = dict.fromkeys(("psi", "jensen_shannon", "unseen_share"))
    if n and m:
        eff = 1 / n + 1 / m
        chi2 = _chi2_upper(max(len(levels), 2) - 1)
        singleton_share = ref.get("singletons", 0) / m  # Good-Turing: mass of levels the reference missed
        stats.update(psi=psi(ref_shares, batch_shares), jensen_shannon=jensen_shannon(ref_shares, batch_shares),
                     unseen_share=unseen_count / n)
        noise.update(
            psi=chi2 * eff,
            jensen_shannon=math.sqrt(chi2 * eff / (8 * math.log(2))),
            unseen_share=singleton_share + _z_two_sided() * math.sqrt(max(singleton_share, 1 / m) / n),
        )
    result["statistics"], result["noise"] = stats, noise
    return result


def _missing_change(result: dict, ref_rows: int) -> None:
    rows = result["rows"]
    if rows == 0:
        result["missing_rate"] = None
        result["statistics"]["missing_rate_change"] = result["noise"]["missing_rate_change"] = None
        return
    change = result["missing_rate"] - result["reference_missing_rate"]
    pooled = (result["missing_rate"] * rows + result["reference_missing_rate"] * ref_rows) / max(rows + ref_rows, 1)
    result["statistics"]["missing_rate_change"] = abs(change)
    result["noise"]["missing_rate_change"] = (
        _z_two_sided() * math.sqrt(pooled * (1 - pooled) * (1 / max(rows, 1) + 1 / max(ref_rows, 1))))


def _judge(result: dict, gating: list[str], settings: DriftConfig, min_rows: int) -> None:
    """Set the feature's ``level`` and ``reasons`` from its gating statistics."""
    level, reasons, checks = "none", [], {}
    for statistic in gating:
        value, noise = result["statistics"].get(statistic), result["noise"].get(statistic)
        levels = settings.levels(statistic)
        if value is None or (statistic != "missing_rate_change" and result["n"] < min_rows):
            checks[statistic] = "insufficient_data"
            continue
        noise = noise or 0.0
        if value > max(levels.severe, noise):
            found = "severe"
        elif value > max(levels.drifted, noise):
            found = "drifted"
        else:
            found = "none"
        checks[statistic] = found
        if found != "none":
            level_value = getattr(levels, found)
            reasons.append(f"{statistic} {value:.3f} > {max(level_value, noise):.3f} "
                           f"({found} level {level_value:g}, noise {noise:.3f})")
        if LEVEL_ORDER[found] > LEVEL_ORDER[level]:
            level = found
    distribution_checks = [v for k, v in checks.items() if k != "missing_rate_change"]
    if level == "none" and "insufficient_data" in distribution_checks:
        level = "insufficient_data"  # its distribution was not compared: no "none" without evidence
    result.update(gating=gating, checks=checks, level=level, reasons=reasons)


@dataclass
class DriftReport:
    """Every feature's drift numbers, the thresholds used, the sizes and the dataset verdict."""

    verdict: str  # drift | warn | none | insufficient_data
    reasons: list[str]
    batch_rows: int
    reference_rows: int
    features: dict[str, dict]
    drifted_features: list[str]
    severe_features: list[str]
    drifted_share: float
    missing_features: list[str]
    settings: dict
    reference_version: str | None = None
    # feature -> rank (1 = most important) in the reference version's permutation importance; empty without one
    importance_rank: dict[str, int] = field(default_factory=dict)

    def rank_of(self, name: str) -> int | None:
        """The importance rank of a feature (a datetime part: of the column it was read from), or None."""
        stats = self.features.get(name, {})
        return self.importance_rank.get(name, self.importance_rank.get(stats.get("source", name)))

    def table_features(self) -> list[tuple[str, dict]]:
        """The drift table's order: by importance rank when the reference version has one (unranked
        features last, worst first), else :meth:`ordered_features`."""
        worst_first = self.ordered_features()
        if not self.importance_rank:
            return worst_first
        place = {name: i for i, (name, _) in enumerate(worst_first)}

        def key(item: tuple[str, dict]) -> tuple[int, int]:
            rank = self.rank_of(item[0])
            return (0, rank) if rank is not None else (1, place[item[0]])

        return sorted(worst_first, key=key)

    def ordered_features(self) -> list[tuple[str, dict]]:
        """Features by severity (severe first), then by how far the gating statistic is past its level."""

        def key(item: tuple[str, dict]) -> tuple:
            name, stats = item
            ratios = [stats["statistics"][s] / self.settings["thresholds"][s]["drifted"]
                      for s in stats["gating"] if stats["statistics"].get(s) is not None]
            return (-LEVEL_ORDER[stats["level"]], -max(ratios, default=0.0), name)

        return sorted(self.features.items(), key=key)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DriftReport:
        return cls(**data)

    def summary(self) -> dict:
        """The small part for XCom: verdict, counts, and the five worst features."""
        return {
            "verdict": self.verdict, "reasons": self.reasons, "batch_rows": self.batch_rows,
            "reference_rows": self.reference_rows, "drifted_share": round(self.drifted_share, 4),
            "drifted_features": self.drifted_features, "severe_features": self.severe_features,
            "reference_version": self.reference_version,
            "worst": [{"feature": n, "level": s["level"], "reasons": s["reasons"]}
                      for n, s in self.ordered_features()[:5]],
        }


def drift_report(profile: ReferenceProfile, frame: pd.DataFrame, settings: DriftConfig) -> DriftReport:
    """Compare ``frame`` with ``profile`` feature by feature and reach the dataset verdict.

    ``drift`` when the share of drifted features reaches ``drift_share``, any feature drifts
    severely, or a critical feature drifts; ``warn`` when some drift but none of these holds;
    ``insufficient_data`` below ``min_batch_rows``; ``none`` otherwise.
    """
    min_rows = settings.min_batch_rows

    def one_feature(name: str) -> dict:
        if name in profile.numeric_:
            ref = profile.numeric_[name]
            result = {"type": "numeric", **_numeric_statistics(ref, view[name])}
            gating = [settings.numeric_statistic, "missing_rate_change"]
        else:
            ref = profile.categorical_[name]
            result = {"type": "categorical", **_categorical_statistics(ref, view[name])}
            gating = [settings.categorical_statistic, "unseen_share", "missing_rate_change"]
        if profile.source_of(name) != name:  # a datetime part: say which column it was read from
            result.update(source=ref["source"], part=ref["part"])
        _missing_change(result, ref["rows"])
        _judge(result, gating, settings, min_rows)
        return result

    names = [name for name in profile.features() if profile.source_of(name) in frame.columns]
    view = profile.model_view(frame, names)
    # numpy's searchsorted and pandas' hashing release the GIL: columns run in parallel on threads
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1) or 1) as pool:
        features = dict(zip(names, pool.map(one_feature, names), strict=True))

    report = DriftReport(
        verdict="none", reasons=[], batch_rows=len(frame), reference_rows=profile.rows_, features=features,
        drifted_features=[], severe_features=[], drifted_share=0.0,
        missing_features=profile.missing_features(frame), settings=settings.model_dump(mode="json"),
    )
    worst_first = [name for name, _ in report.ordered_features()]
    drifted = [n for n in worst_first if features[n]["level"] in ("drifted", "severe")]
    severe = [n for n in drifted if features[n]["level"] == "severe"]
    critical = [n for n in drifted if profile.source_of(n) in settings.critical_features]
    share = len(drifted) / len(features) if features else 0.0
    reasons = report.reasons
    if len(frame) < min_rows:
        report.verdict = "insufficient_data"
        reasons.append(f"batch has {len(frame)} rows, fewer than drift.min_batch_rows {min_rows}")
    else:
        if share >= settings.drift_share and drifted:
            reasons.append(f"{len(drifted)} of {len(features)} features drifted (share {share:.2f} "
                           f">= {settings.drift_share:g})")
        if severe:
            reasons.append(f"severe drift in {', '.join(severe)}")
        if critical:
            reasons.append(f"critical feature(s) drifted: {', '.join(critical)}")
        report.verdict = "drift" if reasons else ("warn" if drifted else "none")
        if report.verdict == "warn":
            reasons.append(f"{len(drifted)} feature(s) drifted, below the dataset rule: {', '.join(drifted)}")
    report.drifted_features, report.severe_features, report.drifted_share = drifted, severe, share
    return report


PREDICTION = "prediction"


def _watched(scores: np.ndarray | pd.DataFrame) -> pd.DataFrame:
    """The predictions to watch as numeric columns: one ``prediction`` column for an array, the
    DataFrame's own columns (a multiclass model's ``proba_<class>``) otherwise."""
    if isinstance(scores, pd.DataFrame):
        return scores.astype(float).reset_index(drop=True)
    return pd.DataFrame({PREDICTION: np.asarray(scores, dtype=float)})


def prediction_profile(scores: np.ndarray | pd.DataFrame, bins: int = 10) -> dict:
    """The reference profile (as a dict) of a model's scores on its holdout rows
    (:func:`~include.ml.evaluate.prediction_values`): the positive-class probability of a binary
    classifier, each class's probability of a multiclass one, or the prediction of a regressor.
    Stored with the version."""
    frame = _watched(scores)
    specs = [FeatureSpec(name=name, type="numeric") for name in frame.columns]
    return ReferenceProfile(bins=bins).fit(frame, specs).to_dict()


_LEVEL_ORDER = {"severe": 3, "drifted": 2, "none": 1}


def prediction_drift(profile: dict, scores: np.ndarray | pd.DataFrame, settings: DriftConfig) -> dict:
    """Compare scored rows' predictions with the stored training ones, with the numeric statistic and
    noise rule of the features. ``scores`` has the shape the profile was fitted on (an array, or a
    multiclass model's per-class probabilities; a class missing from them counts as all missing).
    Returns verdict (``drift`` when drifted or severe, ``none``, ``insufficient_data``), statistic,
    value, level and reasons of the worst watched column (``watched``); for several columns also
    ``by_column``, each one's level, value and means."""
    reference = ReferenceProfile.from_dict(profile)
    names = reference.features()
    frame = _watched(scores).reindex(columns=names)
    only = settings.model_copy(update={"critical_features": [], "drift_share": 1.0})
    report = drift_report(reference, frame, only)
    statistic = settings.numeric_statistic

    def severity(name: str) -> tuple:
        found = report.features[name]
        return _LEVEL_ORDER.get(found["level"], 0), found["statistics"].get(statistic) or 0.0

    watched = max(names, key=severity)
    result = report.features[watched]
    verdict = {"drifted": "drift", "severe": "drift", "none": "none"}.get(result["level"], "insufficient_data")
    summary = {
        "verdict": verdict, "statistic": statistic, "value": result["statistics"].get(statistic),
        "level": result["level"], "rows": result["rows"], "reference_rows": reference.rows_,
        "mean": result["mean"], "reference_mean": result["reference_mean"],
        "reasons": [f"{watched}: {r}" for r in result["reasons"]] if len(names) > 1 and result["reasons"]
        else (result["reasons"] or report.reasons),
        "watched": watched,
    }
    if len(names) > 1:
        summary["by_column"] = {
            name: {"level": found["level"], "value": found["statistics"].get(statistic), "mean": found["mean"],
                   "reference_mean": found["reference_mean"]}
            for name, found in ((n, report.features[n]) for n in names)}
    return summary
