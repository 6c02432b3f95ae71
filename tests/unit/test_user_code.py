"""Model code of one's own: an estimator by import path, a factory function and feature code in the
bundle; what `config check` says (file and key) when it is wrong, and what the parse-time checks see
without importing anything."""

from __future__ import annotations

import copy
import os
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

from include.ml import config as config_module
from include.ml import steps
from include.ml.config import ConfigError, PipelineConfig, get_pipeline, load_config, load_each
from include.ml.errors import ModelCodeError
from include.ml.fitting import fit, split
from include.ml.paths import PIPELINES_DIR as SHIPPED
from include.ml.simulate import credit_default, diabetes, house_prices, write_batches
from include.ml.user_code import code_changes, code_record
from tests.conftest import ROOT
from tests.unit.test_cli import run

MODELS = ROOT / "include" / "models"


@pytest.fixture
def bundle_module():
    """``write(source) -> 'include/models/_test_<id>.py'``: a module of the bundle for one test, removed after."""
    import sys

    written: list[Path] = []

    def write(source: str) -> str:
        path = MODELS / f"_test_{uuid.uuid4().hex[:10]}.py"
        path.write_text(textwrap.dedent(source))
        written.append(path)
        return path.relative_to(ROOT).as_posix()

    yield write
    for path in written:
        path.unlink(missing_ok=True)
        sys.modules.pop(f"include.models.{path.stem}", None)


def raw(name: str) -> dict:
    return yaml.safe_load((SHIPPED / f"{name}.yaml").read_text())


@pytest.fixture
def pipelines(tmp_path: Path, monkeypatch):
    """``write(name, model) -> path``: the shipped config ``name`` with ``model`` as its model section, the
    only config in the pipelines folder (as `config check` sees it)."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    monkeypatch.setattr(config_module, "PIPELINES_DIR", folder)

    def write(name: str, model: dict, **changes) -> Path:
        data = copy.deepcopy(raw(name))
        data["model"] = model
        data.update(changes)
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def check(capsys) -> str:
    """`config check`'s error (it must fail with exit 1, no traceback)."""
    code, out, err = run(capsys, "config", "check")
    assert code == 1, out
    assert "Traceback" not in err
    return err


# -- an estimator by import path ------------------------------------------------------------------


@pytest.mark.parametrize(("pipeline", "generate", "estimator"), [
    ("credit_default", credit_default, "sklearn.ensemble.ExtraTreesClassifier"),
    ("house_prices", house_prices, "sklearn.ensemble.ExtraTreesRegressor"),
])
def test_a_class_by_import_path_that_is_no_alias_is_fitted_seeded_with_its_params(pipeline, generate, estimator):
    import datetime as dt

    base = get_pipeline(pipeline)
    config = PipelineConfig.model_validate({**base.model_dump(mode="json"), "model": {
        "estimator": estimator, "params": {"n_estimators": 20, "min_samples_leaf": 5}, "seed": 9}})
    frame = generate(dt.date(2026, 1, 1), 600, seed=7, drifted=False)
    features, _ = steps.resolve_features(config, frame)
    data = split(frame.dropna(subset=[config.target]), config)

    model = fit(data.train, config, features)

    fitted = model.named_steps["model"]
    assert f"{type(fitted).__module__.partition('.')[0]}.{type(fitted).__name__}" == \
        f"sklearn.{estimator.rpartition('.')[2]}"
    assert (fitted.n_estimators, fitted.min_samples_leaf, fitted.random_state) == (20, 5, 9)
    predicted = model.predict(data.holdout[[f.name for f in features]])
    assert len(predicted) == len(data.holdout)
    if config.task == "classification":
        assert model.predict_proba(data.holdout[[f.name for f in features]]).shape == (len(data.holdout), 2)


def test_config_check_accepts_a_class_by_import_path(capsys, pipelines):
    pipelines("house_prices", {"estimator": "sklearn.ensemble.GradientBoostingRegressor",
                               "params": {"n_estimators": 30}})

    code, out, err = run(capsys, "config", "check")

    assert code == 0, err
    assert out.strip() == "house_prices: ok (regression, sklearn.ensemble.GradientBoostingRegressor, rmse)"


