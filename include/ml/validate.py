"""Validate a batch against a pandera schema built from the pipeline config and from what the
training data showed; quarantine what fails.

The schema holds the batch's shape (columns present, their types, the target, the batch size);
the features' value rules (:class:`~include.ml.feature_rules.FeatureRules`) are applied here one
mask per rule, which gives each failure's count, first rows and values without pandera's copy of
the column per check.

Every broken rule is collected (lazy validation) and summarised per column and check as
``column 'income': 312 values below minimum 0 (first rows: 17, 98, 140)``. Two severities:
errors stop the run (missing columns, wrong types, target problems, too many missing values, an
empty or too-small batch, more than ``max_out_of_range_share`` outside a declared range or
allowed list); warnings are reported and let it continue (a few values outside a declared range,
values beyond the training range, category levels training never saw). Rows without a target are
left out and counted (``validation.unlabelled: drop``, a warning above ``max_unlabelled_share``) or
refuse the batch (``error``). A failing batch is copied to the quarantine folder with the reasons
beside it; the landing file is never touched.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from include.ml import storage
from include.ml.config import FeatureSpec, PipelineConfig
from include.ml.errors import BatchValidationError, excerpt
from include.ml.feature_rules import (
    ERROR,
    WARNING,
    FeatureRules,
    as_booleans,
    as_numbers,
    finite_rule,
    level_label,
    number_rule,
)

QUARANTINE_REASONS = "reasons.json"  # beside a quarantined batch: why it was refused


@dataclass
class ValidationResult:
    """A batch that passed: the clean frame (numeric features float64, levels str) and the warnings."""

    frame: pd.DataFrame
    warnings: list[dict] = field(default_factory=list)
    unlabelled_rows: int = 0  # rows without a target value left out (``validation.unlabelled: drop``)


@dataclass
class InferredFeatures:
    """What ``features: infer`` made of a batch: the features, and one note per column it left out
    (or typed in a way worth checking), saying why."""

    features: list[FeatureSpec]
    notes: list[str] = field(default_factory=list)


# text that looks like a date, with an optional time and offset: 2026-01-31, 31/01/2026 08:00, ...T08:00:00Z
_DATE_TEXT = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$"
# tried in order on text that looks like dates; None is ISO 8601 (month-first before day-first)
DATE_FORMATS = (None, *(f"{day}{time}" for day in ("%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y")
                        for time in ("", " %H:%M", " %H:%M:%S")))
_ID_NAME = re.compile(r"(?:^|[_\W])(?:id|key|uuid|guid)$", re.IGNORECASE)  # id, customer_id, row-key
_ID_CAMEL = re.compile(r"[a-z0-9](?:Id|ID|Key|UUID)$")  # PassengerId (not "paid")
_MIN_ROWS_TO_CALL_ID = 20  # fewer distinct values than this say nothing about being an id


def _date_format(text: pd.Series, hint: str | None) -> tuple[bool, str | None]:
    """Whether nearly every value of ``text`` is a date, and the format that reads them (None: ISO 8601)."""
    sample = text.drop_duplicates().head(1000)
    if not len(sample) or sample.str.match(_DATE_TEXT).mean() < 0.95:
        return hint is not None, hint
    for date_format in ((hint,) if hint else DATE_FORMATS):
        parsed = pd.to_datetime(sample, format=date_format or "ISO8601", errors="coerce", utc=True)
        if parsed.notna().mean() >= 0.95:
            return True, date_format
    return False, None


def _looks_like_id(name: str, present: pd.Series, share: float) -> bool:
    """One distinct value per row (nearly): text always; whole numbers when they count up (a row
    number) or the column is named like an id (customer_id, PassengerId, key)."""
    n = len(present)
    distinct = present.nunique()
    if n < _MIN_ROWS_TO_CALL_ID or distinct < share * n:
        return False
    if not pd.api.types.is_numeric_dtype(present.dtype):
        return True
    numbers = present.astype("float64")
    if not (numbers == numbers.round()).all():
        return False  # measurements are often all different; codes are whole numbers
    counts_up = numbers.max() - numbers.min() + 1 <= n / share
    return bool(counts_up or _ID_NAME.search(name) or _ID_CAMEL.search(name))


def _inferred_kind(name: str, column: pd.Series, config: PipelineConfig) -> tuple[str | None, str | None, str]:
    """The type inference gives ``column`` (None: left out), its date format, and the note to make."""
    settings = config.inference
    present = column.dropna()
    if present.empty:
        return None, None, "has no values"
    missing = 1 - len(present) / len(column)
    limit = config.validation.max_missing
    too_sparse = f"{missing:.0%} of its values are missing, more than validation.max_missing {limit:.0%} allows"
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        kind, date_format = "datetime", None
    elif pd.api.types.is_bool_dtype(column.dtype):
        kind, date_format = "boolean", None
    elif pd.api.types.is_numeric_dtype(column.dtype):
        if _looks_like_id(name, present, settings.id_share):
            return None, None, f"ID-like: {present.nunique()} distinct values in {len(present)} rows"
        kind, date_format = "numeric", None
    else:
        text = present.astype("string")
        is_date, date_format = _date_format(text, settings.date_formats.get(name))
        if is_date:
            kind = "datetime"
        elif not as_booleans(present)[1].any():
            kind = "boolean"
        elif _looks_like_id(name, text, settings.id_share):
            return None, None, (f"ID-like or free text: {text.nunique()} distinct values in {len(present)} rows "
                                "(one per row)")
        elif text.nunique() > settings.max_levels:
            return None, None, (f"free text: {text.nunique()} distinct values, more than inference.max_levels "
                                f"{settings.max_levels}")
        else:
            kind = "categorical"
    if missing > limit:
        return None, None, f"{too_sparse} (it would fail every batch)"
    return kind, date_format, ""


def infer(frame: pd.DataFrame, config: PipelineConfig) -> InferredFeatures:
    """Feature specs from a batch by the rules of ``config.inference``
    (:class:`~include.ml.config.InferenceSettings`), with a note for every column left out.

    The target and id columns are never features. Used when the config says ``features: infer``.
    """
    settings = config.inference
    skip = {config.target, *config.id_columns}
    specs, notes = [], []
    for name in frame.columns:
        if name in skip:
            continue
        if name in settings.exclude:
            notes.append(f"column {name!r} left out: inference.exclude names it")
            continue
        kind, date_format = settings.types.get(name), settings.date_formats.get(name)
        if kind is None:
            kind, date_format, reason = _inferred_kind(name, frame[name], config)
            if kind is None:
                notes.append(f"column {name!r} left out: {reason}")
                continue
            integer_codes = (kind == "numeric" and pd.api.types.is_integer_dtype(frame[name].dtype)
                             and 2 < frame[name].nunique() <= 20)
            if integer_codes:
                notes.append(f"column {name!r} has {frame[name].nunique()} distinct whole numbers: kept numeric "
                             f"(if they are codes, set inference.types {{{name}: categorical}})")
        extra = ({"format": date_format} if kind == "datetime" and date_format
                 else {"max_categories": settings.max_categories} if kind == "categorical" else {})
        specs.append(FeatureSpec(name=name, type=kind, **extra))
    unknown = sorted((set(settings.exclude) | set(settings.types)) - set(frame.columns))
    if unknown:
        notes.append(f"inference names column(s) {unknown} the batch does not have")
    return InferredFeatures(specs, notes)


def infer_features(frame: pd.DataFrame, config: PipelineConfig) -> list[FeatureSpec]:
    """The features of :func:`infer`, without its notes."""
    return infer(frame, config).features


def _failure(column: str | None, rule: str, rows: list, values: list, count: int | None = None) -> dict:
    count = len(rows) if count is None else count
    where = f"column {column!r}" if column else "batch"
    shown_rows = ", ".join(str(r) for r in rows[:5])
    shown_values = ", ".join(excerpt(v) for v in values[:3])  # a cell of the upstream's file: bounded
    detail = f" (first rows: {shown_rows}; values: {shown_values})" if rows else ""
    return {
        "column": column,
        "rule": rule,
        "count": int(count),
        "rows": [int(r) for r in rows[:20]],
        "message": f"{where}: {rule}{detail}" if not rows else f"{where}: {count} values {rule}{detail}",
    }


def _read(frame: pd.DataFrame, config: PipelineConfig, rules: FeatureRules) -> tuple[pd.DataFrame, list[dict]]:
    """The batch with numeric features (and a regression target) as float64 and levels as text;
    values that are not numbers become failures, not silent NaN."""
    clean, broken = rules.read(frame)
    if config.task == "regression" and config.target in frame.columns:
        raw = frame[config.target]
        clean[config.target], not_numbers = as_numbers(raw)
        broken.append((number_rule(config.target), not_numbers))
    failures = []
    for rule, mask in broken:
        if mask.any():
            raw = frame[rule.feature]
            failures.append({**_failure(rule.feature, rule.message, list(raw.index[mask]), list(raw[mask]),
                                        int(mask.sum())), "severity": rule.severity})
    return clean, failures


def build_schema(
    config: PipelineConfig, features: list[FeatureSpec], reference: dict | None = None, *, feature_checks: bool = True
) -> tuple[pa.DataFrameSchema, dict[str, str | float]]:
    """The pandera schema of a batch, and the severity policy of each check (by its message).

    The features' checks are their :class:`~include.ml.feature_rules.FeatureRules` (the rules scoring
    applies row by row); the target, id columns and batch size are checked here. A policy is
    ``"error"``, ``"warning"``, or a share: an error when more than that share of rows fail, a
    warning otherwise. ``reference`` is a stored reference profile (as a dict): its observed ranges
    (with ``range_tolerance``) and known levels add warning checks. Without ``feature_checks`` the
    features' columns are only declared (present, their type) and their rules stay in the policy:
    :func:`check_batch` applies them itself, one mask per rule (see :func:`_rule_failures`).
    """
    rules = config.validation
    policy: dict[str, str | float] = {}

    def check(built: pa.Check, severity: str | float) -> pa.Check:
        policy[built.error] = severity
        return built

    feature_rules = FeatureRules(features, rules, reference)
    columns: dict[str, pa.Column] = {}
    for spec in features:
        checks = [check(built, severity) for built, severity in feature_rules.checks(spec.name)]
        checks = checks if feature_checks else []
        columns[spec.name] = pa.Column("float64" if spec.type == "numeric" else None, nullable=True, checks=checks)

    if config.task == "classification":
        # any number of classes; each class's share is checked by _class_share_failures (it names the class)
        target_checks = [
            check(pa.Check(lambda s: s.nunique() >= 2, element_wise=False,
                           error="has a single class: a classifier cannot learn from it"), ERROR),
        ]
        columns[config.target] = pa.Column(nullable=False, checks=target_checks)
    else:
        finite = finite_rule(config.target)
        columns[config.target] = pa.Column("float64", nullable=False, checks=[check(finite.check(), finite.severity)])
    for name in config.id_columns:
        columns.setdefault(name, pa.Column(nullable=True, required=True))
    min_rows = rules.min_rows
    schema = pa.DataFrameSchema(
        columns,
        checks=[check(pa.Check(lambda df: len(df) >= min_rows, error=f"has fewer than {min_rows} rows"), ERROR)],
        strict=False,
    )
    return schema, policy


def unlabelled(frame: pd.DataFrame, config: PipelineConfig) -> np.ndarray:
    """True for each row whose target is missing (empty, blank text or NaN); all False when the
    batch has no target column (validation reports that)."""
    if config.target not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    target = frame[config.target]
    blank = target.astype("string").str.strip().eq("").fillna(False).to_numpy(dtype=bool)
    return target.isna().to_numpy() | blank


def _unlabelled_failures(frame: pd.DataFrame, mask: np.ndarray, config: PipelineConfig) -> list[dict]:
    """Rows without a target: an error under ``validation.unlabelled: error``; under ``drop`` a
    warning when their share is above ``validation.max_unlabelled_share``."""
    rules = config.validation
    count = int(mask.sum())
    if not count:
        return []
    rows = [int(r) for r in frame.index[mask]]
    share = count / len(frame)
    shown = ", ".join(str(r) for r in rows[:5])
    where = f"column {config.target!r}: {count} rows ({share:.1%}) have no target value (first rows: {shown})"
    if rules.unlabelled == "error":
        return [{"column": config.target, "rule": "has no target value", "count": count, "rows": rows[:20],
                 "share": share, "severity": ERROR,
                 "message": f"{where}; validation.unlabelled is 'error' (set it to 'drop' to train on the "
                            "labelled rows only)"}]
    if share > rules.max_unlabelled_share:
        return [{"column": config.target, "rule": "has no target value", "count": count, "rows": rows[:20],
                 "share": share, "severity": WARNING,
                 "message": f"{where}, above validation.max_unlabelled_share {rules.max_unlabelled_share:.1%}; "
                            "they are left out of training"}]
    return []


def _class_share_failures(clean: pd.DataFrame, config: PipelineConfig) -> list[dict]:
    """One error per class of the target below ``validation.min_class_share`` of the rows."""
    limit = config.validation.min_class_share
    if config.task != "classification" or config.target not in clean.columns or not len(clean):
        return []
    counts = clean[config.target].value_counts()  # dropna; then label the few classes, not every row
    counts = counts.groupby(counts.index.map(level_label), sort=False).sum().sort_values(ascending=False, kind="stable")
    total = int(counts.sum())
    failures = []
    for label, count in counts.items():
        share = count / total if total else 0.0
        if share < limit:
            failures.append({"column": config.target, "rule": "class below min_class_share", "count": int(count),
                             "rows": [], "share": share, "severity": ERROR, "class": str(label),
                             "message": f"column {config.target!r}: class {excerpt(label)} has {count} of {total} rows "
                                        f"({share:.2%}), below validation.min_class_share {limit:.2%}"})
    return failures


def _graded(failure: dict, severity: str | float, rows_in_batch: int) -> dict:
    """``failure`` with its severity: ``severity`` itself, or for a share an error when more than
    that share of the batch's rows broke the rule (a warning otherwise), the share in the message."""
    if isinstance(severity, float):
        share = failure["count"] / max(rows_in_batch, 1)
        failure["share"] = share
        failure["severity"] = ERROR if share > severity else WARNING
        failure["message"] += f" [{share:.2%} of rows; the limit is {severity:.2%}]"
    else:
        failure["severity"] = severity
    return failure


