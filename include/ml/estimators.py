"""The estimators a pipeline config may name, per task: the one table the config validates against
and fitting builds from. Besides these short names (aliases), ``model.estimator`` may be the import
path of any scikit-learn-compatible class (:func:`resolve_estimator`).

Cheap to import (no scikit-learn): the config checks ``model.estimator`` against it while DAG files
parse, so an entry holds the class's import path, and :meth:`EstimatorSpec.build` imports the class
only when a model is fitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import import_module
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator a config can name: the scikit-learn class, the params this project sets unless the
    config does, and whether it takes ``random_state`` (then the config's ``model.seed`` fills it)."""

    name: str
    import_path: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool | None = False  # None: an import path, seeded when the class takes random_state

    def __post_init__(self) -> None:
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))

    @property
    def class_name(self) -> str:
        return self.import_path.rpartition(".")[2]

    def estimator_class(self) -> type:
        """The scikit-learn class, imported now."""
        module, _, name = self.import_path.rpartition(".")
        return getattr(import_module(module), name)

    def params(self, params: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The keyword arguments for the class: the defaults, ``random_state=seed`` if seeded, then
        ``params`` (the config's ``model.params``) over both."""
        merged = dict(self.defaults)
        if self.seeded:
            merged["random_state"] = seed
        return {**merged, **params}

    def build(self, params: Mapping[str, Any], seed: int):
        """An unfitted estimator; ``TypeError`` when the class does not take one of ``params``."""
        return self.estimator_class()(**self.params(params, seed))


def _named(*specs: EstimatorSpec) -> Mapping[str, EstimatorSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


# task -> estimator name -> spec; the order is the order the config schema and docs list them in
ESTIMATORS: Mapping[str, Mapping[str, EstimatorSpec]] = MappingProxyType({
    "classification": _named(
        EstimatorSpec("logistic_regression", "sklearn.linear_model.LogisticRegression", {"max_iter": 1000},
                      seeded=True),
        EstimatorSpec("random_forest", "sklearn.ensemble.RandomForestClassifier", seeded=True),
        EstimatorSpec("hist_gradient_boosting", "sklearn.ensemble.HistGradientBoostingClassifier", seeded=True),
    ),
    "regression": _named(
        EstimatorSpec("linear_regression", "sklearn.linear_model.LinearRegression"),
        EstimatorSpec("ridge", "sklearn.linear_model.Ridge"),
        EstimatorSpec("random_forest", "sklearn.ensemble.RandomForestRegressor", seeded=True),
        EstimatorSpec("hist_gradient_boosting", "sklearn.ensemble.HistGradientBoostingRegressor", seeded=True),
    ),
})
TASKS: tuple[str, ...] = tuple(ESTIMATORS)


def estimator_names(task: str) -> tuple[str, ...]:
    """The estimator names a ``task`` pipeline may use, in registry order."""
    return tuple(ESTIMATORS[task])


def is_import_path(name: str) -> bool:
    """Whether ``name`` is an import path (``package.module.Class``) rather than an alias."""
    return "." in name


def resolve_estimator(task: str, name: str) -> EstimatorSpec:
    """The alias ``name`` of ``task``, or a spec of the class at import path ``name`` (no defaults,
    seeded when it takes ``random_state``); nothing is imported."""
    if is_import_path(name):
        return EstimatorSpec(name, name, seeded=None)
    return estimator_spec(task, name)


def estimator_spec(task: str, name: str) -> EstimatorSpec:
    """The entry for ``name`` under ``task``; ``KeyError`` naming the choices when there is none."""
    try:
        return ESTIMATORS[task][name]
    except KeyError:
        choices = sorted(ESTIMATORS.get(task, {}))
        raise KeyError(f"no estimator {name!r} for task {task!r}; choose one of {choices}") from None