# -- what config check says ------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "expected"), [
    ({"estimator": "sklearn.ensemble.NoSuchForest"},
     "model.estimator: 'sklearn.ensemble.NoSuchForest': module sklearn.ensemble defines nothing called "
     "'NoSuchForest'"),
    ({"estimator": "no_such_package.Model"},
     "model.estimator: cannot import 'no_such_package' for 'no_such_package.Model' (ModuleNotFoundError"),
    ({"estimator": "collections.OrderedDict"},
     "model.estimator: collections.OrderedDict is not a scikit-learn-compatible estimator: it has no fit and no "
     "predict method"),
    ({"estimator": "sklearn.svm.LinearSVC"},
     "model.estimator: sklearn.svm.LinearSVC has no predict_proba: a classification pipeline needs class "
     "probabilities"),
    ({"estimator": "sklearn.ensemble.ExtraTreesClassifier", "params": {"n_estimator": 10}},
     "pipeline 'credit_default': model.params do not fit sklearn.ensemble.ExtraTreesClassifier: "
     "ExtraTreesClassifier takes no parameter(s) ['n_estimator']; its parameters are"),
    ({"estimator": "sklearn.ensemble.ExtraTreesClassifier", "params": {"n_estimators": "many"}},
     "model.params do not fit sklearn.ensemble.ExtraTreesClassifier: The 'n_estimators' parameter of "
     "ExtraTreesClassifier must be an int"),
    ({"estimator": "sklearn.svm.SVC", "params": {"probability": False}},
     "model.estimator: sklearn.svm.SVC with these model.params has no predict_proba"),
], ids=["class-missing", "module-missing", "not-an-estimator", "no-predict-proba", "unknown-param", "bad-value",
        "no-predict-proba-with-params"])
def test_config_check_names_the_file_and_key_of_a_wrong_estimator(capsys, pipelines, model, expected):
    path = pipelines("credit_default", model)

    err = check(capsys)

    assert expected in err
    assert str(path) in err


@pytest.mark.parametrize(("source", "params", "expected"), [
    ("def build(seed):\n    return 'a forest'\n", {},
     "model.factory: {ref}:build returned str is not a scikit-learn-compatible estimator: it has no fit and no "
     "predict method"),
    ("from sklearn.ensemble import ExtraTreesClassifier\ndef build(seed):\n    return ExtraTreesClassifier\n", {},
     "model.factory: {ref}:build returned the class ExtraTreesClassifier, not an instance"),
    ("from sklearn.svm import LinearSVC\ndef build():\n    return LinearSVC()\n", {},
     "model.factory: {ref}:build returned LinearSVC has no predict_proba"),
    ("from sklearn.ensemble import ExtraTreesClassifier\ndef build(seed, trees=10):\n"
     "    return ExtraTreesClassifier(n_estimators=trees, random_state=seed)\n", {"tres": 5},
     "model.params do not fit {ref}:build (seed, trees=10): got an unexpected keyword argument 'tres'"),
    ("def build(seed):\n    raise RuntimeError('no GPU here')\n", {},
     "model.factory: {ref}:build raised RuntimeError: no GPU here"),
    ("import no_such_library\ndef build(seed):\n    pass\n", {},
     "model.factory: importing include.models.{stem} failed: ModuleNotFoundError: No module named "
     "'no_such_library'"),
], ids=["returns-text", "returns-a-class", "no-predict-proba", "wrong-params", "raises", "import-fails"])
def test_config_check_names_the_file_and_key_of_a_factory_that_returns_the_wrong_thing(
        capsys, pipelines, bundle_module, source, params, expected):
    ref = bundle_module(source)
    path = pipelines("credit_default", {"factory": f"{ref}:build", "params": params})

    err = check(capsys)

    assert expected.format(ref=ref, stem=Path(ref).stem) in err
    assert str(path) in err