def _rule_failures(clean: pd.DataFrame, rules: FeatureRules) -> list[dict]:
    """One failure per broken feature rule on the read batch, worded and graded as the schema's
    checks would be: each rule's mask is computed once and gives the count, first rows and values
    (no per-check copies of the column, as pandera makes)."""
    failures = []
    for spec in rules.features:
        if spec.name not in clean.columns:
            continue  # the schema reports the missing column
        for rule, broken in rules.broken(clean, spec.name):
            if rule.whole_column:
                if broken:
                    share = clean[spec.name].isna().mean() if "missing values" in rule.message else None
                    text = rule.message if share is None else f"{rule.message} ({share:.1%})"
                    failures.append({**_failure(spec.name, text, [], []), "severity": rule.severity})
                continue
            where = np.flatnonzero(broken)
            if len(where):
                values = clean[spec.name]
                failure = _failure(spec.name, rule.message, values.index[where[:20]].tolist(),
                                   values.iloc[where[:3]].tolist(), len(where))
                failures.append(_graded(failure, rule.severity, len(clean)))
    return failures


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
            failures.append(_graded(failure, rule, len(frame)))
        elif column is not None and "missing values" in str(check):
            share = frame[column].isna().mean()
            failures.append({**_failure(column, f"{check} ({share:.1%})", [], []), "severity": ERROR})
        elif column is None and "rows" in str(check):
            failures.append({**_failure(None, f"{check} (has {len(frame)})", [], []), "severity": ERROR})
        else:
            failures.append({**_failure(column, str(check), [], []), "severity": ERROR})
    return failures


