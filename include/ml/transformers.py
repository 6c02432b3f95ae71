"""The scikit-learn transformers of the boolean and datetime feature types, saved inside a model's
Pipeline so that training and scoring read the values with the same code (:mod:`include.ml.feature_rules`).

Both accept the values as delivered (text, bool, datetime64) or as validation read them, and give
float64 columns with NaN where a value is missing or unreadable (the imputer after them fills it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from include.ml.config import DEFAULT_DATETIME_PARTS
from include.ml.feature_rules import as_booleans, as_datetimes, datetime_parts


def _columns(x) -> pd.DataFrame:
    return x if isinstance(x, pd.DataFrame) else pd.DataFrame(x)


class _ColumnwiseTransformer(TransformerMixin, BaseEstimator):
    """Stateless but for the input columns it was fitted on (what scikit-learn's feature names need)."""

    def fit(self, x, y=None):
        frame = _columns(x)
        self.n_features_in_ = frame.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        return self

    def _names(self, input_features) -> list:
        return list(input_features if input_features is not None else self.feature_names_in_)


class BooleanValues(_ColumnwiseTransformer):
    """Each column as 1.0/0.0 (see :func:`~include.ml.feature_rules.as_booleans`)."""

    def transform(self, x) -> np.ndarray:
        frame = _columns(x)
        return np.column_stack([as_booleans(frame[c])[0].to_numpy() for c in frame.columns]).astype("float64")

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray(self._names(input_features), dtype=object)


class DatetimeParts(_ColumnwiseTransformer):
    """Each datetime column as its numeric ``parts`` (year, month, ...; see
    :func:`~include.ml.feature_rules.datetime_parts`), text read with ``date_format`` (default ISO 8601)."""

    def __init__(self, parts: tuple[str, ...] = DEFAULT_DATETIME_PARTS, date_format: str | None = None):
        self.parts = parts
        self.date_format = date_format

    def transform(self, x) -> np.ndarray:
        frame = _columns(x)
        blocks = [datetime_parts(as_datetimes(frame[c], self.date_format)[0], tuple(self.parts)).to_numpy()
                  for c in frame.columns]
        return np.hstack(blocks).astype("float64")

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return np.asarray([f"{name}_{part}" for name in self._names(input_features) for part in self.parts],
                          dtype=object)


class FeatureCode(TransformerMixin, BaseEstimator):
    """The config's ``model.feature_code``: a function of the bundle applied to the feature columns (a
    DataFrame in, a DataFrame of as many rows out), saved in the model by reference (module and function
    names, and the sha256 of the module's source when it was fitted), so that training and scoring run
    the same code. Nothing is pickled of the function itself: loading imports it from the bundle."""

    def __init__(self, reference: str = ""):
        self.reference = reference

    @classmethod
    def named(cls, reference: str) -> FeatureCode:
        """The step for ``reference`` (``include/<...>/<module>.py:<function>``, checked as source)."""
        from include.ml.user_code import CodeReference, check_source

        check_source(CodeReference.parse(reference))
        return cls(reference)

    def _function(self):
        from importlib import import_module

        from include.ml.user_code import CodeReference

        ref = CodeReference.parse(self.reference)
        return getattr(import_module(ref.module), ref.function)

    def fit(self, x, y=None):
        from include.ml.user_code import CodeReference, source_sha256

        frame = _columns(x)
        self.n_features_in_ = frame.shape[1]
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.source_sha256_ = source_sha256(CodeReference.parse(self.reference))
        return self

    def transform(self, x) -> pd.DataFrame:
        from include.ml.errors import ModelCodeError

        frame = _columns(x)
        result = self._function()(frame.copy())
        if not isinstance(result, pd.DataFrame):
            raise ModelCodeError(f"model.feature_code {self.reference} returned {type(result).__name__}, not a "
                                 "DataFrame: return the frame it was given, with its derived columns")
        if len(result) != len(frame):
            raise ModelCodeError(f"model.feature_code {self.reference} returned {len(result)} rows for "
                                 f"{len(frame)}: feature code must keep every row (each is scored); filter rows "
                                 "in the data, not in feature code")
        return result.set_axis(frame.index)
