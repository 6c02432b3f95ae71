"""Pipeline configs: one YAML file per pipeline, loaded and validated here and nowhere else.

Cheap to import (pydantic and yaml only): DAG files call it while parsing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from include.ml.errors import ConfigError
from include.ml.paths import PIPELINES_DIR, resolve

ESTIMATORS: dict[str, set[str]] = {
    "classification": {"logistic_regression", "random_forest", "hist_gradient_boosting"},
    "regression": {"linear_regression", "ridge", "random_forest", "hist_gradient_boosting"},
}
# metric name -> (task, greater is better)
METRICS: dict[str, tuple[str, bool]] = {
    "roc_auc": ("classification", True),
    "accuracy": ("classification", True),
    "f1": ("classification", True),
    "average_precision": ("classification", True),
    "log_loss": ("classification", False),
    "rmse": ("regression", False),
    "mae": ("regression", False),
    "r2": ("regression", True),
}


MODEL_OPS_DAG_ID = "ml_model_ops"  # manual promote / rollback of any pipeline


def training_dag_id(pipeline: str) -> str:
    """The id of a pipeline's training DAG."""
    return f"ml_training__{pipeline}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One input column: its kind, and the rules a batch must keep."""

    name: str
    type: Literal["numeric", "categorical"]
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = Field(
        default=None, description="categorical only: levels outside this list fail validation"
    )
    max_missing: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _rules_fit_type(self) -> FeatureSpec:
        if self.type == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature {self.name!r}: min/max apply to numeric features only")
        if self.type == "numeric" and self.allowed is not None:
            raise ValueError(f"feature {self.name!r}: 'allowed' applies to categorical features only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} is above max {self.max}")
        return self


class SourceConfig(_Strict):
    """Where the batch for a logical date is: ``{ds}`` (YYYY-MM-DD) and ``{ds_nodash}`` are filled in."""

    path: str
    format: Literal["csv", "parquet"] | None = None

    @field_validator("path")
    @classmethod
    def _has_date(cls, value: str) -> str:
        if "{ds}" not in value and "{ds_nodash}" not in value:
            raise ValueError("source.path must contain {ds} or {ds_nodash}, e.g. landing/x/{ds}.csv")
        try:
            value.format(ds="2026-01-01", ds_nodash="20260101")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"source.path may only use the placeholders {{ds}} and {{ds_nodash}}; {exc!s} is not one"
            ) from None
        return value

    @property
    def file_format(self) -> str:
        return self.format or ("parquet" if self.path.endswith((".parquet", ".pq")) else "csv")

    def path_for(self, ds: str) -> Path:
        """The landing file for a logical date ``ds`` (YYYY-MM-DD), resolved under the data root."""
        return resolve(self.path.format(ds=ds, ds_nodash=ds.replace("-", "")))


class ValidationRules(_Strict):
    min_rows: int = Field(default=100, ge=1)
    max_missing: float = Field(default=0.5, ge=0, le=1, description="default per-feature missing share")
    min_class_share: float = Field(default=0.01, ge=0, lt=0.5)
    max_out_of_range_share: float = Field(
        default=0.01, ge=0, le=1,
        description="values outside a declared min/max or allowed list: a warning up to this share, an error above",
    )
    range_tolerance: float = Field(
        default=0.1, ge=0, description="values beyond the training data's range by more than this share of it warn",
    )


class ModelConfig(_Strict):
    estimator: str
    params: dict[str, Any] = Field(default_factory=dict)
    test_size: float = Field(default=0.25, gt=0, lt=1)
    seed: int = 42