@pytest.mark.parametrize(("reference", "expected"), [
    ("include/models/no_such_module.py:build",
     "there is no file include/models/no_such_module.py in the bundle; create it, or fix the path"),
    ("{ref}:buld", "defines no top-level function 'buld' (its functions: build, helper)"),
    ("include/../../etc/passwd.py:build", "is not a reference to a function in the bundle"),
    ("/etc/models.py:build", "is not a reference to a function in the bundle"),
    ("landing/diabetes/model.py:build", "is not a reference to a function in the bundle"),
], ids=["module-missing", "function-missing", "traversal", "absolute", "outside-include"])
def test_a_missing_or_outside_factory_is_refused_when_the_config_loads_without_importing_it(
        capsys, pipelines, bundle_module, reference, expected):
    ref = bundle_module("raise SystemExit('imported at parse time')\ndef build(seed):\n    pass\n"
                        "def helper():\n    pass\n")
    path = pipelines("credit_default", {"factory": reference.format(ref=ref)})

    with pytest.raises(ConfigError) as caught:
        load_config(path)  # what the DAG files do while parsing: the module is read, never run

    assert f"{path}: invalid pipeline config" in str(caught.value)
    assert "model.factory" in str(caught.value) and expected in str(caught.value)
    assert expected in check(capsys)


def refusal_of_factory(pipelines, module: Path) -> str:
    """The ConfigError message of credit_default's config with ``model.factory`` at ``module``'s ``build``."""
    path = pipelines("credit_default", {"factory": f"{module.relative_to(ROOT).as_posix()}:build"})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


def test_model_code_behind_a_symbolic_link_is_refused(pipelines, tmp_path: Path):
    outside = tmp_path / "evil.py"
    outside.write_text("def build(seed):\n    pass\n")
    link = MODELS / f"_test_link_{uuid.uuid4().hex[:8]}.py"
    os.symlink(outside, link)
    try:
        refused = refusal_of_factory(pipelines, link)
    finally:
        link.unlink()

    assert "is a symbolic link: model code must be a plain file of the bundle" in refused


def test_model_code_inside_the_data_root_is_refused_where_upstreams_write(pipelines, monkeypatch):
    data_root = ROOT / "include" / f"_test_data_root_{uuid.uuid4().hex[:8]}"  # a data root set up inside the bundle
    planted = data_root / "landing" / "model.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("def build(seed):\n    pass\n")
    monkeypatch.setenv("ML_HOME", str(data_root))
    try:
        refused = refusal_of_factory(pipelines, planted)
    finally:
        planted.unlink()
        planted.parent.rmdir()
        data_root.rmdir()

    assert "model.factory" in refused
    assert "lies inside the data root" in refused and "reviewed code of the bundle" in refused


def test_estimator_and_factory_are_exclusive_and_one_is_needed(pipelines):
    both = pipelines("credit_default", {"estimator": "random_forest",
                                        "factory": "include/models/diabetes.py:build_model"})
    with pytest.raises(ConfigError, match=r"set exactly one of model\.estimator"):
        load_config(both)
    neither = pipelines("credit_default", {"params": {}})
    with pytest.raises(ConfigError, match=r"set exactly one of model\.estimator"):
        load_config(neither)


def test_a_pipeline_with_broken_model_code_loses_only_its_own_dag(pipelines, tmp_path: Path):
    pipelines("credit_default", {"factory": "include/models/nothing_here.py:build"})
    folder = config_module.PIPELINES_DIR
    (folder / "house_prices.yaml").write_text((ROOT / "include/pipelines/house_prices.yaml").read_text())

    loaded, errors = load_each(folder)

    assert [c.name for c in loaded] == ["house_prices"]
    assert len(errors) == 1 and "credit_default.yaml" in str(errors[0]) and "model.factory" in str(errors[0])


def test_the_runs_first_task_fails_on_model_code_that_config_check_would_refuse(bundle_module):
    ref = bundle_module("def build(seed):\n    return None\n")
    config = PipelineConfig.model_validate({**get_pipeline("credit_default").model_dump(mode="json"),
                                            "model": {"factory": f"{ref}:build"}})

    with pytest.raises(ModelCodeError, match="returned NoneType is not a scikit-learn-compatible estimator"):
        steps.run_step(steps.STEPS[0], config, Path("unused"), "manual", "2026-01-01")


# -- feature code and provenance -------------------------------------------------------------------


def _diabetes_with(model: dict) -> PipelineConfig:
    return PipelineConfig.model_validate({**get_pipeline("diabetes").model_dump(mode="json"), "model": model})


