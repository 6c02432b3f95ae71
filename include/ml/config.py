"""Pipeline configs: one YAML file per pipeline, loaded and validated here and nowhere else.

Cheap to import (pydantic and yaml only; the estimator registry names scikit-learn classes without
importing them): DAG files call it while parsing. Each task has its own config class, so the JSON Schema
(:mod:`include.ml.config_reference`) lists the estimators and metrics a pipeline of that task may choose.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import string
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from include.ml.errors import ConfigError
from include.ml.estimators import ESTIMATORS, TASKS, estimator_names
from include.ml.paths import PIPELINES_DIR, format_of, resolve
from include.ml.user_code import IMPORT_PATH_PATTERN, REFERENCE_PATTERN, CodeReference, check_source, code_hashes

# task -> metric -> greater is better; the order is the order the schema and docs list them in
METRICS: dict[str, dict[str, bool]] = {
    "classification": {"roc_auc": True, "accuracy": True, "balanced_accuracy": True, "f1": True,
                       "average_precision": True, "log_loss": False},
    "regression": {"rmse": False, "mae": False, "r2": True},
}


# metric -> (lowest, highest) value it can take (None: unbounded); a gate beyond them is never met
METRIC_RANGES: dict[str, tuple[float | None, float | None]] = {
    "roc_auc": (0.0, 1.0), "accuracy": (0.0, 1.0), "balanced_accuracy": (0.0, 1.0), "f1": (0.0, 1.0),
    "average_precision": (0.0, 1.0), "log_loss": (0.0, None), "rmse": (0.0, None), "mae": (0.0, None),
    "r2": (None, 1.0),
}
DEFAULT_DRIFT_MIN_BATCH_ROWS = 200


MODEL_OPS_DAG_ID = "ml_model_ops"  # manual promote / rollback of any pipeline


def training_dag_id(pipeline: str) -> str:
    """The id of a pipeline's training DAG."""
    return f"ml_training__{pipeline}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


FEATURE_TYPES = ("numeric", "categorical", "boolean", "datetime")
FeatureType = Literal["numeric", "categorical", "boolean", "datetime"]
DATETIME_PARTS = ("year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour", "minute")
DatetimePart = Literal["year", "quarter", "month", "day", "dayofweek", "dayofyear", "hour", "minute"]
DEFAULT_DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")
DEFAULT_MAX_CATEGORIES = 50  # one-hot columns of a categorical feature: its most frequent levels, the rest grouped


class FeatureSpec(_Strict):
    """One input column: its kind, and the rules a batch must keep."""

    name: str = Field(description="the column's name in the batch files")
    type: FeatureType = Field(
        description="numeric columns are imputed with the median and scaled; categorical ones one-hot encoded "
                    "(at most max_categories columns); boolean ones read as 0/1 (true/false, yes/no, y/n, t/f, 1/0, "
                    "any case); datetime ones split into numeric parts (see parts), never one level per timestamp"
    )
    min: float | None = Field(default=None, description="numeric only: the smallest valid value")
    max: float | None = Field(default=None, description="numeric only: the largest valid value")
    allowed: list[str] | None = Field(
        default=None, description="categorical only: levels outside this list fail validation"
    )
    max_missing: float | None = Field(
        default=None, ge=0, le=1, description="the share of missing values allowed (default: validation.max_missing)"
    )
    max_categories: int = Field(
        default=DEFAULT_MAX_CATEGORIES, ge=2,
        description="categorical only: the model one-hot encodes at most this many levels (the most frequent; "
                    "levels seen fewer than 5 times and the rest are grouped as one), so its size stays bounded",
    )
    parts: list[DatetimePart] | None = Field(
        default=None,
        description="datetime only: the numeric parts the model and the drift check see (default: "
                    + ", ".join(DEFAULT_DATETIME_PARTS) + "); timezone-aware values are read in UTC",
    )
    format: str | None = Field(
        default=None,
        description="datetime only: the strftime format of dates delivered as text, e.g. '%d/%m/%Y' "
                    "(default: ISO 8601, e.g. 2026-01-31 or 2026-01-31T08:00:00)",
    )

    @model_validator(mode="after")
    def _rules_fit_type(self) -> FeatureSpec:
        if self.type != "numeric" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature {self.name!r}: min/max apply to numeric features only")
        if self.type != "categorical" and self.allowed is not None:
            raise ValueError(f"feature {self.name!r}: 'allowed' applies to categorical features only")
        if self.type != "datetime" and (self.parts is not None or self.format is not None):
            raise ValueError(f"feature {self.name!r}: 'parts' and 'format' apply to datetime features only")
        if self.parts is not None and not self.parts:
            raise ValueError(f"feature {self.name!r}: parts must name at least one of {list(DATETIME_PARTS)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} is above max {self.max}")
        return self

    @property
    def datetime_parts(self) -> tuple[str, ...]:
        """The parts of a datetime feature the model sees, in the order given."""
        return tuple(dict.fromkeys(self.parts)) if self.parts else DEFAULT_DATETIME_PARTS


class InferenceSettings(_Strict):
    """How ``features: infer`` reads the first batch that passes (the result is then fixed in the registry).

    Per column, in order: ``exclude`` and ``types`` win; a datetime dtype, or text where nearly every value is
    a date, is ``datetime``; a bool dtype, or text whose values are all true/false words, is ``boolean``; other
    numbers are ``numeric`` (integer codes too: name them in ``types`` to make them categorical); other text
    is ``categorical``. A column is left out, with the reason in the validation record's ``inference_notes``,
    when it has one distinct value per row (ID-like: text, or integers that count up or are named ..._id), when
    it is text with more than ``max_levels`` distinct values (free text), or when more of it is missing than
    ``validation.max_missing`` allows (it would fail every batch).
    """

    exclude: list[str] = Field(default_factory=list, description="columns never used as features")
    types: dict[str, FeatureType] = Field(
        default_factory=dict, description="a column's type, over what inference would choose (e.g. code: categorical)"
    )
    date_formats: dict[str, str] = Field(
        default_factory=dict,
        description="the strftime format of a text date column (default: the first of ISO 8601, %Y/%m/%d, "
                    "%m/%d/%Y, %d/%m/%Y, %d.%m.%Y that reads it)",
    )
    max_levels: int = Field(
        default=200, ge=2,
        description="a text column with more distinct values than this in the first batch is left out as free text",
    )
    id_share: float = Field(
        default=0.95, gt=0, le=1,
        description="a text or integer column whose distinct values are at least this share of its rows is ID-like",
    )
    max_categories: int = Field(
        default=DEFAULT_MAX_CATEGORIES, ge=2, description="the max_categories of each inferred categorical feature"
    )


NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"  # a pipeline's name: its config file's name and part of its DAG ids


def check_template(key: str, value: str, placeholders: tuple[str, ...], needs: tuple[str, ...] = ()) -> str:
    """``value`` if it is a path template using only ``placeholders`` (plain ``{name}``, no format spec,
    no escaped ``{{``/``}}`` that would stay in the path unfilled) and at least one of ``needs``;
    a ``ValueError`` naming ``key`` and the allowed placeholders otherwise."""
    allowed = " and ".join(f"{{{name}}}" for name in placeholders)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(f"{key} is not a valid path template ({exc}); it may only use {allowed}") from None
    used = set()
    for literal, field, spec, conversion in parts:
        if "{" in literal or "}" in literal:
            raise ValueError(f"{key} has an escaped brace ('{{{{' or '}}}}'), which is never filled in and stays in "
                             f"the path; write a placeholder as {{ds}}. It may only use {allowed}")
        if field is None:
            continue
        if field not in placeholders or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{key} may only use the placeholders {allowed}; {shown} is not one")
        used.add(field)
    if needs and not used & set(needs):
        wanted = " or ".join(f"{{{name}}}" for name in needs)
        raise ValueError(f"{key} must contain {wanted}, so that each date has its own path")
    return value


class SourceConfig(_Strict):
    """With ``kind: files`` (the default): where the batch file for a logical date lands; ``{ds}``
    (YYYY-MM-DD) and ``{ds_nodash}`` are filled in."""

    kind: Literal["files"] = Field(default="files", description="files: a CSV or Parquet file per logical date")
    path: str = Field(
        description="the batch file of a logical date, relative to the data root ($ML_HOME) unless absolute; "
                    "must contain {ds} or {ds_nodash}"
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None, description="the file format (default: parquet for .parquet/.pq paths, else csv)"
    )
    max_bytes: int = Field(
        default=2 * 1024**3, ge=1,
        description="the largest delivery read, in bytes (training batch, scoring inputs and label files); a larger "
                    "file is refused unread"
    )

    @field_validator("path")
    @classmethod
    def _has_date(cls, value: str) -> str:
        return check_template("source.path", value, ("ds", "ds_nodash"), needs=("ds", "ds_nodash"))

    @property
    def file_format(self) -> str:
        return self.format or format_of(self.path)

    def path_for(self, ds: str) -> Path:
        """The landing file for a logical date ``ds`` (YYYY-MM-DD), resolved under the data root."""
        return resolve(self.path.format(ds=ds, ds_nodash=ds.replace("-", "")))


QUERY_PARAMETERS = ("ds", "ds_nodash")  # what a query may bind: :ds (YYYY-MM-DD) and :ds_nodash (YYYYMMDD)
# a bound parameter in SQLAlchemy's text(): ':name', not '::cast' nor 'a:b' (its own TextClause rule)
_BIND_PARAMETER = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])")


def query_parameters(ds: str) -> dict[str, str]:
    """The values a source query's bound parameters take for logical date ``ds`` (YYYY-MM-DD)."""
    return {"ds": ds, "ds_nodash": ds.replace("-", "")}