class Gates(_Strict):
    """Champion/challenger gates: an absolute minimum, and a paired-bootstrap comparison with production.

    Promote only when the candidate meets ``min_score`` and the lower bound of the ``confidence``
    interval of (candidate - production) on the same holdout rows is above -``max_regression``
    (so with ``max_regression: 0`` a candidate must be measurably better; an equal one is not).
    """

    min_score: float = Field(description="the candidate's primary metric must reach this (a ceiling for losses)")
    max_regression: float = Field(
        default=0.0, ge=0, description="allowed loss of primary metric against production"
    )
    bootstrap_resamples: int = Field(default=1000, ge=50, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap_seed: int = 0


class Levels(_Strict):
    """The two levels of a drift statistic: above ``drifted`` a feature drifted, above ``severe`` badly."""

    drifted: float = Field(gt=0)
    severe: float = Field(gt=0)

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

    numeric_statistic: Literal["wasserstein", "psi", "jensen_shannon", "ks"] = "wasserstein"
    categorical_statistic: Literal["jensen_shannon", "psi"] = "jensen_shannon"
    thresholds: dict[str, Levels] = Field(default_factory=_default_levels)
    bins: int = Field(default=10, ge=2, le=100)
    min_batch_rows: int = Field(default=200, ge=1, description="below this, the verdict is insufficient_data")
    drift_share: float = Field(default=0.5, gt=0, le=1, description="dataset drifts when this share of features drift")
    critical_features: list[str] = Field(default_factory=list, description="any of these drifting means drift")

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

    input_dir: str = "scoring/{pipeline}/{ds}"
    output_dir: str = "predictions/{pipeline}/{ds}"
    chunk_rows: int = Field(default=100_000, ge=100, description="rows read, validated and predicted at a time")
    max_reject_share: float = Field(default=0.01, ge=0, le=1, description="above this share of bad rows, fail")


class PerformanceConfig(_Strict):
    """Realised performance once labels arrive: where delivered labels land (files named
    ``<delivery date>*.csv|parquet`` holding the id columns and the target), how far back stored
    predictions are searched, and when to alert. A group (model version x scoring date) alerts when
    its metric is worse than ``floor`` (default: ``gates.min_score``) or worse than the version's
    validation score by more than ``max_drop`` (in metric units); under ``min_rows`` labelled rows
    it is recorded but never alerts (too noisy to tell)."""

    labels_dir: str = "labels/{pipeline}"
    lookback_days: int = Field(default=30, ge=1, le=3660)
    floor: float | None = None
    max_drop: float = Field(default=0.05, ge=0)
    min_rows: int = Field(default=100, ge=1)


class AlertConfig(_Strict):
    email: list[str] = Field(min_length=1)
    from_email: str = "ml-pipeline@localhost"


class SimulationConfig(_Strict):
    generator: Literal["credit_default", "house_prices"]
    rows_per_day: int = Field(default=2000, ge=10)
    seed: int = 7
    drift_from: dt.date | None = None
    scoring_partitions: int = Field(default=2, ge=1, description="scoring files delivered per day")
    scoring_rows: int = Field(default=1000, ge=10, description="rows per scoring file")
    label_delay_days: int = Field(default=2, ge=0, description="days between scoring and the labels' delivery")


class AirflowSettings(_Strict):
    schedule: str | None = "@daily"
    start_date: dt.date = dt.date(2026, 1, 1)
    owner: str = "ml-platform"
    retries: int = Field(default=2, ge=0)
    retry_delay_seconds: float = Field(default=60, gt=0)
    max_retry_delay_seconds: float = Field(default=1800, gt=0)
    task_timeout_minutes: float = Field(default=60, gt=0, description="a task running longer fails (and retries)")
    tags: list[str] = Field(default_factory=list)


class PipelineConfig(_Strict):
    """Everything one pipeline needs: data, features, model, gates, drift, alerts, registry."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
    description: str = ""
    task: Literal["classification", "regression"]
    target: str
    id_columns: list[str] = Field(default_factory=list)
    source: SourceConfig
    features: list[FeatureSpec] | Literal["infer"] = "infer"
    validation: ValidationRules = ValidationRules()
    model: ModelConfig
    metric: str
    gates: Gates
    drift: DriftConfig = DriftConfig()
    alerts: AlertConfig
    registry: str
    scoring: ScoringConfig = ScoringConfig()
    performance: PerformanceConfig = PerformanceConfig()
    simulation: SimulationConfig | None = None
    airflow: AirflowSettings = AirflowSettings()

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.model.estimator not in ESTIMATORS[self.task]:
            raise ValueError(
                f"model.estimator {self.model.estimator!r} is not available for task {self.task!r}; "
                f"choose one of {sorted(ESTIMATORS[self.task])}"
            )
        metric = METRICS.get(self.metric)
        if metric is None or metric[0] != self.task:
            choices = sorted(m for m, (task, _) in METRICS.items() if task == self.task)
            raise ValueError(f"metric {self.metric!r} does not fit task {self.task!r}; choose one of {choices}")
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
        return self

    @property
    def greater_is_better(self) -> bool:
        return METRICS[self.metric][1]

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
        canonical = json.dumps(self.model_dump(mode="json", include=fields), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _problems(error: ValidationError) -> list[dict]:
    """pydantic's errors without the union bookkeeping: a list given for ``features`` is judged as
    a list, not also as the literal 'infer'; union tags such as ``list[...]`` leave the location."""
    items = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        if any(p.startswith("literal[") for p in loc) and isinstance(item.get("input"), list | dict):
            continue
        item = {**item, "loc": [p for p in loc if "[" not in p]}
        items.append(item)
    return items or error.errors()


def _format_error(path: Path, error: ValidationError) -> str:
    problems = _problems(error)
    lines = [f"{path}: invalid pipeline config ({len(problems)} problem(s)):"]
    for item in problems:
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key; remove it or check its spelling")
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
        config = PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(path, exc)) from None
    if config.name != path.stem:
        raise ConfigError(f"{path}: name {config.name!r} must match the file name {path.stem!r}")
    return config


def config_paths(directory: Path | None = None) -> list[Path]:
    """The pipeline config files, sorted by name."""
    return sorted((directory or PIPELINES_DIR).glob("*.yaml"))


def load_all(directory: Path | None = None) -> list[PipelineConfig]:
    """Every pipeline config in ``directory`` (default ``include/pipelines``); the first bad one raises."""
    return [load_config(p) for p in config_paths(directory)]


def load_each(directory: Path | None = None) -> tuple[list[PipelineConfig], list[ConfigError]]:
    """The configs that load, and the errors of those that do not: one broken file must not take
    every pipeline's DAG (and the rollback tool) down with it."""
    configs, errors = [], []
    for path in config_paths(directory):
        try:
            configs.append(load_config(path))
        except ConfigError as error:
            errors.append(error)
    return configs, errors


def get_pipeline(name: str, directory: Path | None = None) -> PipelineConfig:
    """The config of the pipeline called ``name``; a clear error listing the known ones otherwise."""
    directory = directory or PIPELINES_DIR
    path = directory / f"{name}.yaml"
    if not path.exists():
        known = [p.stem for p in config_paths(directory)]
        raise ConfigError(f"no pipeline {name!r} in {directory}; known pipelines: {known}")
    return load_config(path)
