"""The rules a feature's values must keep, written once: as pandera checks for a whole batch
(validation) and as per-row reject masks with a reason (scoring).

A feature's rules come from its :class:`~include.ml.config.FeatureSpec` (is a number, finite,
minimum, maximum, allowed levels, is a boolean, is a date), the validation settings (the missing share) and, when given,
the training data's reference profile (the observed range, the known levels). Values are read
the same way everywhere (:func:`read_feature`): numbers and booleans (1.0/0.0) as float64, dates as
datetime64[ns], category levels as text by :func:`level_label`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from include.ml.config import FeatureSpec, ValidationRules

if TYPE_CHECKING:
    import pandera.pandas as pa

WARNING = "warning"
ERROR = "error"


def level_label(value: object) -> str:
    """A category level as text: whole-number floats (codes read from a CSV with gaps) lose their
    ``.0``, so 3 and 3.0 are the same level whichever file format carried them."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def level_labels(raw: pd.Series) -> pd.Series:
    """:func:`level_label` of every value of ``raw`` (object dtype), missing values as NaN; computed
    once per distinct value (a column has few levels)."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    labels = np.array([level_label(u) for u in uniques] + [np.nan], dtype=object)
    return pd.Series(labels[codes], index=raw.index, dtype=object, name=raw.name)


def as_numbers(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``raw`` as float64, and the mask of the values that are present but not numbers (they
    become NaN here and must be reported, not silently treated as missing)."""
    if raw.dtype == "float64":  # already numbers: nothing to read (and no copy of the column)
        return raw, np.zeros(len(raw), dtype=bool)
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    return numbers, (numbers.isna() & raw.notna()).to_numpy()


TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


