"""Model code from the bundle: an estimator class by import path, a function in ``include/`` that
builds the model (``model.factory``) and one that derives features (``model.feature_code``).

Two levels of checks. :func:`check_source` needs no import (it reads the module as source with
``ast``), so the config runs it while DAG files parse. :func:`check_model` imports and calls the
code: ``config check`` and the run's first task run it. Every failure is a
:class:`~include.ml.errors.ModelCodeError` naming the config file and the key.

Trust: configs and code in the repository are reviewed and trusted; a reference must name a ``.py``
file inside the bundle's ``include/`` folder (no ``..``, no absolute path, no symbolic link, never
inside the data root, where upstreams write).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path, PurePosixPath
from typing import Any

from include.ml import paths
from include.ml.errors import ModelCodeError

CODE_ROOT = paths.REPO_ROOT / "include"  # model code lives in the bundle, below this folder
# include/<folders>/<module>.py:<function>, every part a Python identifier
REFERENCE_PATTERN = r"^include/([A-Za-z_][A-Za-z0-9_]*/)*[A-Za-z_][A-Za-z0-9_]*\.py:[A-Za-z_][A-Za-z0-9_]*$"
IMPORT_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"  # package.module.Class
CODE_KEYS = ("factory", "feature_code")  # the model.* keys that name a function in the bundle


def config_file(config) -> Path:
    """The YAML file of a pipeline config (what every message names)."""
    from include.ml import config as config_module  # its folder, where a test may point it elsewhere

    return config_module.PIPELINES_DIR / f"{config.name}.yaml"


@dataclass(frozen=True)
class CodeReference:
    """``include/<...>/<module>.py:<function>``: a function defined in a module of the bundle."""

    path: str
    function: str

    @classmethod
    def parse(cls, value: str) -> CodeReference:
        """The reference ``value`` names; ``ValueError`` saying the expected form otherwise."""
        if not isinstance(value, str) or not re.fullmatch(REFERENCE_PATTERN, value):
            raise ValueError(f"{value!r} is not a reference to a function in the bundle: write "
                             "include/<folder>/<module>.py:<function>, a path relative to the repository root")
        path, _, function = value.partition(":")
        return cls(path, function)

    def __str__(self) -> str:
        return f"{self.path}:{self.function}"

    @property
    def file(self) -> Path:
        return paths.REPO_ROOT / self.path

    @property
    def module(self) -> str:
        """The module's import name, e.g. ``include.models.diabetes``."""
        return ".".join(PurePosixPath(self.path).with_suffix("").parts)


def _refused_location(reference: CodeReference) -> str | None:
    """Why ``reference``'s file may not hold model code, or None."""
    folder = CODE_ROOT
    for part in PurePosixPath(reference.path).parts[1:]:
        folder = folder / part
        if folder.is_symlink():
            return f"{folder.relative_to(paths.REPO_ROOT)} is a symbolic link: model code must be a plain file " \
                   "of the bundle, not a link to somewhere else"
    real = reference.file.resolve()
    if not real.is_relative_to(CODE_ROOT.resolve()):
        return f"it resolves to {real}, outside the bundle's include/ folder"
    if real.is_relative_to(paths.data_root()):
        return f"it lies inside the data root {paths.data_root()}, where upstreams write: model code must be " \
               "reviewed code of the bundle"
    return None


