"""Build and fit the scikit-learn pipeline a config describes, on a seeded split."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import ConfigError
from include.ml.estimators import estimator_spec


def build_estimator(config: PipelineConfig):
    """The configured estimator from the registry (:mod:`include.ml.estimators`): its defaults, the
    config's seed where it takes one, and ``model.params`` over both."""
    from sklearn.utils._param_validation import InvalidParameterError

    spec = estimator_spec(config.task, config.model.estimator)
    try:
        estimator = spec.build(config.model.params, seed=config.model.seed)
        estimator._validate_params()  # sklearn checks values at fit; check them now, with the config's name
    except (TypeError, InvalidParameterError) as exc:
        raise ConfigError(
            f"pipeline {config.name!r}: model.params do not fit {config.model.estimator}: {exc}. "
            f"Fix include/pipelines/{config.name}.yaml"
        ) from None
    return estimator


def build_pipeline(config: PipelineConfig, features: list[FeatureSpec]) -> Pipeline:
    """The preprocessing of each feature type, then the estimator: numeric features imputed with the
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
    preprocess = ColumnTransformer(steps, sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), ("model", build_estimator(config))])


@dataclass
class SplitData:
    """A seeded train/holdout split of a validated batch."""

    train: pd.DataFrame
    holdout: pd.DataFrame


def split(frame: pd.DataFrame, config: PipelineConfig) -> SplitData:
    """Seeded split; stratified by the target for classification."""
    stratify = frame[config.target] if config.task == "classification" else None
    train, holdout = train_test_split(
        frame, test_size=config.model.test_size, random_state=config.model.seed, stratify=stratify
    )
    return SplitData(train=train, holdout=holdout)


def fit(train: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec]) -> Pipeline:
    """Fit the configured pipeline on ``train`` (feature columns + target); return the fitted pipeline."""
    from sklearn.utils._param_validation import InvalidParameterError

    model = build_pipeline(config, features)
    try:
        model.fit(train[[f.name for f in features]], train[config.target])
    except InvalidParameterError as exc:
        raise ConfigError(f"pipeline {config.name!r}: model.params rejected by {config.model.estimator}: {exc}. "
                          f"Fix include/pipelines/{config.name}.yaml") from None
    return model