def _repeated_rows(frame: pd.DataFrame) -> np.ndarray:
    """True for each row that repeats an earlier row exactly (``frame.duplicated()``).

    Rows are hashed first and compared in full only where two hashes meet: on a million rows this
    is ~8x faster than comparing every row, and a hash collision never flags a row. The numeric
    columns are hashed first (cheap, and nearly unique), the text ones only on the rows still meeting:
    equal rows are equal on any subset of columns, so no repeat is lost on the way.
    """
    repeated = np.zeros(len(frame), dtype=bool)
    numeric = [name for name, dtype in frame.dtypes.items() if pd.api.types.is_numeric_dtype(dtype)]
    stages = [numeric, list(frame.columns)] if 0 < len(numeric) < frame.shape[1] else [list(frame.columns)]
    rows = np.arange(len(frame))
    for columns in stages:
        part = frame[columns] if len(rows) == len(frame) else frame.iloc[rows][columns]
        rows = rows[pd.util.hash_pandas_object(part, index=False).duplicated(keep=False).to_numpy()]
        if not len(rows):
            return repeated
    repeated[rows] = frame.iloc[rows].duplicated().to_numpy()
    return repeated


def check_batch(
    frame: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec], reference: dict | None = None
) -> ValidationResult:
    """Check ``frame`` against the config (and the training ``reference`` profile, if given).

    Returns the clean frame and the warnings; raises :class:`BatchValidationError` listing every
    error (and the warnings after them) when any error is found.
    """
    missing_target = unlabelled(frame, config)
    unlabelled_failures = _unlabelled_failures(frame, missing_target, config)
    frame = frame[~missing_target]  # left out under either policy: the error above says why
    feature_rules = FeatureRules(features, config.validation, reference)
    clean, failures = _read(frame, config, feature_rules)
    failures.extend(unlabelled_failures)
    schema, policy = build_schema(config, features, reference, feature_checks=False)
    try:
        clean = schema.validate(clean, lazy=True, inplace=True)  # clean is this call's own frame: no copy
    except pa.errors.SchemaErrors as errors:
        failures.extend(_summarise(errors, clean, policy))
    failures.extend(_rule_failures(clean, feature_rules))
    failures.extend(_class_share_failures(clean, config))
    repeated = _repeated_rows(frame)
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
    return ValidationResult(frame=clean, warnings=warnings, unlabelled_rows=int(missing_target.sum()))