def check_source(reference: CodeReference) -> None:
    """Cheap, import-free checks (DAG parsing): the file is a plain file of ``include/`` and defines
    ``reference.function`` at top level, read as source. ``ValueError`` saying what to do otherwise."""
    refused = _refused_location(reference)
    if refused:
        raise ValueError(f"{reference} is refused: {refused}")
    if not reference.file.is_file():
        raise ValueError(f"{reference}: there is no file {reference.path} in the bundle; create it, or fix the path "
                         "(relative to the repository root)")
    try:
        tree = ast.parse(reference.file.read_bytes(), filename=reference.path)
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"{reference}: {reference.path} is not valid Python ({exc})") from None
    functions = [node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    if reference.function not in functions:
        raise ValueError(f"{reference}: {reference.path} defines no top-level function {reference.function!r} "
                         f"(its functions: {', '.join(functions) or 'none'})")


def source_sha256(reference: CodeReference) -> str | None:
    """sha256 of the module's source file (the function and the helpers beside it), or None when gone."""
    try:
        return hashlib.sha256(reference.file.read_bytes()).hexdigest()
    except OSError:
        return None


def _where(config, key: str) -> str:
    return f"{config_file(config)}: model.{key}"


def import_function(config, key: str) -> Callable:
    """The function ``model.<key>`` names, imported from the bundle (its file checked first)."""
    reference = CodeReference.parse(getattr(config.model, key))
    try:
        check_source(reference)
    except ValueError as exc:
        raise ModelCodeError(f"{_where(config, key)}: {exc}") from None
    try:
        module = import_module(reference.module)
    except Exception as exc:  # the user's module: any error it raises while importing is theirs to fix
        raise ModelCodeError(f"{_where(config, key)}: importing {reference.module} failed: "
                             f"{type(exc).__name__}: {exc}") from None
    if Path(getattr(module, "__file__", "") or "").resolve() != reference.file.resolve():
        raise ModelCodeError(f"{_where(config, key)}: {reference.module} imports from {module.__file__}, not "
                             f"{reference.path}: another module of that name comes first on sys.path; rename yours")
    function = getattr(module, reference.function, None)
    if not callable(function):
        raise ModelCodeError(f"{_where(config, key)}: {reference.module}.{reference.function} is not a function")
    return function


# -- estimators -------------------------------------------------------------------------------------


def import_estimator_class(config) -> type:
    """The class ``model.estimator`` names (an alias of :mod:`include.ml.estimators` or an import path)."""
    from include.ml.estimators import resolve_estimator

    spec = resolve_estimator(config.task, config.model.estimator)
    module_name, _, name = spec.import_path.rpartition(".")
    try:
        module = import_module(module_name)
    except Exception as exc:  # ModuleNotFoundError, or any error of the module's own import
        raise ModelCodeError(f"{_where(config, 'estimator')}: cannot import {module_name!r} for "
                             f"{spec.import_path!r} ({type(exc).__name__}: {exc}); install the package or fix the "
                             "path (package.module.Class)") from None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        what = "nothing" if found is None else f"a {type(found).__name__}, not a class"
        raise ModelCodeError(f"{_where(config, 'estimator')}: {spec.import_path!r}: module {module_name} defines "
                             f"{what} called {name!r}")
    return found


def check_estimator(model: Any, task: str, where: str, what: str) -> None:
    """``model`` can be fitted and predict for ``task`` (``predict_proba`` for classification);
    :class:`ModelCodeError` naming ``where`` (file and key) and ``what`` it is otherwise."""
    missing = [name for name in ("fit", "predict") if not callable(getattr(model, name, None))]
    if missing:
        raise ModelCodeError(f"{where}: {what} is not a scikit-learn-compatible estimator: it has no "
                             f"{' and no '.join(missing)} method. Name a class (or return an object) with fit and "
                             "predict, e.g. sklearn.ensemble.ExtraTreesClassifier or a sklearn Pipeline")
    if task == "classification" and not hasattr(model, "predict_proba"):
        raise ModelCodeError(f"{where}: {what} has no predict_proba: a classification pipeline needs class "
                             "probabilities (roc_auc, the gates, the scoring output's proba_<class> columns); use "
                             "a classifier that has it, or wrap it in sklearn.calibration.CalibratedClassifierCV")


def parameters_of(cls: type) -> list[str]:
    """The parameter names ``cls`` takes: its ``get_params()`` keys, else its constructor's signature."""
    try:
        return sorted(cls().get_params(deep=False))
    except Exception:  # a class that needs arguments, or has no get_params: read its signature
        signature = inspect.signature(cls)
        return sorted(name for name, p in signature.parameters.items()
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def _check_values(model: Any, where: str, fix: str = "") -> None:
    """scikit-learn checks parameter values at fit; check them now, with the config's key."""
    from sklearn.utils._param_validation import InvalidParameterError

    validate = getattr(model, "_validate_params", None)
    if callable(validate):
        try:
            validate()
        except (InvalidParameterError, ValueError, TypeError) as exc:
            raise ModelCodeError(f"{where}: {exc}" + (f". {fix}" if fix else "")) from None


def build_from_class(config) -> Any:
    """An unfitted ``model.estimator`` with ``model.params`` (and ``random_state=model.seed`` where it
    takes one), every parameter checked against the class's own."""
    from include.ml.estimators import resolve_estimator

    spec = resolve_estimator(config.task, config.model.estimator)
    cls = import_estimator_class(config)
    check_estimator(cls, config.task, _where(config, "estimator"), f"{spec.import_path}")
    known = parameters_of(cls)
    unfit = f"pipeline {config.name!r}: model.params do not fit {config.model.estimator}"
    fix = f"Fix model.params in {config_file(config)}"
    unknown = sorted(set(config.model.params) - set(known))
    if unknown:
        raise ModelCodeError(f"{unfit}: {cls.__name__} takes no parameter(s) {unknown}; its parameters are "
                             f"{', '.join(known) or 'none'}. {fix}")
    seeded = spec.seeded if spec.seeded is not None else "random_state" in known
    arguments = {**spec.defaults, **({"random_state": config.model.seed} if seeded else {}), **config.model.params}
    try:
        model = cls(**arguments)
    except Exception as exc:  # the class's own check of a value
        raise ModelCodeError(f"{unfit}: {type(exc).__name__}: {exc}. {fix}") from None
    _check_values(model, unfit, fix)
    # again on the instance: a method such as SVC's predict_proba exists only with some parameters
    check_estimator(model, config.task, _where(config, "estimator"), f"{spec.import_path} with these model.params")
    return model


def build_from_factory(config) -> Any:
    """What ``model.factory`` returns, called with ``model.params`` as keyword arguments (and
    ``seed=model.seed`` when it takes ``seed``): an unfitted estimator or a whole Pipeline."""
    function = import_function(config, "factory")
    where = _where(config, "factory")
    signature = inspect.signature(function)
    arguments = dict(config.model.params)
    if "seed" in signature.parameters and "seed" not in arguments:
        arguments["seed"] = config.model.seed
    try:
        signature.bind(**arguments)
    except TypeError as exc:
        raise ModelCodeError(f"{config_file(config)}: model.params do not fit {config.model.factory} "
                             f"{signature}: {exc}") from None
    try:
        model = function(**arguments)
    except Exception as exc:  # the user's function failed: say which and how
        raise ModelCodeError(f"{where}: {config.model.factory} raised {type(exc).__name__}: {exc}") from None
    returned = f"{config.model.factory} returned {type(model).__name__}"
    if isinstance(model, type):
        raise ModelCodeError(f"{where}: {config.model.factory} returned the class {model.__name__}, not an "
                             "instance: return an unfitted estimator, e.g. `return MyModel()`")
    check_estimator(model, config.task, where, returned)
    if hasattr(model, "n_features_in_") or hasattr(model, "classes_"):
        raise ModelCodeError(f"{where}: {returned}, which is already fitted; return an unfitted estimator (the "
                             "pipeline fits it on each run's training rows)")
    _check_values(model, where)
    return model


def build_model(config) -> Any:
    """The unfitted model the config describes (``model.factory`` or ``model.estimator``)."""
    return build_from_factory(config) if config.model.factory else build_from_class(config)


def check_model(config) -> None:
    """The full checks of the model code (imported and called): ``config check`` and the run's first
    task. :class:`ModelCodeError` naming the file and key."""
    build_model(config)
    if config.model.feature_code:
        import_function(config, "feature_code")


# -- provenance -------------------------------------------------------------------------------------


def code_record(config, bundle_version: str | None) -> dict:
    """What built the model, for its metadata: per code key the module, function and sha256 of the
    module's source, and the bundle version; the estimator's import path."""
    from include.ml.estimators import resolve_estimator

    record: dict[str, Any] = {"bundle_version": bundle_version}
    if config.model.estimator:
        record["estimator"] = resolve_estimator(config.task, config.model.estimator).import_path
    for key in CODE_KEYS:
        value = getattr(config.model, key)
        if value:
            reference = CodeReference.parse(value)
            record[key] = {"path": reference.path, "module": reference.module, "function": reference.function,
                           "sha256": source_sha256(reference)}
    return record


def code_hashes(model_config) -> dict[str, str | None]:
    """The sha256 of each code key's module source (for the config hash: new code is a new model)."""
    return {key: source_sha256(CodeReference.parse(getattr(model_config, key)))
            for key in CODE_KEYS if getattr(model_config, key)}


def code_changes(metadata: dict) -> list[str]:
    """How the bundle's code differs from the code that built a version (from its ``model_code``
    metadata): one line per module whose source changed or is gone; empty when unchanged."""
    changes = []
    for key in CODE_KEYS:
        recorded = (metadata.get("model_code") or {}).get(key)
        if not recorded:
            continue
        now = source_sha256(CodeReference(recorded["path"], recorded["function"]))
        if now is None:
            changes.append(f"model.{key} {recorded['path']} is gone from the bundle: this version cannot be loaded "
                           "until it is restored")
        elif now != recorded["sha256"]:
            changes.append(f"model.{key} {recorded['path']} changed since this version was trained (sha256 "
                           f"{recorded['sha256'][:12]} then, {now[:12]} now): the model runs today's "
                           f"{recorded['function']}; retrain, or restore the file, so training and scoring agree")
    return changes