def _boolean_of(value: object) -> float:
    if isinstance(value, bool | np.bool_):
        return float(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return float(value)
    word = str(value).strip().lower()
    return 1.0 if word in TRUE_WORDS else 0.0 if word in FALSE_WORDS else np.nan


def as_booleans(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``raw`` as 1.0/0.0 (float64), and the mask of the values that are present but not booleans.

    True/False, 1/0 and the words true/false, t/f, yes/no, y/n, 1/0 (any case, spaces around ignored)
    are booleans; anything else (2, "maybe") is not. Computed once per distinct value."""
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    read = np.array([_boolean_of(u) for u in uniques] + [np.nan], dtype="float64")
    values = pd.Series(read[codes], index=raw.index, dtype="float64", name=raw.name)
    return values, (values.isna() & raw.notna()).to_numpy()


def as_datetimes(raw: pd.Series, date_format: str | None = None) -> tuple[pd.Series, np.ndarray]:
    """``raw`` as timezone-naive datetime64[ns] (aware values converted to UTC), and the mask of the
    values that are present but not dates. Text is read with ``date_format`` (strftime), by default
    ISO 8601 (2026-01-31, 2026-01-31 08:00, 2026-01-31T08:00:00+02:00); numbers are not dates."""
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        values = raw.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(raw.dtype):
        values = raw
    else:
        text = raw.astype("string") if not pd.api.types.is_numeric_dtype(raw.dtype) else None
        if text is None:
            values = pd.Series(pd.NaT, index=raw.index)
        else:
            values = pd.to_datetime(text, format=date_format or "ISO8601", errors="coerce", utc=True)
            values = values.dt.tz_localize(None)
    values = values.astype("datetime64[ns]").rename(raw.name)
    return values, (values.isna() & raw.notna()).to_numpy()


def datetime_parts(values: pd.Series, parts: tuple[str, ...]) -> pd.DataFrame:
    """The numeric ``parts`` (year, quarter, month, day, dayofweek (Monday 0), dayofyear, hour, minute)
    of datetime64 ``values`` as float64 columns named after the parts; NaT gives NaN."""
    accessor = values.dt
    return pd.DataFrame({part: getattr(accessor, part).astype("float64") for part in parts}, index=values.index)


@dataclass(frozen=True)
class FeatureRule:
    """One rule of one feature.

    ``passes`` takes the feature's read values (numbers as float64, levels as text) and returns a
    mask (True where a value keeps the rule); a rule on the whole column (``whole_column``) takes the
    mask of the present values instead and returns one bool. ``passes`` is None for the rule checked
    while the values are read (is a number). ``message`` is what a batch
    failure says after ``column 'x': N values``; ``reason`` is a scored row's reject reason (None:
    the rule is not checked row by row). ``severity`` is ``"error"``, ``"warning"`` or a share (an
    error when more than that share of rows break the rule, a warning otherwise).
    """

    feature: str
    message: str
    severity: str | float
    passes: Callable[[pd.Series], pd.Series | np.ndarray] | Callable[[np.ndarray], bool] | None
    reason: str | None = None
    whole_column: bool = False

    def broken(self, values: pd.Series) -> np.ndarray:
        """True where a present value breaks this (per-value) rule."""
        return values.notna().to_numpy() & ~np.asarray(self.passes(values), dtype=bool)

    def check(self) -> pa.Check:
        """This rule as a vectorised pandera check whose error is :attr:`message`."""
        import pandera.pandas as pa

        if self.whole_column:
            passes = self.passes
            return pa.Check(lambda s: bool(passes(s.notna().to_numpy())), element_wise=False, ignore_na=False,
                            error=self.message)
        return pa.Check(self.passes, error=self.message)


def number_rule(feature: str) -> FeatureRule:
    """Values must be numbers (checked while reading them: see :func:`as_numbers`)."""
    return FeatureRule(feature, "are not numbers", ERROR, None, f"{feature}: not a number")


def finite_rule(feature: str) -> FeatureRule:
    """Numbers must be finite."""
    return FeatureRule(feature, "are infinite", ERROR, lambda s: ~np.isinf(s), f"{feature}: infinite")


def boolean_rule(feature: str) -> FeatureRule:
    """Values must be booleans (checked while reading them: see :func:`as_booleans`)."""
    return FeatureRule(feature, "are not booleans (true/false, yes/no, 1/0)", ERROR, None, f"{feature}: not a boolean")


def date_rule(feature: str) -> FeatureRule:
    """Values must be dates (checked while reading them: see :func:`as_datetimes`)."""
    return FeatureRule(feature, "are not dates", ERROR, None, f"{feature}: not a date")


def _numeric_rules(spec: FeatureSpec, settings: ValidationRules, reference: dict) -> list[FeatureRule]:
    name, share = spec.name, settings.max_out_of_range_share
    rules = [number_rule(name), finite_rule(name)]
    if spec.min is not None:
        rules.append(FeatureRule(name, f"below minimum {spec.min:g}", share,
                                 lambda s, low=spec.min: s >= low, f"{name}: below minimum {spec.min:g}"))
    if spec.max is not None:
        rules.append(FeatureRule(name, f"above maximum {spec.max:g}", share,
                                 lambda s, high=spec.max: s <= high, f"{name}: above maximum {spec.max:g}"))
    observed = reference.get("numeric", {}).get(name)
    if observed and observed.get("quantiles"):
        low, high = observed["quantiles"][0], observed["quantiles"][-1]
        slack = settings.range_tolerance * (high - low)
        rules.append(FeatureRule(name, f"below the training range (min {low:g}, tolerance {slack:g})", WARNING,
                                 lambda s, edge=low - slack: s >= edge))
        rules.append(FeatureRule(name, f"above the training range (max {high:g}, tolerance {slack:g})", WARNING,
                                 lambda s, edge=high + slack: s <= edge))
    return rules


def _categorical_rules(spec: FeatureSpec, settings: ValidationRules, reference: dict) -> list[FeatureRule]:
    name = spec.name
    rules = []
    if spec.allowed is not None:
        rules.append(FeatureRule(name, f"not among allowed levels {spec.allowed}", settings.max_out_of_range_share,
                                 lambda s, levels=list(spec.allowed): s.isin(levels), f"{name}: not an allowed level"))
    known = reference.get("categorical", {}).get(name)
    if known and known.get("shares"):
        rules.append(FeatureRule(name, "are levels training never saw", WARNING,
                                 lambda s, levels=list(known["shares"]): s.isin(levels)))
    return rules


def _boolean_rules(spec: FeatureSpec, settings: ValidationRules, reference: dict) -> list[FeatureRule]:
    return [boolean_rule(spec.name)]


def _datetime_rules(spec: FeatureSpec, settings: ValidationRules, reference: dict) -> list[FeatureRule]:
    return [date_rule(spec.name)]


_RULES_OF_TYPE = {"numeric": _numeric_rules, "categorical": _categorical_rules, "boolean": _boolean_rules,
                  "datetime": _datetime_rules}


def read_feature(spec: FeatureSpec, raw: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """A feature's values as every consumer reads them: numbers and booleans (1.0/0.0) as float64,
    datetimes as datetime64[ns], category levels as text; and the mask of the present values that
    are not of the feature's type (None for categorical features: any value is a level)."""
    if spec.type == "numeric":
        return as_numbers(raw)
    if spec.type == "boolean":
        return as_booleans(raw)
    if spec.type == "datetime":
        return as_datetimes(raw, spec.format)
    return level_labels(raw), None


def _missing_share(present: np.ndarray) -> float:
    """The share of values not present (NaN for no values at all: no rule on the share passes then)."""
    return np.count_nonzero(~present) / len(present) if len(present) else float("nan")


class FeatureRules:
    """The rules of a model's features, built once from their specs, the validation settings and
    (optionally) a stored reference profile as a dict.

    Validation turns them into pandera checks (:meth:`checks`); scoring into each row's first
    problem (:meth:`row_problems`).
    """

    def __init__(self, features: list[FeatureSpec], settings: ValidationRules | None = None,
                 reference: dict | None = None):
        self.features = list(features)
        self.settings = settings or ValidationRules()
        reference = reference or {}
        self.rules: dict[str, list[FeatureRule]] = {}
        for spec in self.features:
            limit = self.settings.max_missing if spec.max_missing is None else spec.max_missing
            missing = FeatureRule(spec.name, f"has more than {limit:.0%} missing values", ERROR,
                                  lambda present, limit=limit: _missing_share(present) <= limit, whole_column=True)
            values = _RULES_OF_TYPE[spec.type]
            self.rules[spec.name] = [missing, *values(spec, self.settings, reference)]

    def read(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[FeatureRule, np.ndarray]]]:
        """``frame`` with each feature read by :func:`read_feature` (features it lacks are skipped),
        and the rows breaking the rule checked while reading (not a number, not a boolean, not a
        date), as (rule, mask) pairs. ``frame`` itself is not modified."""
        clean = frame.copy(deep=False)  # columns are replaced, never modified in place
        broken = []
        for spec in self.features:
            if spec.name not in frame.columns:
                continue
            clean[spec.name], not_read = read_feature(spec, frame[spec.name])
            if not_read is not None:
                broken.append((next(r for r in self.rules[spec.name] if r.passes is None), not_read))
        return clean, broken

    def broken(self, clean: pd.DataFrame, feature: str) -> list[tuple[FeatureRule, np.ndarray | bool]]:
        """Each checked rule of ``feature`` on its read values in ``clean`` (see :meth:`read`), with
        where it breaks: a mask of the present values breaking it, or, for a rule on the whole column,
        True when the column breaks it. Rules checked while reading are not included.

        Levels (text) are checked once per distinct level and spread to the rows by their codes:
        a column holds few levels, and hashing it once beats a pass per rule."""
        values = clean[feature]
        by_level = values.dtype == object
        if by_level:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            present, levels = codes >= 0, pd.Series(uniques, dtype=object)
        else:
            present = values.notna().to_numpy()  # once per feature, shared by its rules
        broken: list[tuple[FeatureRule, np.ndarray | bool]] = []
        for rule in self.rules[feature]:
            if rule.passes is None:
                continue
            if rule.whole_column:
                broken.append((rule, not bool(rule.passes(present))))
            elif by_level:  # code -1 (missing) takes the appended True: a missing value breaks no rule
                keeps = np.append(np.asarray(rule.passes(levels), dtype=bool), True)
                broken.append((rule, ~keeps[codes]))
            else:
                broken.append((rule, present & ~np.asarray(rule.passes(values), dtype=bool)))
        return broken

    def checks(self, feature: str) -> list[tuple[pa.Check, str | float]]:
        """The pandera checks of ``feature`` on its read values, each with its severity."""
        return [(rule.check(), rule.severity) for rule in self.rules[feature] if rule.passes is not None]

    def row_problems(self, chunk: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """The chunk's read values (see :meth:`read`), and each row's first broken rule as its
        reject reason ('' if none). Only rules with a ``reason`` are checked row by row."""
        clean, read_problems = self.read(chunk)
        problem = pd.Series("", index=chunk.index, dtype=object)
        flagged = np.zeros(len(chunk), dtype=bool)
        on_read = {rule.feature: mask for rule, mask in read_problems}

        def flag(mask: np.ndarray, reason: str) -> None:
            new = mask & ~flagged
            if new.any():  # most rules flag nothing: skip the text column then
                problem[new] = reason
                flagged[new] = True

        for spec in self.features:
            for rule in self.rules[spec.name]:
                if rule.reason is None:
                    continue
                flag(on_read[spec.name] if rule.passes is None else rule.broken(clean[spec.name]), rule.reason)
        return clean, problem
