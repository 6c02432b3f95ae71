"""Drift of a batch against the reference profile of a model's training data.

A :class:`ReferenceProfile` is fitted once on the training rows and stored with the model
version: quantile bin edges and shares per numeric feature, level shares per categorical
feature. Applying it to a batch is one vectorised pass per column; the training data is never
read again. This first version scores each feature with PSI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from include.ml.config import DriftConfig, FeatureSpec

PSI_FLOOR = 1e-4  # share given to empty bins so PSI stays finite
MISSING = "__missing__"


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins (empty bins floored)."""
    expected = np.clip(np.asarray(expected, dtype=float), floor, None)
    actual = np.clip(np.asarray(actual, dtype=float), floor, None)
    expected, actual = expected / expected.sum(), actual / actual.sum()
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass
class ReferenceProfile:
    """Per-feature summary of training data; ``fit`` it, then ``feature_shares`` of a new batch."""

    bins: int = 10
    numeric_: dict[str, dict] = field(default_factory=dict)
    categorical_: dict[str, dict] = field(default_factory=dict)
    rows_: int = 0

    def fit(self, frame: pd.DataFrame, features: list[FeatureSpec]) -> ReferenceProfile:
        """Summarise ``frame``'s feature columns; returns self."""
        self.rows_ = len(frame)
        for spec in features:
            column = frame[spec.name]
            if spec.type == "numeric":
                values = column.to_numpy(dtype=float)
                finite = values[np.isfinite(values)]
                inner = np.unique(np.quantile(finite, np.linspace(0, 1, self.bins + 1)[1:-1])) if len(
                    finite
                ) else np.array([])
                counts = self._bin_counts(values, inner)
                self.numeric_[spec.name] = {
                    "edges": inner.tolist(),
                    "shares": (counts / max(counts.sum(), 1)).tolist(),
                    "mean": float(finite.mean()) if len(finite) else None,
                    "std": float(finite.std()) if len(finite) else None,
                    "missing_rate": float(np.isnan(values).mean()),
                }
            else:
                shares = column.fillna(MISSING).astype(str).value_counts(normalize=True)
                self.categorical_[spec.name] = {
                    "shares": {str(k): float(v) for k, v in shares.items()},
                    "missing_rate": float(column.isna().mean()),
                }
        return self

    @staticmethod
    def _bin_counts(values: np.ndarray, inner_edges: np.ndarray) -> np.ndarray:
        """Counts over open-ended bins cut at ``inner_edges``, plus a last bin for missing values."""
        missing = np.isnan(values)
        index = np.searchsorted(inner_edges, values[~missing], side="right")
        counts = np.bincount(index, minlength=len(inner_edges) + 1).astype(float)
        return np.append(counts, missing.sum())

    def compare(self, frame: pd.DataFrame) -> dict[str, dict]:
        """PSI of every profiled feature present in ``frame`` against the reference, with the shares compared."""
        result: dict[str, dict] = {}
        for name, ref in self.numeric_.items():
            if name not in frame.columns:
                continue
            values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
            counts = self._bin_counts(values, np.asarray(ref["edges"]))
            actual = counts / max(counts.sum(), 1)
            result[name] = {
                "type": "numeric",
                "psi": psi(np.asarray(ref["shares"]), actual),
                "mean_reference": ref["mean"],
                "mean_batch": float(np.nanmean(values)) if np.isfinite(values).any() else None,
                "missing_reference": ref["missing_rate"],
                "missing_batch": float(np.isnan(values).mean()),
            }
        for name, ref in self.categorical_.items():
            if name not in frame.columns:
                continue
            observed = frame[name].fillna(MISSING).astype(str).value_counts(normalize=True)
            levels = sorted(set(ref["shares"]) | set(observed.index))
            expected = np.array([ref["shares"].get(level, 0.0) for level in levels])
            actual = np.array([float(observed.get(level, 0.0)) for level in levels])
            unseen = sorted(set(observed.index) - set(ref["shares"]))
            result[name] = {
                "type": "categorical",
                "psi": psi(expected, actual),
                "unseen_levels": unseen,
                "unseen_share": float(observed[unseen].sum()) if unseen else 0.0,
                "missing_reference": ref["missing_rate"],
                "missing_batch": float(frame[name].isna().mean()),
            }
        return result

    def missing_features(self, frame: pd.DataFrame) -> list[str]:
        """Profiled features that ``frame`` lacks (so :meth:`compare` could not score them)."""
        return sorted((set(self.numeric_) | set(self.categorical_)) - set(frame.columns))

    def to_dict(self) -> dict:
        return {"bins": self.bins, "rows": self.rows_, "numeric": self.numeric_, "categorical": self.categorical_}

    @classmethod
    def from_dict(cls, data: dict) -> ReferenceProfile:
        profile = cls(bins=data["bins"])
        profile.rows_ = data["rows"]
        profile.numeric_ = data["numeric"]
        profile.categorical_ = data["categorical"]
        return profile


def drift_report(profile: ReferenceProfile, frame: pd.DataFrame, settings: DriftConfig) -> dict:
    """Every feature's drift numbers, which drifted, and the dataset verdict (``drift`` or ``none``).

    A feature drifts when its PSI reaches ``psi_threshold``; the dataset drifts when the share
    of drifted features is above ``drift_share`` (0 means: any drifted feature).
    """
    features = profile.compare(frame)
    for stats in features.values():
        stats["drifted"] = stats["psi"] >= settings.psi_threshold
    drifted = sorted((n for n, s in features.items() if s["drifted"]), key=lambda n: -features[n]["psi"])
    share = len(drifted) / len(features) if features else 0.0
    verdict = "drift" if drifted and share > settings.drift_share else "none"
    return {
        "verdict": verdict,
        "drifted_features": drifted,
        "drifted_share": share,
        "psi_threshold": settings.psi_threshold,
        "drift_share": settings.drift_share,
        "reference_rows": profile.rows_,
        "batch_rows": len(frame),
        "features": features,
        "missing_features": profile.missing_features(frame),
    }
