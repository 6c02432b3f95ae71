"""The diabetes pipeline's own model code, as it came out of a notebook: the cleaning and derived
columns (:func:`add_features`, ``model.feature_code``) and the model (:func:`build_model`,
``model.factory``): a custom transformer that clips outliers, then gradient boosting.

Both run inside the saved model, so scoring applies exactly what training did.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.pipeline import Pipeline

AGE_BANDS = (0, 40, 60, 200)  # years: under 40, 40-59, 60 and over


def add_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The notebook's cleaning and feature code. In: the feature columns of a batch. Out: the same
    rows with ``blood_pressure`` 0 read as missing (the clinic types 0 for "not measured"), and the
    derived columns ``non_hdl`` (total cholesterol minus HDL), ``bmi_x_bp`` (body mass index times
    blood pressure, over 100) and ``age_band`` (text: a categorical feature)."""
    frame = frame.copy()
    frame["blood_pressure"] = frame["blood_pressure"].mask(frame["blood_pressure"] <= 0)
    frame["non_hdl"] = frame["total_cholesterol"] - frame["hdl"]
    frame["bmi_x_bp"] = frame["bmi"] * frame["blood_pressure"] / 100
    bands = pd.cut(frame["age"], bins=AGE_BANDS, right=False, labels=["under_40", "40_to_59", "60_plus"])
    frame["age_band"] = bands.astype("string")
    return frame


class QuantileClipper(TransformerMixin, BaseEstimator):
    """Clips each column to the ``share`` and ``1 - share`` quantiles of the training rows, so one
    extreme measurement cannot pull a split of the trees (fitted state: ``low_``, ``high_``)."""

    def __init__(self, share: float = 0.01):
        self.share = share

    def fit(self, x, y=None):
        values = np.asarray(x, dtype=float)
        self.low_ = np.nanquantile(values, self.share, axis=0)
        self.high_ = np.nanquantile(values, 1 - self.share, axis=0)
        self.n_features_in_ = values.shape[1]
        return self

    def transform(self, x) -> np.ndarray:
        return np.clip(np.asarray(x, dtype=float), self.low_, self.high_)


def build_model(seed: int, n_estimators: int = 150, learning_rate: float = 0.05, max_depth: int = 2,
                clip_share: float = 0.01) -> Pipeline:
    """An unfitted Pipeline: :class:`QuantileClipper`, then scikit-learn's GradientBoostingRegressor
    (not one of the built-in aliases). ``seed`` comes from ``model.seed``, the rest from ``model.params``."""
    return Pipeline([
        ("clip", QuantileClipper(share=clip_share)),
        ("boost", GradientBoostingRegressor(n_estimators=n_estimators, learning_rate=learning_rate,
                                            max_depth=max_depth, subsample=0.8, random_state=seed)),
    ])
