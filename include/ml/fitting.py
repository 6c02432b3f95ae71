"""Build and fit the scikit-learn pipeline a config describes; split rows into training and a
holdout chosen by a stable hash of each row's key."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import ConfigError, HoldoutSplitError
from include.ml.user_code import build_model


def build_estimator(config: PipelineConfig):
    """The configured model, unfitted (:func:`include.ml.user_code.build_model`): an alias of the
    registry (:mod:`include.ml.estimators`) with its defaults, a class by import path, or what
    ``model.factory`` returns; the config's seed where it takes one, ``model.params`` checked."""
    return build_model(config)


def build_pipeline(config: PipelineConfig, features: list[FeatureSpec], sample: pd.DataFrame | None = None
                   ) -> Pipeline:
    """``model.feature_code`` (when set, as :class:`~include.ml.transformers.FeatureCode`), the standard
    preprocessing (unless ``model.standard_preprocessing`` is false), then the model. With feature
    code, ``sample`` (feature columns of training rows) tells which columns it gives
    (:func:`derived_features`)."""
    from include.ml.transformers import FeatureCode

    steps: list[tuple] = []
    if config.model.feature_code:
        code = FeatureCode.named(config.model.feature_code)
        steps.append(("features", code))
        if sample is None:
            raise ValueError("build_pipeline needs sample rows when the config has model.feature_code")
        features = derived_features(features, code.fit(sample).transform(sample.head(500)))
    if config.model.standard_preprocessing:
        steps.append(("preprocess", preprocessing(features)))
    return Pipeline([*steps, ("model", build_estimator(config))])


def derived_features(features: list[FeatureSpec], frame: pd.DataFrame) -> list[FeatureSpec]:
    """The features the standard preprocessing sees after feature code gave ``frame``: the declared
    ones it kept (their types), then each new column, numeric if its dtype is a number, boolean if
    bool, datetime if a datetime, else categorical."""
    declared = {f.name: f for f in features}
    derived = []
    for name in frame.columns:
        if name in declared:
            derived.append(declared[name])
            continue
        column = frame[name]
        kind = ("boolean" if pd.api.types.is_bool_dtype(column) else "numeric" if pd.api.types.is_numeric_dtype(
            column) else "datetime" if pd.api.types.is_datetime64_any_dtype(column) else "categorical")
        derived.append(FeatureSpec(name=str(name), type=kind))
    return derived