def test_feature_code_runs_inside_the_model_and_its_new_columns_are_features():
    import datetime as dt

    config = get_pipeline("diabetes")
    frame = diabetes(dt.date(2026, 1, 1), 300, seed=3, drifted=False)
    data = split(frame, config)

    model = fit(data.train, config, list(config.features))

    assert list(model.named_steps) == ["features", "preprocess", "model"]
    encoded = model.named_steps["preprocess"].get_feature_names_out()
    assert {"numeric__non_hdl", "numeric__bmi_x_bp", "categorical__age_band_60_plus"} <= set(encoded)
    x = data.holdout[[f.name for f in config.features]]
    zero_bp = x.assign(blood_pressure=0.0)
    missing_bp = x.assign(blood_pressure=float("nan"))
    # the cleaning is in the model: a 0 blood pressure is scored as a missing one
    assert (model.predict(zero_bp) == model.predict(missing_bp)).all()


def test_feature_code_that_drops_rows_or_returns_no_frame_fails_naming_the_key(bundle_module):
    import datetime as dt

    ref = bundle_module("def features(frame):\n    return frame.head(3)\n")
    config = _diabetes_with({"factory": "include/models/diabetes.py:build_model", "feature_code": f"{ref}:features"})
    frame = diabetes(dt.date(2026, 1, 1), 300, seed=3, drifted=False)

    with pytest.raises(ModelCodeError, match=f"model.feature_code {ref}:features returned 3 rows for"):
        fit(frame, config, list(config.features))


def test_metadata_names_the_code_and_a_changed_module_is_reported(bundle_module):
    ref = bundle_module("def features(frame):\n    return frame\n")
    config = _diabetes_with({"factory": "include/models/diabetes.py:build_model", "feature_code": f"{ref}:features"})
    record = code_record(config, "abc123")

    assert record["bundle_version"] == "abc123"
    assert record["factory"]["module"] == "include.models.diabetes"
    assert record["factory"]["function"] == "build_model"
    assert record["feature_code"]["path"] == ref and len(record["feature_code"]["sha256"]) == 64
    assert code_changes({"model_code": record}) == []
    hash_before = config.config_hash()

    (ROOT / ref).write_text("def features(frame):\n    return frame  # edited\n")

    [change] = code_changes({"model_code": record})
    assert change.startswith(f"model.feature_code {ref} changed since this version was trained")
    assert "retrain, or restore the file" in change
    assert config.config_hash() != hash_before  # new code: a rerun of the same day is a new model
    (ROOT / ref).unlink()
    [gone] = code_changes({"model_code": record})
    assert "is gone from the bundle" in gone


def test_a_version_whose_code_changed_since_warns_in_models_show_and_the_scoring_log(
        capsys, caplog, pipelines, bundle_module, run_day):
    import datetime as dt
    import logging

    from include.ml.scoring import score_partition
    from include.ml.simulate import write_scoring_batches

    ref = bundle_module("def features(frame):\n    return frame.assign(bmi_squared=frame['bmi'] ** 2)\n")
    path = pipelines("diabetes", {**raw("diabetes")["model"], "feature_code": f"{ref}:features"})
    config = load_config(path)
    write_batches(config, dt.date(2026, 1, 1), 1)
    assert run_day(config, "2026-01-01")["branch"] == "promote"
    [source] = write_scoring_batches(config, dt.date(2026, 1, 2), 1, partitions=1)["scoring"]
    code, out, _ = run(capsys, "models", "show", "--pipeline", "diabetes", "v0001")
    assert code == 0 and f"feature_code: {ref}:features (sha256 " in out and "warning" not in out

    (ROOT / ref).write_text("def features(frame):\n    return frame.assign(bmi_squared=frame['bmi'] ** 3)\n")

    code, out, _ = run(capsys, "models", "show", "--pipeline", "diabetes", "v0001")
    assert code == 0
    assert f"  warning: model.feature_code {ref} changed since this version was trained" in out
    with caplog.at_level(logging.WARNING, logger="include.ml.scoring"):
        summary = score_partition(config, str(source), "2026-01-02")
    assert summary["scored"] == 40  # a warning, not a failure
    assert any(f"pipeline diabetes, production v0001: model.feature_code {ref} changed" in r.getMessage()
               for r in caplog.records)