class SqlQuery(_Strict):
    """A query through a database connection: rows for a logical date, bound (never pasted) as ``:ds``."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="the query's name: in messages, and the file its rows are written to (query-<name>.parquet)"
    )
    connection: str = Field(
        description="the Airflow connection the DAGs read through (bin/airflow connections add ...); its fields "
                    "become the SQLAlchemy URL, its password stays out of logs, XCom and metadata"
    )
    url_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")] = Field(
        default="ML_SOURCE_URL",
        description="outside Airflow (command line, notebook): the environment variable holding the SQLAlchemy URL "
                    "(or pass --source-url)"
    )
    query: str = Field(
        description="SQL returning the rows of one logical date; :ds (YYYY-MM-DD) and :ds_nodash (YYYYMMDD) are "
                    "bound parameters (the driver sends the value apart from the SQL text), one of them required"
    )
    chunk_rows: int = Field(default=50_000, ge=1, le=1_000_000,
                            description="rows fetched from the server-side cursor, and written, at a time")

    @property
    def file_name(self) -> str:
        """The Parquet file the query's rows are written to (in the run's workspace, or the scoring inbox)."""
        return f"query-{self.name}.parquet"

    @field_validator("query")
    @classmethod
    def _binds_the_date(cls, value: str) -> str:
        cast = re.search(r"(?<![:\w]):(ds|ds_nodash)::", value)
        if cast:  # SQLAlchemy's text() leaves ':ds::date' as it is: the database would see the colon
            raise ValueError(f"write CAST(:{cast.group(1)} AS ...) instead of :{cast.group(1)}::...; a parameter "
                             "followed by '::' is not read as a parameter")
        used = set(_BIND_PARAMETER.findall(value))
        unknown = sorted(used - set(QUERY_PARAMETERS))
        if unknown:
            raise ValueError(f"the query binds {', '.join(':' + n for n in unknown)}; only "
                             f"{' and '.join(':' + n for n in QUERY_PARAMETERS)} have values (write a literal "
                             "colon as \\:)")
        if not used:
            raise ValueError("the query must select by :ds or :ds_nodash (a bound parameter, not {ds}), so that each "
                             "date reads its own rows")
        return value


class SqlSource(SqlQuery):
    """With ``kind: sql``: the batch of a logical date is what a query returns, read through a
    connection in chunks with a server-side cursor and written to the run's workspace as Parquet,
    then checked like a delivered file."""

    kind: Literal["sql"] = Field(description="sql: the rows a query returns for the logical date")
    max_bytes: int = Field(
        default=2 * 1024**3, ge=1,
        description="the largest delivery read, in bytes (the query's Parquet file, scoring inputs and label files)"
    )


def _source_kind(value: Any) -> str:
    """The ``source`` variant: its ``kind``, ``files`` when left out (every config before SQL sources)."""
    if isinstance(value, dict):
        return value.get("kind", "files")
    return getattr(value, "kind", "files")


Source = Annotated[Annotated[SourceConfig, Tag("files")] | Annotated[SqlSource, Tag("sql")],
                   Discriminator(_source_kind)]


class ValidationRules(_Strict):
    """What a batch must meet before a model is trained on it."""

    min_rows: int = Field(default=100, ge=1, description="a batch with fewer rows fails validation")
    max_missing: float = Field(default=0.5, ge=0, le=1, description="default per-feature missing share")
    min_class_share: float = Field(
        default=0.01, ge=0, lt=0.5,
        description="classification: each class of the target needs this share of the labelled rows",
    )
    unlabelled: Literal["drop", "error"] = Field(
        default="drop",
        description="rows whose target is missing: drop (left out of training, counted in the run summary) "
                    "or error (the batch fails validation)",
    )
    max_unlabelled_share: float = Field(
        default=0.1, ge=0, le=1, description="with unlabelled: drop, a share of unlabelled rows above this warns",
    )
    max_out_of_range_share: float = Field(
        default=0.01, ge=0, le=1,
        description="values outside a declared min/max or allowed list: a warning up to this share, an error above",
    )
    range_tolerance: float = Field(
        default=0.1, ge=0, description="values beyond the training data's range by more than this share of it warn",
    )


def _estimator_description(task: str) -> str:
    choices = ", ".join(f"{spec.name} ({spec.import_path})" for spec in ESTIMATORS[task].values())
    return (f"the scikit-learn estimator: {choices}, or the import path of any scikit-learn-compatible class "
            "(fit and predict" + (", and predict_proba" if task == "classification" else "") + "); exactly one of "
            "estimator and factory")


ImportPath = Annotated[str, Field(pattern=IMPORT_PATH_PATTERN)]  # package.module.Class


def _metric_description(task: str) -> str:
    def listed(better: bool) -> str:
        return ", ".join(name for name, greater in METRICS[task].items() if greater is better)

    higher, lower = listed(True), listed(False)
    return ("the primary metric the gates and performance alerts judge: "
            + "; ".join(part for part in (higher and f"{higher} (higher is better)",
                                          lower and f"{lower} (lower is better)") if part))


class ModelConfig(_Strict):
    """The estimator and how it is fitted. Each task has its own subclass, whose ``estimator`` lists
    that task's choices from :data:`include.ml.estimators.ESTIMATORS`."""

    task: ClassVar[str]

    estimator: str | None = Field(
        default=None, description="the scikit-learn estimator: one of the task's aliases (see the estimators table) "
                                  "or an import path")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="keyword arguments for the estimator (over this project's defaults; checked against the class's "
                    "own parameters by `config check`), or for the model.factory function",
    )
    factory: str | None = Field(
        default=None, json_schema_extra={"pattern": REFERENCE_PATTERN},
        description="instead of estimator: include/<folder>/<module>.py:<function>, a function of the bundle "
                    "returning an unfitted estimator or a whole scikit-learn Pipeline; called with model.params as "
                    "keyword arguments (and seed=model.seed when it takes seed). See docs/notebook-to-pipeline.md",
    )
    feature_code: str | None = Field(
        default=None, json_schema_extra={"pattern": REFERENCE_PATTERN},
        description="include/<folder>/<module>.py:<function>, a function of the bundle taking the feature columns "
                    "(a DataFrame) and returning a DataFrame (derived columns, cleaning); saved inside the model, "
                    "so training and scoring run it alike. New numeric columns are numeric features, other new "
                    "columns categorical",
    )
    standard_preprocessing: bool = Field(
        default=True,
        description="put the standard preprocessing (impute, scale, one-hot, by feature type) between feature_code "
                    "and the estimator; false when model.factory returns a Pipeline with its own",
    )
    test_size: float = Field(
        default=0.25, gt=0, lt=1,
        description="the share of rows held out for evaluation (how they are chosen: model.holdout)",
    )
    seed: int = Field(default=42, description="seeds the estimator's random_state and the stratified holdout split")
    window_batches: int = Field(
        default=1, ge=1,
        description="how many delivered batches the candidate trains on: the run's own and the most recent earlier "
                    "ones (each as validated when it arrived); drift is still judged on the run's own batch",
    )
    holdout: Literal["hash", "stratified"] = Field(
        default="hash",
        description="how the holdout rows are chosen: 'hash' (a row is in the holdout when a stable hash of its id "
                    "columns, or of its content without id columns, falls below test_size, so it is held out for "
                    "every model or for none and champion and candidate are compared on rows neither trained on), "
                    "'stratified' (a seeded random split of the run's rows stratified by the target: only where "
                    "no row is delivered twice and window_batches is 1, and a rare class needs its exact share of "
                    "a small holdout; see docs/gates.md)",
    )

    @model_validator(mode="after")
    def _stratified_within_one_batch(self) -> ModelConfig:
        if self.holdout == "stratified" and self.window_batches > 1:
            raise ValueError(
                f"model.holdout 'stratified' with model.window_batches {self.window_batches}: each run would hold "
                "out rows the champion trained on (earlier batches recur in the window), inflating its score; "
                "use model.holdout 'hash' (the default) with a window")
        return self

    @field_validator("estimator", mode="before")
    @classmethod
    def _offered_for_task(cls, value: Any) -> Any:
        if not hasattr(cls, "task") or value is None:  # the base class, not validated on its own
            return value
        if value not in ESTIMATORS[cls.task] and not (isinstance(value, str) and re.fullmatch(IMPORT_PATH_PATTERN,
                                                                                               value)):
            choices = sorted(ESTIMATORS[cls.task])
            raise PydanticCustomError(
                "estimator_for_task",
                f"model.estimator {value!r} is not available for task {cls.task!r}; choose one of {choices} or "
                "write the import path of a scikit-learn-compatible class, e.g. sklearn.ensemble.ExtraTreesRegressor",
                {"estimator": value, "task": cls.task, "choices": choices},
            )
        return value

    @field_validator("factory", "feature_code")
    @classmethod
    def _code_in_bundle(cls, value: str | None) -> str | None:
        """Checked as source only (no import: DAG files parse this); `config check` imports and calls it."""
        if value is not None:
            check_source(CodeReference.parse(value))
        return value

    @model_validator(mode="after")
    def _one_model(self) -> ModelConfig:
        if (self.estimator is None) == (self.factory is None):
            raise ValueError("set exactly one of model.estimator (a class) and model.factory (a function of the "
                             "bundle that returns the model)")
        return self

    @property
    def described(self) -> str:
        """What builds the model, as the config names it: the estimator or the factory."""
        return self.estimator or self.factory or ""


