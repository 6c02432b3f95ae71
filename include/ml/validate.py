"""Validate a batch against a pandera schema built from the pipeline config and from what the
training data showed; quarantine what fails.

Every broken rule is collected (lazy validation) and summarised per column and check as
``column 'income': 312 values below minimum 0 (first rows: 17, 98, 140)``. Two severities:
errors stop the run (missing columns, wrong types, target problems, too many missing values, an
empty or too-small batch, more than ``max_out_of_range_share`` outside a declared range or
allowed list); warnings are reported and let it continue (a few values outside a declared range,
values beyond the training range, category levels training never saw). A failing batch is
copied to the quarantine folder with the reasons beside it; the landing file is never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import BatchValidationError

WARNING = "warning"
ERROR = "error"


@dataclass
class ValidationResult:
    """A batch that passed: the clean frame (numeric features float64, levels str) and the warnings."""

    frame: pd.DataFrame
    warnings: list[dict] = field(default_factory=list)


def infer_features(frame: pd.DataFrame, config: PipelineConfig) -> list[FeatureSpec]:
    """Feature specs from a batch: numeric dtypes are numeric, everything else categorical.

    The target and id columns are left out. Used when the config says ``features: infer``.
    """
    skip = {config.target, *config.id_columns}
    specs = []
    for name in frame.columns:
        if name in skip:
            continue
        kind = "numeric" if pd.api.types.is_numeric_dtype(frame[name]) else "categorical"
        specs.append(FeatureSpec(name=name, type=kind))
    return specs


def _failure(column: str | None, rule: str, rows: list, values: list, count: int | None = None) -> dict:
    count = len(rows) if count is None else count
    where = f"column {column!r}" if column else "batch"
    shown_rows = ", ".join(str(r) for r in rows[:5])
    shown_values = ", ".join(repr(v) for v in values[:3])
    detail = f" (first rows: {shown_rows}; values: {shown_values})" if rows else ""
    return {
        "column": column,
        "rule": rule,
        "count": int(count),
        "rows": [int(r) for r in rows[:20]],
        "message": f"{where}: {rule}{detail}" if not rows else f"{where}: {count} values {rule}{detail}",
    }


def _coerce_numeric(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[dict]]:
    """Numeric columns as float64; values that are not numbers become failures, not silent NaN."""
    failures = []
    frame = frame.copy()
    for name in columns:
        if name not in frame.columns:
            continue
        raw = frame[name]
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = numbers.isna() & raw.notna()
        if bad.any():
            failures.append(
                _failure(name, "are not numbers", list(raw.index[bad]), list(raw[bad]), int(bad.sum()))
            )
        frame[name] = numbers
    return frame, failures


def _as_categorical(series: pd.Series) -> pd.Series:
    """Category levels as plain strings (object dtype), missing as NaN.

    Whole-number codes read as floats (a column of 1, 2, 3 with one gap) stay "1", not "1.0".
    """
    present = series.notna()
    if pd.api.types.is_float_dtype(series) and (series[present] % 1 == 0).all():
        series = series.astype("Int64")  # the same labels as drift.level_label gives
    return series.astype(str).astype(object).where(present, np.nan)


def build_schema(
    config: PipelineConfig, features: list[FeatureSpec], reference: dict | None = None
) -> tuple[pa.DataFrameSchema, dict[str, str | float]]:
    """The pandera schema of a batch, and the severity policy of each check (by its message).

    A policy is ``"error"``, ``"warning"``, or a share: an error when more than that share of rows
    fail, a warning otherwise. ``reference`` is a stored reference profile (as a dict): its observed
    ranges (with ``range_tolerance``) and known levels add warning checks.
    """
    rules = config.validation
    share = rules.max_out_of_range_share
    policy: dict[str, str | float] = {}

    def check(built: pa.Check, severity: str | float) -> pa.Check:
        policy[built.error] = severity
        return built

    reference = reference or {"numeric": {}, "categorical": {}}
    columns: dict[str, pa.Column] = {}
    for spec in features:
        max_missing = rules.max_missing if spec.max_missing is None else spec.max_missing
        checks = [
            check(pa.Check(lambda s, limit=max_missing: bool(s.isna().mean() <= limit), element_wise=False,
                           ignore_na=False, error=f"has more than {max_missing:.0%} missing values"), ERROR)
        ]
        if spec.type == "numeric":
            checks.append(check(pa.Check(lambda s: ~np.isinf(s), error="are infinite"), ERROR))
            if spec.min is not None:
                checks.append(check(pa.Check.ge(spec.min, error=f"below minimum {spec.min:g}"), share))
            if spec.max is not None:
                checks.append(check(pa.Check.le(spec.max, error=f"above maximum {spec.max:g}"), share))
            observed = reference["numeric"].get(spec.name)
            if observed and observed.get("quantiles"):
                low, high = observed["quantiles"][0], observed["quantiles"][-1]
                slack = rules.range_tolerance * (high - low)
                checks.append(check(pa.Check.ge(low - slack, error=f"below the training range "
                                                f"(min {low:g}, tolerance {slack:g})"), WARNING))
                checks.append(check(pa.Check.le(high + slack, error=f"above the training range "
                                                f"(max {high:g}, tolerance {slack:g})"), WARNING))
            columns[spec.name] = pa.Column("float64", nullable=True, checks=checks)
        else:
            if spec.allowed is not None:
                checks.append(check(pa.Check.isin(spec.allowed, error=f"not among allowed levels {spec.allowed}"),
                                    share))
            known = reference["categorical"].get(spec.name)
            if known and known.get("shares"):
                checks.append(check(pa.Check.isin(list(known["shares"]), error="are levels training never saw"),
                                    WARNING))
            columns[spec.name] = pa.Column(nullable=True, checks=checks)

    if config.task == "classification":
        class_share = rules.min_class_share
        target_checks = [
            check(pa.Check(lambda s: s.nunique() >= 2, element_wise=False,
                           error="has a single class: a classifier cannot learn from it"), ERROR),
            check(pa.Check(lambda s: s.nunique() <= 2, element_wise=False,
                           error="has more than two classes: this pipeline does binary classification"), ERROR),
            check(pa.Check(lambda s, limit=class_share: bool(s.value_counts(normalize=True).min() >= limit),
                           element_wise=False, error=f"has a class below {class_share:.0%} of rows"), ERROR),
        ]
        columns[config.target] = pa.Column(nullable=False, checks=target_checks)
    else:
        columns[config.target] = pa.Column(
            "float64", nullable=False, checks=[check(pa.Check(lambda s: ~np.isinf(s), error="are infinite"), ERROR)]
        )
    for name in config.id_columns:
        columns.setdefault(name, pa.Column(nullable=True, required=True))
    min_rows = rules.min_rows
    schema = pa.DataFrameSchema(
        columns,
        checks=[check(pa.Check(lambda df: len(df) >= min_rows, error=f"has fewer than {min_rows} rows"), ERROR)],
        strict=False,
    )
    return schema, policy


def _summarise(errors: pa.errors.SchemaErrors, frame: pd.DataFrame, policy: dict[str, str | float]) -> list[dict]:
    """One failure per column and check, with its count, first rows, message and severity."""
    cases = errors.failure_cases
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = None if pd.isna(column) else str(column)
        if check == "column_in_dataframe":
            for missing in group["failure_case"]:
                failures.append({**_failure(str(missing), "is missing from the batch", [], []), "severity": ERROR})
            continue
        rule = policy.get(str(check), ERROR)
        if check == "not_nullable":
            check = "are missing (target values are required)"
        rows = [r for r in group["index"].tolist() if r is not None and not pd.isna(r)]
        if rows:
            failure = _failure(column, str(check), rows, group["failure_case"].tolist())
            if isinstance(rule, float):
                share = len(rows) / max(len(frame), 1)
                failure["share"] = share
                failure["severity"] = ERROR if share > rule else WARNING
                failure["message"] += f" [{share:.2%} of rows; the limit is {rule:.2%}]"
            else:
                failure["severity"] = rule
            failures.append(failure)
        elif column is not None and "missing values" in str(check):
            share = frame[column].isna().mean()
            failures.append({**_failure(column, f"{check} ({share:.1%})", [], []), "severity": ERROR})
        elif column is None and "rows" in str(check):
            failures.append({**_failure(None, f"{check} (has {len(frame)})", [], []), "severity": ERROR})
        else:
            failures.append({**_failure(column, str(check), [], []), "severity": ERROR})
    return failures


def check_batch(
    frame: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec], reference: dict | None = None
) -> ValidationResult:
    """Check ``frame`` against the config (and the training ``reference`` profile, if given).

    Returns the clean frame and the warnings; raises :class:`BatchValidationError` listing every
    error (and the warnings after them) when any error is found.
    """
    numeric = [f.name for f in features if f.type == "numeric"]
    if config.task == "regression":
        numeric.append(config.target)
    clean, failures = _coerce_numeric(frame, numeric)
    for failure in failures:
        failure["severity"] = ERROR
    for spec in features:
        if spec.type == "categorical" and spec.name in clean.columns:
            clean[spec.name] = _as_categorical(clean[spec.name])
    schema, policy = build_schema(config, features, reference)
    try:
        clean = schema.validate(clean, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures.extend(_summarise(errors, clean, policy))
    repeated = frame.duplicated()
    if repeated.any():  # a delivery sent twice would leak rows between training and holdout
        rows = [int(r) for r in frame.index[repeated]]
        failures.append({"column": None, "rule": "repeat an earlier row exactly", "count": len(rows),
                         "rows": rows[:20], "severity": WARNING,
                         "message": f"batch: {len(rows)} rows repeat an earlier row exactly (first rows: "
                                    f"{', '.join(str(r) for r in rows[:5])}); was a delivery sent twice?"})
    errors = [f for f in failures if f["severity"] == ERROR]
    warnings = [f for f in failures if f["severity"] == WARNING]
    if errors:
        lines = "\n".join(f"  - {f['message']}" for f in errors)
        if warnings:
            lines += "\n  warnings:\n" + "\n".join(f"  - {f['message']}" for f in warnings)
        raise BatchValidationError(
            f"batch failed validation for pipeline {config.name!r} ({len(errors)} problem(s)):\n{lines}",
            errors + warnings,
        )
    return ValidationResult(frame=clean, warnings=warnings)


def validate_frame(
    frame: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec], reference: dict | None = None
) -> pd.DataFrame:
    """:func:`check_batch`, returning only the clean frame."""
    return check_batch(frame, config, features, reference).frame


def quarantine(source: Path, destination: Path, failures: list[dict], context: dict) -> Path:
    """Copy ``source`` into ``destination`` with a ``reasons.json``; the source stays where it is."""
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination / source.name)
    reasons = {
        "source": str(source),
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
        **context,
        "failures": failures,
    }
    (destination / "reasons.json").write_text(json.dumps(reasons, indent=2, default=str))
    return destination