def preprocessing(features: list[FeatureSpec]) -> ColumnTransformer:
    """The preprocessing of each feature type: numeric features imputed with the
    median and scaled; categorical ones imputed as a level and one-hot encoded, at most
    ``max_categories`` columns each (levels seen fewer than 5 times grouped, unknown levels ignored);
    boolean ones read as 0/1 and imputed with the most frequent; datetime ones split into their
    numeric ``parts`` (:class:`~include.ml.transformers.DatetimeParts`), imputed and scaled."""
    from include.ml.transformers import BooleanValues, DatetimeParts

    def scaled(*first) -> Pipeline:
        return Pipeline([*first, ("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])

    numeric = [f.name for f in features if f.type == "numeric"]
    boolean = [f.name for f in features if f.type == "boolean"]
    steps: list[tuple] = [("numeric", scaled(), numeric)]
    bounds = sorted({f.max_categories for f in features if f.type == "categorical"})
    for bound in bounds or [None]:  # one encoder per bound: max_categories is an encoder's setting
        columns = [f.name for f in features if f.type == "categorical" and f.max_categories == bound]
        encoder = OneHotEncoder(handle_unknown="ignore", min_frequency=5, max_categories=bound)
        name = "categorical" if len(bounds) <= 1 else f"categorical_{bound}"
        steps.append((name, Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
                                      ("onehot", encoder)]), columns))
    if boolean:
        steps.append(("boolean", Pipeline([("read", BooleanValues()),
                                           ("impute", SimpleImputer(strategy="most_frequent"))]), boolean))
    for index, spec in enumerate(f for f in features if f.type == "datetime"):  # a column name may hold "__"
        parts = DatetimeParts(parts=spec.datetime_parts, date_format=spec.format)
        steps.append((f"datetime_{index}", scaled(("parts", parts)), [spec.name]))
    return ColumnTransformer(steps, sparse_threshold=0.0)


# pandas' siphash key (16 characters) for the holdout hash. Changing it moves every row between
# training and holdout, so every champion would then have trained on part of the new holdout.
HOLDOUT_HASH_KEY = "ml-holdout-v1-k0"
MISSING_TEXT = "\x00missing"  # what a missing non-numeric key value hashes as


@dataclass
class SplitData:
    """Training rows and holdout rows of validated data; ``key`` is the columns whose hash chose them."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    key: list[str]


def holdout_key(frame: pd.DataFrame, config: PipelineConfig) -> list[str]:
    """The columns that identify a row for the holdout: the config's ``id_columns`` when the frame has
    them, else every column but the target (the row's content)."""
    ids = [c for c in config.id_columns if c in frame.columns]
    return ids or [c for c in frame.columns if c != config.target]


def holdout_positions(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's place in [0, 1), from a keyed hash of its values in ``columns`` (not of its index).

    Stable across processes and batches: numbers (and booleans) are hashed as float64 (1 and 1.0
    alike, one NaN, -0.0 as 0.0), everything else as its text, through
    ``pandas.util.hash_pandas_object`` with :data:`HOLDOUT_HASH_KEY` (siphash, unchanged in pandas
    since 0.20); the top 53 bits of the 64-bit hash make the fraction. Python's ``hash()`` is salted
    per process and never used."""
    parts = {}
    for name in columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            values = column.astype("float64").to_numpy(copy=True) + 0.0
            values[np.isnan(values)] = np.nan
            parts[name] = values
        else:
            parts[name] = column.astype("string").fillna(MISSING_TEXT).astype(object).to_numpy()
    keyed = pd.DataFrame(parts, index=range(len(frame)), columns=list(parts))
    hashed = pd.util.hash_pandas_object(keyed, index=False, hash_key=HOLDOUT_HASH_KEY, categorize=False)
    return (hashed.to_numpy(np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def split(frame: pd.DataFrame, config: PipelineConfig) -> SplitData:
    """The holdout by ``model.holdout``: :func:`hash_split` (the default), or, when asked for, a seeded
    random split of ``frame`` stratified by the target (``key`` empty)."""
    if config.model.holdout == "hash":
        return hash_split(frame, config)
    stratify = frame[config.target] if config.task == "classification" else None
    train, holdout = train_test_split(frame, test_size=config.model.test_size, random_state=config.model.seed,
                                      stratify=stratify)
    return SplitData(train=train, holdout=holdout, key=[])


def hash_split(frame: pd.DataFrame, config: PipelineConfig) -> SplitData:
    """The rows whose :func:`holdout_positions` fall below ``model.test_size`` are the holdout, the rest
    train. A row's side depends on its key alone (:func:`holdout_key`), never on the batch, the window
    or the seed: a row is held out from every model or from none, so a champion never trained on the
    candidate's holdout. A larger ``test_size`` only adds rows to the holdout.

    Not stratified: a class's share of the holdout varies by sampling. :class:`HoldoutSplitError`
    when either side is empty or, for classification, has fewer than two classes (the metrics and the
    fit need two); nothing falls back to a random split, which would hold out rows a champion saw."""
    key = holdout_key(frame, config)
    in_holdout = holdout_positions(frame, key) < config.model.test_size
    data = SplitData(train=frame[~in_holdout], holdout=frame[in_holdout], key=key)
    _check_sides(data, config)
    return data


def _check_sides(data: SplitData, config: PipelineConfig) -> None:
    what = f"id columns {data.key}" if set(data.key) <= set(config.id_columns) else "row content"
    for side, rows in (("holdout", data.holdout), ("training rows", data.train)):
        counts = rows[config.target].value_counts() if config.task == "classification" else None
        if len(rows) and (counts is None or len(counts) >= 2):
            continue
        found = f"{len(rows)} rows" + (f" of {len(counts)} class(es) {dict(counts.items())}" if len(rows) and
                                       counts is not None else "")
        raise HoldoutSplitError(
            f"pipeline {config.name!r}: the {side} chosen by the hash of each row's {what} "
            f"(model.test_size {config.model.test_size}) has {found} of {len(data.train) + len(data.holdout)}; "
            + ("evaluation needs rows of at least two classes on each side. " if counts is not None else "")
            + "Train on more rows: raise model.window_batches or ask for larger deliveries"
            + (", or change model.test_size" if side == "holdout" else "")
            + f" in include/pipelines/{config.name}.yaml")


def fit(train: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec]) -> Pipeline:
    """Fit the configured pipeline on ``train`` (feature columns + target); return the fitted pipeline."""
    from sklearn.utils._param_validation import InvalidParameterError

    x = train[[f.name for f in features]]
    model = build_pipeline(config, features, sample=x)
    try:
        model.fit(x, train[config.target])
    except InvalidParameterError as exc:
        raise ConfigError(f"pipeline {config.name!r}: model.params rejected by {config.model.described}: {exc}. "
                          f"Fix include/pipelines/{config.name}.yaml") from None
    return model