class ClassificationModel(ModelConfig):
    """The estimator of a classification pipeline and how it is fitted."""

    task: ClassVar[str] = "classification"
    estimator: Literal[estimator_names("classification")] | ImportPath | None = Field(  # type: ignore[valid-type]
        default=None, description=_estimator_description("classification")
    )


class RegressionModel(ModelConfig):
    """The estimator of a regression pipeline and how it is fitted."""

    task: ClassVar[str] = "regression"
    estimator: Literal[estimator_names("regression")] | ImportPath | None = Field(  # type: ignore[valid-type]
        default=None, description=_estimator_description("regression")
    )


class Gates(_Strict):
    """The quality gates: an absolute minimum, a trivial baseline to beat, a paired-bootstrap comparison
    with production, and a guard against target leakage (see docs/gates.md for choosing them).

    Promote only when the candidate meets ``min_score``, beats the baseline (the class prior, or the
    mean) by ``min_gain_over_baseline``, and the pessimistic end of the ``confidence`` interval of
    (candidate - production) on the same holdout rows is above -``max_regression`` (so with
    ``max_regression: 0`` a candidate must be measurably better; an equal one is not). A perfect
    score, or one feature that alone predicts the target to ``leakage_threshold``, holds it.
    """

    min_score: float = Field(description="the candidate's primary metric must reach this (a ceiling for losses)")
    max_regression: float = Field(
        default=0.04, ge=0,
        description="allowed loss of primary metric against production at the interval's pessimistic end, in "
                    "metric units (the default suits roc_auc and other 0-1 scores; set it for rmse and mae)",
    )
    bootstrap_resamples: int = Field(
        default=1000, ge=50, le=100_000, description="paired-bootstrap resamples of the holdout rows"
    )
    confidence: float = Field(
        default=0.9, gt=0.5, lt=1, description="the confidence of the candidate-minus-production interval"
    )
    bootstrap_seed: int = Field(default=0, description="seeds the bootstrap, so a rerun decides the same way")
    min_gain_over_baseline: float = Field(
        default=0.0, ge=0,
        description="how much better than a trivial model (the training rows' class prior, or their mean) the "
                    "candidate must be on the holdout, in metric units; at 0 it must still be better at all",
    )
    leakage_threshold: float = Field(
        default=0.99, gt=0.5, le=1,
        description="a feature that alone reaches this ROC AUC (classification) or |correlation| (regression) "
                    "with the target on the holdout holds the candidate as possible target leakage",
    )


class Levels(_Strict):
    """The two levels of a drift statistic: above ``drifted`` a feature drifted, above ``severe`` badly."""

    drifted: float = Field(gt=0, description="above this, the feature drifted")
    severe: float = Field(gt=0, description="above this, the feature drifted severely (the dataset drifts)")

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.severe < self.drifted:
            raise ValueError(f"severe ({self.severe}) must not be below drifted ({self.drifted})")
        return self


def _default_levels() -> dict[str, Levels]:
    return {
        "wasserstein": Levels(drifted=0.1, severe=0.5),
        "psi": Levels(drifted=0.1, severe=0.25),
        "jensen_shannon": Levels(drifted=0.1, severe=0.25),
        "ks": Levels(drifted=0.1, severe=0.3),
        "unseen_share": Levels(drifted=0.02, severe=0.1),
        "missing_rate_change": Levels(drifted=0.1, severe=0.3),
    }


DRIFT_STATISTICS = tuple(_default_levels())


