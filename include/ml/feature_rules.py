"""The rules a feature's values must keep, written once: as pandera checks for a whole batch
(validation) and as per-row reject masks with a reason (scoring).

A feature's rules come from its :class:`~include.ml.config.FeatureSpec` (is a number, finite,
minimum, maximum, allowed levels), the validation settings (the missing share) and, when given,
the training data's reference profile (the observed range, the known levels). Values are read
the same way everywhere: numbers as float64, category levels as text by :func:`level_label`.
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
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    return numbers, (numbers.isna() & raw.notna()).to_numpy()


@dataclass(frozen=True)
class FeatureRule:
    """One rule of one feature.

    ``passes`` takes the feature's read values (numbers as float64, levels as text) and returns a
    mask (True where a value keeps the rule) or, for a rule on the whole column, one bool; it is
    None for the rule checked while the values are read (is a number). ``message`` is what a batch
    failure says after ``column 'x': N values``; ``reason`` is a scored row's reject reason (None:
    the rule is not checked row by row). ``severity`` is ``"error"``, ``"warning"`` or a share (an
    error when more than that share of rows break the rule, a warning otherwise).
    """

    feature: str
    message: str
    severity: str | float
    passes: Callable[[pd.Series], pd.Series | np.ndarray | bool] | None
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
            return pa.Check(lambda s: bool(passes(s)), element_wise=False, ignore_na=False, error=self.message)
        return pa.Check(self.passes, error=self.message)


def number_rule(feature: str) -> FeatureRule:
    """Values must be numbers (checked while reading them: see :func:`as_numbers`)."""
    return FeatureRule(feature, "are not numbers", ERROR, None, f"{feature}: not a number")


def finite_rule(feature: str) -> FeatureRule:
    """Numbers must be finite."""
    return FeatureRule(feature, "are infinite", ERROR, lambda s: ~np.isinf(s), f"{feature}: infinite")


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
                                  lambda s, limit=limit: s.isna().mean() <= limit, whole_column=True)
            values = _numeric_rules if spec.type == "numeric" else _categorical_rules
            self.rules[spec.name] = [missing, *values(spec, self.settings, reference)]

    def read(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[FeatureRule, np.ndarray]]]:
        """``frame`` with numeric features as float64 and levels as text (features it lacks are
        skipped), and the rows breaking the rule checked while reading (values that are not
        numbers), as (rule, mask) pairs. ``frame`` itself is not modified."""
        clean = frame.copy(deep=False)  # columns are replaced, never modified in place
        broken = []
        for spec in self.features:
            if spec.name not in frame.columns:
                continue
            if spec.type == "numeric":
                clean[spec.name], not_numbers = as_numbers(frame[spec.name])
                broken.append((next(r for r in self.rules[spec.name] if r.passes is None), not_numbers))
            else:
                clean[spec.name] = level_labels(frame[spec.name])
        return clean, broken

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
