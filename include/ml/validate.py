"""Validate a batch against a pandera schema built from the pipeline config; quarantine what fails.

Every broken rule is collected (lazy validation) and summarised as
``column 'income': 312 values below minimum 0 (first rows: 17, 98, 140)``. A failing batch is
copied to the quarantine folder with the reasons beside it; the landing file is never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import BatchValidationError


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
        series = series.astype("Int64")
    return series.astype(str).astype(object).where(present, np.nan)


def build_schema(config: PipelineConfig, features: list[FeatureSpec]) -> pa.DataFrameSchema:
    """The pandera schema of a batch: columns, ranges, allowed levels, missing shares, rows, target."""
    rules = config.validation
    columns: dict[str, pa.Column] = {}
    for spec in features:
        max_missing = rules.max_missing if spec.max_missing is None else spec.max_missing
        checks = [
            pa.Check(
                lambda s, share=max_missing: bool(s.isna().mean() <= share),
                element_wise=False,
                ignore_na=False,
                error=f"has more than {max_missing:.0%} missing values",
            )
        ]
        if spec.type == "numeric":
            checks.append(pa.Check(lambda s: ~np.isinf(s), error="are infinite"))
            if spec.min is not None:
                checks.append(pa.Check.ge(spec.min, error=f"below minimum {spec.min:g}"))
            if spec.max is not None:
                checks.append(pa.Check.le(spec.max, error=f"above maximum {spec.max:g}"))
            columns[spec.name] = pa.Column("float64", nullable=True, checks=checks)
        else:
            if spec.allowed is not None:
                checks.append(pa.Check.isin(spec.allowed, error=f"not among allowed levels {spec.allowed}"))
            columns[spec.name] = pa.Column(nullable=True, checks=checks)

    target_checks: list[pa.Check]
    if config.task == "classification":
        share = rules.min_class_share
        target_checks = [
            pa.Check(
                lambda s: s.nunique() >= 2,
                element_wise=False,
                error="has a single class: a classifier cannot learn from it",
            ),
            pa.Check(
                lambda s, share=share: bool(s.value_counts(normalize=True).min() >= share),
                element_wise=False,
                error=f"has a class below {share:.0%} of rows",
            ),
        ]
        columns[config.target] = pa.Column(nullable=False, checks=target_checks)
    else:
        columns[config.target] = pa.Column(
            "float64", nullable=False, checks=[pa.Check(lambda s: ~np.isinf(s), error="are infinite")]
        )
    for name in config.id_columns:
        columns.setdefault(name, pa.Column(nullable=True, required=True))
    min_rows = rules.min_rows
    return pa.DataFrameSchema(
        columns,
        checks=[pa.Check(lambda df: len(df) >= min_rows, error=f"has fewer than {min_rows} rows")],
        strict=False,
    )


def _summarise(errors: pa.errors.SchemaErrors, frame: pd.DataFrame) -> list[dict]:
    cases = errors.failure_cases
    failures = []
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        column = None if pd.isna(column) else str(column)
        if check == "column_in_dataframe":
            for missing in group["failure_case"]:
                failures.append(_failure(str(missing), "is missing from the batch", [], []))
            continue
        if check == "not_nullable":
            check = "are missing (target values are required)"
        rows = [r for r in group["index"].tolist() if r is not None and not pd.isna(r)]
        if rows:
            failures.append(_failure(column, str(check), rows, group["failure_case"].tolist()))
        elif column is not None and "missing values" in str(check):
            share = frame[column].isna().mean()
            failures.append(_failure(column, f"{check} ({share:.1%})", [], []))
        elif column is None and "rows" in str(check):
            failures.append(_failure(None, f"{check} (has {len(frame)})", [], []))
        else:
            failures.append(_failure(column, str(check), [], []))
    return failures


def validate_frame(frame: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec]) -> pd.DataFrame:
    """Check ``frame`` against the config; return it with numeric features as float64 and levels as str.

    Raises :class:`BatchValidationError` listing every failure.
    """
    numeric = [f.name for f in features if f.type == "numeric"]
    if config.task == "regression":
        numeric.append(config.target)
    clean, failures = _coerce_numeric(frame, numeric)
    for spec in features:
        if spec.type == "categorical" and spec.name in clean.columns:
            clean[spec.name] = _as_categorical(clean[spec.name])
    try:
        clean = build_schema(config, features).validate(clean, lazy=True)
    except pa.errors.SchemaErrors as errors:
        failures.extend(_summarise(errors, clean))
    if failures:
        lines = "\n".join(f"  - {f['message']}" for f in failures)
        raise BatchValidationError(
            f"batch failed validation for pipeline {config.name!r} ({len(failures)} problem(s)):\n{lines}",
            failures,
        )
    return clean


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