class DriftConfig(_Strict):
    """How a batch is judged against the production model's training data.

    A feature drifts when its gating statistic is above both the configured level and what
    sampling noise alone gives at these batch and reference sizes.
    """

    numeric_statistic: Literal["wasserstein", "psi", "jensen_shannon", "ks"] = Field(
        default="wasserstein", description="the statistic that decides whether a numeric feature drifted"
    )
    categorical_statistic: Literal["jensen_shannon", "psi"] = Field(
        default="jensen_shannon", description="the statistic that decides whether a categorical feature drifted"
    )
    thresholds: dict[str, Levels] = Field(
        default_factory=_default_levels,
        description="levels per statistic (" + ", ".join(DRIFT_STATISTICS) + "); those given replace the defaults",
    )
    bins: int = Field(default=10, ge=2, le=100, description="histogram bins of a numeric feature (psi, jensen_shannon)")
    min_batch_rows: int = Field(
        default=DEFAULT_DRIFT_MIN_BATCH_ROWS, ge=1,
        description=f"below this, the verdict is insufficient_data (default {DEFAULT_DRIFT_MIN_BATCH_ROWS}, or "
                    "validation.min_rows when that is lower; never above validation.min_rows, or a batch that passed "
                    "validation would be held for being too small)",
    )
    drift_share: float = Field(default=0.5, gt=0, le=1, description="dataset drifts when this share of features drift")
    critical_features: list[str] = Field(default_factory=list, description="any of these drifting means drift")
    critical_top_features: int = Field(
        default=0, ge=0,
        description="also critical: the production model's N most important features by permutation importance "
                    "on its holdout (0: none)",
    )

    @field_validator("thresholds", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        unknown = sorted(set(value) - set(DRIFT_STATISTICS))
        if unknown:
            raise ValueError(f"unknown drift statistic(s) {unknown}; known: {list(DRIFT_STATISTICS)}")
        return {**_default_levels(), **value}

    def levels(self, statistic: str) -> Levels:
        return self.thresholds[statistic]


class ScoringConfig(_Strict):
    """Batch scoring: where partitions arrive and predictions go ({pipeline} and {ds} filled in,
    relative to the data root), chunk size, and the share of bad rows that fails a partition."""

    input_dir: str = Field(
        default="scoring/{pipeline}/{ds}", description="where a day's partitions to score arrive"
    )
    output_dir: str = Field(
        default="predictions/{pipeline}/{ds}", description="where a day's predictions (and rejects) are written"
    )
    chunk_rows: int = Field(default=100_000, ge=100, description="rows read, validated and predicted at a time")
    max_reject_share: float = Field(default=0.01, ge=0, le=1, description="above this share of bad rows, fail")
    query: SqlQuery | None = Field(
        default=None,
        description="read a day's rows to score by this query (one partition per date, written to input_dir as "
                    "query-<name>.parquet) instead of the files delivered there",
    )

    @field_validator("input_dir", "output_dir")
    @classmethod
    def _has_date(cls, value: str, info: ValidationInfo) -> str:
        return check_template(f"scoring.{info.field_name}", value, ("pipeline", "ds"), needs=("ds",))


class PerformanceConfig(_Strict):
    """Realised performance once labels arrive: where delivered labels land (files named
    ``<delivery date>*.csv|parquet`` holding the id columns and the target), how far back stored
    predictions are searched, and when to alert. A group (model version x scoring date) alerts when
    its metric is worse than ``floor`` (default: ``gates.min_score``) or worse than the version's
    validation score by more than ``max_drop`` (in metric units); under ``min_rows`` labelled rows
    it is recorded but never alerts (too noisy to tell)."""

    labels_dir: str = Field(
        default="labels/{pipeline}", description="where delivered label files land, relative to the data root"
    )
    lookback_days: int = Field(
        default=30, ge=1, le=3660, description="how many days of stored predictions delivered labels are matched to"
    )
    floor: float | None = Field(
        default=None, description="alert when the realised metric is worse than this (default: gates.min_score)"
    )
    max_drop: float = Field(
        default=0.05, ge=0, description="alert when worse than the version's validation score by more than this"
    )
    min_rows: int = Field(default=100, ge=1, description="a group with fewer labelled rows never alerts")

    @field_validator("labels_dir")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return check_template("performance.labels_dir", value, ("pipeline",))


class AlertConfig(_Strict):
    """Who is emailed when a run fails, drifts or is refused."""

    email: list[str] = Field(min_length=1, description="the recipients")
    from_email: str = Field(default="ml-pipeline@localhost", description="the sender address")


DriftPolicy = Literal["hold", "approve", "promote_if_better"]
DRIFT_POLICIES: tuple[str, ...] = get_args(DriftPolicy)


class DecisionSettings(_Strict):
    """What happens to a candidate that passed the quality gates but was held for input drift (or too
    little data to tell): ``hold`` registers it and waits for a person to promote it by hand;
    ``approve`` also asks for a decision in Airflow's Required Actions (promote the candidate or keep
    production), emailed to the recipients, kept as it is after ``response_timeout_hours``;
    ``promote_if_better`` promotes it when it is measurably better than production on this run's holdout
    (the pessimistic end of the ``gates.confidence`` interval above zero), else holds it."""

    drift_policy: DriftPolicy = Field(
        default="approve",
        description="what a drift hold does: hold (register, a person promotes by hand), approve (hold and ask "
                    "in Airflow's Required Actions), promote_if_better (promote when measurably better than "
                    "production on this run's holdout, else hold)",
    )
    response_timeout_hours: float = Field(
        default=24, gt=0, le=24 * 30,
        description="approve: with no answer after this long, production is kept and the recipients are told",
    )


class DeadlineSettings(_Strict):
    """Deadline alerts (Airflow deadline alerts, checked by the scheduler), emailed to the recipients;
    off when unset. Both count from the run's logical date, so a run created long after its date (a
    backfill or a rerun) misses its deadline at once."""

    training_minutes: float | None = Field(
        default=None, gt=0,
        description="email when a training run has not finished this many minutes after its logical date",
    )
    scoring_minutes: float | None = Field(
        default=None, gt=0,
        description="email when a scheduled scoring run has not written its predictions this many minutes "
                    "after its logical date (asset-triggered runs have no logical date and no deadline)",
    )


class SimulationConfig(_Strict):
    """The embedded data generator that `python -m include.ml simulate` lands batches from (demo and tests)."""

    generator: Literal["credit_default", "house_prices", "digits", "diabetes"] = Field(
        description="which built-in generator")
    rows_per_day: int = Field(default=2000, ge=10, description="rows of a training batch")
    seed: int = Field(default=7, description="seeds the generator; a day's batch is the same on every run")
    drift_from: dt.date | None = Field(default=None, description="from this date on, the generated data drifts")
    scoring_partitions: int = Field(default=2, ge=1, description="scoring files delivered per day")
    scoring_rows: int = Field(default=1000, ge=10, description="rows per scoring file")
    label_delay_days: int = Field(default=2, ge=0, description="days between scoring and the labels' delivery")


class AirflowSettings(_Strict):
    """How the pipeline's DAGs are scheduled and retried."""

    schedule: str | None = Field(default="@daily", description="the training DAG's schedule (null: manual only)")
    start_date: dt.date = Field(default=dt.date(2026, 1, 1), description="the first logical date")
    owner: str = Field(default="ml-platform", description="the DAGs' owner shown in Airflow")
    retries: int = Field(default=2, ge=0, description="retries of a failed task")
    retry_delay_seconds: float = Field(default=60, gt=0, description="the wait before the first retry (then doubled)")
    max_retry_delay_seconds: float = Field(default=1800, gt=0, description="the longest wait between retries")
    task_timeout_minutes: float = Field(default=60, gt=0, description="a task running longer fails (and retries)")
    batch_wait_minutes: float = Field(
        default=720, gt=0,
        description="how long a training run waits for its batch to land (deferred: no worker slot held) before it "
                    "fails with a batch-late alert; a run's trigger form can change it",
    )
    max_active_runs: int = Field(
        default=3, ge=1,
        description="runs of each of the pipeline's DAGs at once: a run waiting for a late batch leaves room for the "
                    "next date's run and a person's run (the registry's compare-and-swap orders promotions)",
    )
    tags: list[str] = Field(
        default_factory=list, description="extra DAG tags (ml, the DAG's kind and the task are always there)"
    )


_TASK_DESCRIPTION = "what kind of model: decides the estimators and metrics to choose from"


class PipelineConfig(_Strict):
    """Everything one pipeline needs: data, features, model, gates, drift, alerts, registry.

    The common base of :class:`ClassificationPipeline` and :class:`RegressionPipeline`, which type the
    task-specific choices. ``PipelineConfig.model_validate`` (and :func:`load_config`) pick the class
    by ``task``; annotate with ``PipelineConfig``.
    """

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        description="the pipeline's name: the YAML file's name, and part of its DAG ids"
    )
    description: str = Field(default="", description="one line on what the model predicts")
    task: Literal["classification", "regression"] = Field(description=_TASK_DESCRIPTION)
    target: str = Field(description="the column the model predicts")
    id_columns: list[str] = Field(
        default_factory=list, description="columns that identify a row: kept with predictions, never features"
    )
    source: Source = Field(description="where each day's training batch comes from: files (the default) or sql")
    features: list[FeatureSpec] | Literal["infer"] = Field(
        default="infer", description="the input columns and their rules, or infer: from the first batch"
    )
    inference: InferenceSettings = Field(
        default=InferenceSettings(), description="with features: infer, which columns become which features"
    )
    validation: ValidationRules = Field(default=ValidationRules(), description="what a training batch must meet")
    model: ModelConfig = Field(description="the estimator and how it is fitted")
    metric: str = Field(description="the primary metric the gates and performance alerts judge")
    positive_label: str | int | bool | None = Field(
        default=None,
        description="binary classification only: the class whose probability roc_auc, average_precision, f1 and "
        "the positive-class column judge (default: the second label in sorted order); compared as text with the "
        "target's labels, so 1 finds the label 1 or '1'",
    )
    gates: Gates = Field(description="when a candidate replaces the production model")
    drift: DriftConfig = Field(default=DriftConfig(), description="how a batch is judged against the training data")
    alerts: AlertConfig = Field(description="who is told when something needs a person")
    decision: DecisionSettings = Field(
        default=DecisionSettings(), description="what a candidate held for drift does: hold, ask, or promote if better"
    )
    deadlines: DeadlineSettings = Field(default=DeadlineSettings(), description="deadline alerts by email")
    registry: str = Field(
        description="the model registry folder, below the data root (an absolute path needs "
                    "allow_outside_data_root); never shared with another pipeline"
    )
    allow_outside_data_root: bool = Field(
        default=False,
        description="let registry, source.path, scoring.input_dir, scoring.output_dir and performance.labels_dir "
                    "be absolute paths outside the data root ($ML_HOME); relative paths never leave it ('..' is "
                    "refused)",
    )
    scoring: ScoringConfig = Field(default=ScoringConfig(), description="batch scoring with the production model")
    performance: PerformanceConfig = Field(
        default=PerformanceConfig(), description="realised performance once labels arrive"
    )
    simulation: SimulationConfig | None = Field(default=None, description="simulated data for demos and tests")
    airflow: AirflowSettings = Field(default=AirflowSettings(), description="the DAGs' schedule and retries")

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> PipelineConfig:
        """Validate ``obj`` as the class its ``task`` names (from ``PipelineConfig``), or as ``cls``."""
        if cls is PipelineConfig:
            return PIPELINE_CONFIG.validate_python(obj, **kwargs)
        return super().model_validate(obj, **kwargs)

    @model_validator(mode="before")
    @classmethod
    def _drift_minimum_follows_validation(cls, data: Any) -> Any:
        """Unset, ``drift.min_batch_rows`` is its default or ``validation.min_rows``, whichever is lower."""
        if not isinstance(data, dict):
            return data
        drift, validation = data.get("drift"), data.get("validation")
        if isinstance(drift, DriftConfig) or (drift is not None and not isinstance(drift, dict)):
            return data
        if isinstance(drift, dict) and "min_batch_rows" in drift:
            return data
        min_rows = (validation.min_rows if isinstance(validation, ValidationRules)
                    else validation.get("min_rows") if isinstance(validation, dict) else None)
        if validation is None or (isinstance(validation, dict) and "min_rows" not in validation):
            min_rows = ValidationRules.model_fields["min_rows"].default  # validation's own default
        if not isinstance(min_rows, int) or min_rows >= DEFAULT_DRIFT_MIN_BATCH_ROWS or min_rows < 1:
            return data
        return {**data, "drift": {**(drift or {}), "min_batch_rows": min_rows}}

    @model_validator(mode="after")
    def _settings_agree(self) -> PipelineConfig:
        """Refuse settings that contradict each other, naming both keys."""
        problems = []
        if self.drift.min_batch_rows > self.validation.min_rows:
            problems.append(
                f"drift.min_batch_rows ({self.drift.min_batch_rows}) is above validation.min_rows "
                f"({self.validation.min_rows}): a batch could pass validation and then hold every run as "
                "insufficient data; lower drift.min_batch_rows or raise validation.min_rows")
        low, high = METRIC_RANGES.get(self.metric, (None, None))
        bounds = {"gates.min_score": self.gates.min_score, "performance.floor": self.performance.floor}
        for key, value in bounds.items():
            if value is None:
                continue
            if self.greater_is_better and high is not None and value > high:
                problems.append(f"{key} ({value:g}) is above the highest {self.metric} there is ({high:g}): "
                                "no model can reach it")
            if not self.greater_is_better and low is not None and value < low:
                problems.append(f"{key} ({value:g}) is below the lowest {self.metric} there is ({low:g}): "
                                f"{self.metric} is lower-is-better, so this ceiling can never be met")
        if problems:
            raise PydanticCustomError("settings_disagree", "; ".join(problems), {"problems": problems})
        return self

    @model_validator(mode="after")
    def _paths_stay_in_data_root(self) -> PipelineConfig:
        """Refuse a path that leaves the data root ('..', or absolute without allow_outside_data_root) and a
        registry that is the data root itself, naming each key."""
        problems = []
        for key, value in self.data_paths().items():
            path = PurePosixPath(value)
            if ".." in path.parts:
                problems.append(f"{key} ({value!r}) has a '..' component: paths stay below the data root; write "
                                "the folder below it")
            elif path.is_absolute() and not self.allow_outside_data_root:
                problems.append(f"{key} ({value!r}) is absolute, outside the data root: write it relative to the "
                                "data root, or set allow_outside_data_root: true if it must be elsewhere")
        if not PurePosixPath(self.registry).parts or PurePosixPath(self.registry).parts == ("/",):
            problems.append(f"registry ({self.registry!r}) names no folder: the registry would be the whole data root; "
                            f"write a folder of its own, e.g. registry/{self.name}")
        if problems:
            raise PydanticCustomError("unsafe_paths", "; ".join(problems), {"problems": problems})
        return self

    def data_paths(self) -> dict[str, str]:
        """The config's paths by key (templates as written): where it reads and writes on disk."""
        found = {"registry": self.registry, "source.path": getattr(self.source, "path", None),
                 "scoring.input_dir": self.scoring.input_dir, "scoring.output_dir": self.scoring.output_dir,
                 "performance.labels_dir": self.performance.labels_dir}
        return {key: value for key, value in found.items() if value is not None}  # a sql source has no path

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if isinstance(self.features, list):
            names = [f.name for f in self.features]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"features declared twice: {dupes}")
            clash = {self.target, *self.id_columns} & set(names)
            if clash:
                raise ValueError(f"columns {sorted(clash)} are declared both as features and as target/id")
            unknown = sorted(set(self.drift.critical_features) - set(names))
            if unknown:
                raise ValueError(f"drift.critical_features {unknown} are not declared features")
        overridden = sorted({self.target, *self.id_columns} & set(self.inference.types))
        if overridden:
            raise ValueError(f"inference.types names {overridden}, the target or id columns: they are never features")
        if self.positive_label is not None and self.task != "classification":
            raise ValueError(f"positive_label {self.positive_label!r} is for binary classification; a {self.task} "
                             "pipeline has no classes: remove positive_label")
        return self

    @field_validator("metric", mode="before")
    @classmethod
    def _metric_fits_task(cls, value: Any, info: ValidationInfo) -> Any:
        task = info.data.get("task")
        if task in METRICS and value not in METRICS[task]:
            choices = sorted(METRICS[task])
            raise PydanticCustomError(
                "metric_for_task", f"metric {value!r} does not fit task {task!r}; choose one of {choices}",
                {"metric": value, "task": task, "choices": choices},
            )
        return value

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.task][self.metric]

    @property
    def registry_path(self) -> Path:
        return resolve(self.registry)

    @property
    def performance_floor(self) -> float:
        """The worst acceptable realised metric: ``performance.floor``, else ``gates.min_score``."""
        return self.performance.floor if self.performance.floor is not None else self.gates.min_score

    @property
    def registry_layout(self):
        """Every file of this pipeline's registry folder (:class:`~include.ml.paths.RegistryLayout`)."""
        from include.ml.paths import RegistryLayout

        return RegistryLayout(self.registry_path)

    @property
    def dag_id(self) -> str:
        """The training DAG's id."""
        return training_dag_id(self.name)

    @property
    def scoring_dag_id(self) -> str:
        return f"ml_batch_scoring__{self.name}"

    @property
    def performance_dag_id(self) -> str:
        return f"ml_performance__{self.name}"

    def config_hash(self) -> str:
        """sha256 of what decides the model (task, target, source, features, validation, model, metric,
        gates, drift): two runs with the same hash trained and judged the same way. Alerts, schedule
        and descriptions are left out, so changing a recipient does not make a rerun a new model."""
        fields = {"task", "target", "id_columns", "source", "features", "validation", "model", "metric", "gates",
                  "drift"}
        if self.positive_label is not None:  # only when set: configs without it keep their hash
            fields.add("positive_label")
        if self.inference != InferenceSettings():  # only when changed: configs without it keep their hash
            fields.add("inference")
        decided = self.model_dump(mode="json", include=fields)
        if decided["source"]["kind"] == "files":  # only for sql: file configs keep their hash
            decided["source"].pop("kind")
        decided["source"].pop("chunk_rows", None)  # how rows are fetched, not which
        if self.model.window_batches == 1:  # only when changed: configs without it keep their hash
            decided["model"].pop("window_batches")
        for key in ("estimator", "factory", "feature_code"):  # unset: configs without them keep their hash
            if decided["model"][key] is None:
                decided["model"].pop(key)
        if self.model.standard_preprocessing:
            decided["model"].pop("standard_preprocessing")
        if self.model.factory or self.model.feature_code:  # new model code is a new model
            decided["model_code"] = code_hashes(self.model)
        if self.model.holdout == "stratified":  # every config's split before the field: those keep their hash
            decided["model"].pop("holdout")
        canonical = json.dumps(decided, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class ClassificationPipeline(PipelineConfig):
    """A pipeline whose model predicts a class: its estimators and metrics."""

    task: Literal["classification"] = Field(description=_TASK_DESCRIPTION)
    model: ClassificationModel = Field(description="the estimator and how it is fitted")
    metric: Literal[tuple(METRICS["classification"])] = Field(  # type: ignore[valid-type]
        description=_metric_description("classification")
    )


class RegressionPipeline(PipelineConfig):
    """A pipeline whose model predicts a number: its estimators and metrics."""

    task: Literal["regression"] = Field(description=_TASK_DESCRIPTION)
    model: RegressionModel = Field(description="the estimator and how it is fitted")
    metric: Literal[tuple(METRICS["regression"])] = Field(  # type: ignore[valid-type]
        description=_metric_description("regression")
    )


# What load_config and PipelineConfig.model_validate validate with; its JSON Schema is the config's.
PIPELINE_CONFIG: TypeAdapter[PipelineConfig] = TypeAdapter(
    Annotated[ClassificationPipeline | RegressionPipeline, Field(discriminator="task")]
)


def _problems(error: ValidationError) -> list[dict]:
    """pydantic's errors without the union bookkeeping: a list given for ``features`` is judged as
    a list, not also as the literal 'infer'; union tags such as ``list[...]`` and the task that picked
    the pipeline's class leave the location; a missing or unknown task is an error of ``task``."""
    items = []
    for item in error.errors():
        if item["type"] == "union_tag_not_found":
            item = {**item, "type": "missing", "loc": ("task",), "msg": "Field required"}
        elif item["type"] == "union_tag_invalid" and list(item["loc"][1:]) == ["source"]:
            item = {**item, "msg": "Input should have kind 'files' or 'sql'", "input": item["ctx"]["tag"]}
        elif item["type"] == "union_tag_invalid":
            expected = " or ".join(repr(task) for task in TASKS)
            item = {**item, "loc": ("task",), "msg": f"Input should be {expected}", "input": item["ctx"]["tag"]}
        loc = [str(p) for p in item["loc"]]
        if loc and loc[0] in TASKS:
            loc = loc[1:]
        if loc[:1] == ["source"] and loc[1:2] in (["files"], ["sql"]):  # the source variant's tag
            loc = loc[:1] + loc[2:]
        if any(p.startswith("literal[") for p in loc) and isinstance(item.get("input"), list | dict):
            continue
        item = {**item, "loc": [p for p in loc if "[" not in p]}
        items.append(item)
    return items or error.errors()


# messages that say the key and the value already
_NAMES_ITS_KEY = {"estimator_for_task", "metric_for_task", "settings_disagree", "unsafe_paths"}


def _format_error(path: Path, error: ValidationError) -> str:
    problems = _problems(error)
    lines = [f"{path}: invalid pipeline config ({len(problems)} problem(s)):"]
    for item in problems:
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key; remove it or check its spelling")
        elif item["type"] in ("settings_disagree", "unsafe_paths"):
            lines.extend(f"  - {problem}" for problem in item["ctx"]["problems"])
        elif item["type"] in _NAMES_ITS_KEY:
            lines.append(f"  - {item['msg']}")
        else:
            got = item.get("input")
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"  - {where}: {item['msg']}{shown}")
    lines.append("Fix the file and run `python -m include.ml config check` to verify.")
    return "\n".join(lines)


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate one pipeline YAML file; raise :class:`ConfigError` saying what is wrong where."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: pipeline config not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read as a pipeline config: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a pipeline config must be a mapping of keys, got {type(raw).__name__}")
    try:
        config = PIPELINE_CONFIG.validate_python(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    if config.name != path.stem:
        raise ConfigError(f"{path}: name {config.name!r} must match the file name {path.stem!r}")
    return config


def setting_warnings(config: PipelineConfig) -> list[str]:
    """What ``config check`` warns about (the config still loads): each message names its key."""
    warnings = []
    if not config.id_columns:
        warnings.append("id_columns is empty: predictions and rejects carry only the input's row number ('row'), "
                        "and realised performance cannot match delivered labels to predictions; list the columns "
                        "that identify a row")
    simulation = config.simulation
    if simulation is not None and simulation.scoring_rows * simulation.scoring_partitions < config.performance.min_rows:
        warnings.append(f"performance.min_rows ({config.performance.min_rows}) is above the rows a simulated day "
                        f"scores (simulation.scoring_rows x scoring_partitions = "
                        f"{simulation.scoring_rows * simulation.scoring_partitions}): realised performance of a "
                        "simulated day never alerts")
    return warnings


def config_paths(directory: Path | None = None) -> list[Path]:
    """The pipeline config files, sorted by name."""
    return sorted((directory or PIPELINES_DIR).glob("*.yaml"))


class SharedPathError(ConfigError):
    """Two pipeline configs would read or write the same place (a registry, a landing path, a scoring
    output): neither is loaded until one changes. ``files`` are the config files involved."""

    def __init__(self, message: str, files: tuple[Path, ...]):
        super().__init__(message)
        self.files = files


def _folder(template: str, name: str) -> Path:
    """A path template with ``{pipeline}`` filled in, resolved and normalised; other placeholders stay."""
    return Path(resolve(template.replace("{pipeline}", name)).as_posix())


def _static_prefix(template: str, name: str) -> Path:
    """The folder a template's paths all lie in: its components before the first placeholder."""
    parts = _folder(template, name).parts
    return Path(*[p for p in parts[:next((i for i, p in enumerate(parts) if "{" in p), len(parts))]])


def shared_paths(loaded: dict[Path, PipelineConfig]) -> list[SharedPathError]:
    """What the configs (by file) would share: a registry folder (the same or one inside the other), a
    landing path template, a scoring output folder, or a registry inside a folder an upstream writes."""
    found = []
    items = list(loaded.items())
    root = resolve(".")
    for i, (path_a, a) in enumerate(items):
        for path_b, b in items[i + 1:]:
            clashes = []
            reg_a, reg_b = a.registry_path, b.registry_path
            if reg_a == reg_b or reg_a.is_relative_to(reg_b) or reg_b.is_relative_to(reg_a):
                clashes.append(f"registry: {reg_a} and {reg_b} (a pipeline's model would become the other's "
                               "production)")
            for key in ("source.path", "scoring.output_dir"):
                if key not in a.data_paths() or key not in b.data_paths():  # a sql source lands nowhere
                    continue
                where = _folder(a.data_paths()[key], a.name)
                if where == _folder(b.data_paths()[key], b.name):
                    clashes.append(f"{key}: both {where}")
            for clash in clashes:
                found.append(SharedPathError(
                    f"{path_a} and {path_b} share {clash}; neither pipeline gets a DAG or runs until one of the "
                    "two configs changes it", (path_a, path_b)))
    for path_a, a in items:
        for path_b, b in items:
            upstream = {key: b.data_paths()[key] for key in ("source.path", "scoring.input_dir",
                                                             "performance.labels_dir") if key in b.data_paths()}
            for key, template in upstream.items():
                folder = _static_prefix(template, b.name)
                if folder != root and a.registry_path.is_relative_to(folder):
                    where = "its own" if path_a == path_b else f"{path_b}'s"
                    found.append(SharedPathError(
                        f"{path_a}: registry {a.registry_path} lies inside {where} {key} folder {folder}, which an "
                        "upstream writes; move the registry out of it. "
                        + ("This pipeline gets no DAG until then" if path_a == path_b
                           else "Neither pipeline gets a DAG until then"),
                        (path_a,) if path_a == path_b else (path_a, path_b)))
    return found


def _load_files(directory: Path | None) -> tuple[dict[Path, PipelineConfig], list[ConfigError]]:
    loaded, errors = {}, []
    for path in config_paths(directory):
        try:
            loaded[path] = load_config(path)
        except ConfigError as error:
            errors.append(error)
    return loaded, errors


def load_all(directory: Path | None = None) -> list[PipelineConfig]:
    """Every pipeline config in ``directory`` (default ``include/pipelines``); the first bad one raises,
    and so do two that share a registry, a landing path or a scoring output (:class:`SharedPathError`)."""
    configs = {path: load_config(path) for path in config_paths(directory)}
    for error in shared_paths(configs):
        raise error
    return list(configs.values())


def load_each(directory: Path | None = None) -> tuple[list[PipelineConfig], list[ConfigError]]:
    """The configs that load, and the errors of those that do not: one broken file must not take
    every pipeline's DAG (and the rollback tool) down with it. Configs that share a registry, a landing
    path or a scoring output are all left out, each pair with a :class:`SharedPathError`."""
    loaded, errors = _load_files(directory)
    shared = shared_paths(loaded)
    refused = {path for error in shared for path in error.files}
    return [c for path, c in loaded.items() if path not in refused], [*errors, *shared]


def get_pipeline(name: str, directory: Path | None = None) -> PipelineConfig:
    """The config of the pipeline called ``name`` (a config name, never a path); a clear error listing the
    known ones otherwise, or a :class:`SharedPathError` when it shares a path with another config."""
    directory = directory or PIPELINES_DIR
    known = [p.stem for p in config_paths(directory)]
    if not re.fullmatch(NAME_PATTERN, name) or name not in known:
        raise ConfigError(f"no pipeline {name!r} in {directory}; known pipelines: {known}")
    path = directory / f"{name}.yaml"
    loaded, _ = _load_files(directory)  # another config that does not load shares nothing
    config = loaded.get(path) or load_config(path)  # its own error, when it is the one that does not load
    for error in shared_paths(loaded):
        if path in error.files:
            raise error
    return config