def validate_frame(
    frame: pd.DataFrame, config: PipelineConfig, features: list[FeatureSpec], reference: dict | None = None
) -> pd.DataFrame:
    """:func:`check_batch`, returning only the clean frame."""
    return check_batch(frame, config, features, reference).frame


def quarantine(source: Path, destination: Path, failures: list[dict], context: dict,
               max_bytes: int | None = None) -> Path:
    """Copy ``source`` into ``destination`` with a ``reasons.json``; the source stays where it is.

    The copy reads ``source`` through the same safe opener as extract (a link or device swapped in
    since is refused, :class:`~include.ml.errors.UnsafeDeliveryError`); when its sha256 is not the
    ``context["sha256"]`` extract read, ``reasons.json`` says ``changed_since_extract``."""
    from include.ml.extract import DEFAULT_MAX_BYTES, delivery_anchor

    copied = storage.copy_delivery(source, destination / source.name, max_bytes or DEFAULT_MAX_BYTES,
                                   delivery_anchor(source))
    reasons = {
        "source": str(source),
        **({"changed_since_extract": True, "copied_sha256": copied}
           if context.get("sha256") not in (None, copied) else {}),
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
        **context,
        "failures": failures,
    }
    storage.write_json(destination / QUARANTINE_REASONS, reasons)
    return destination
