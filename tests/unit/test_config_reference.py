"""The config describes itself: the committed JSON Schema and docs/config.md are what the code generates,
every key is documented with a meaning, and the schema's choices are the estimator registry's."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from include.ml import config_reference
from include.ml.cli import main
from include.ml.config import METRICS, ClassificationPipeline, RegressionPipeline
from include.ml.config_reference import DOCS_PATH, SCHEMA_COMMENT, SCHEMA_PATH
from include.ml.estimators import ESTIMATORS, TASKS
from include.ml.paths import PIPELINES_DIR
from include.ml.user_code import IMPORT_PATH_PATTERN


def model_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of ``model``, walked from the pydantic fields (not from the schema the docs come
    from): ``features[].name`` for list items, ``drift.thresholds.<key>.drifted`` for mapping values."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        for inner, suffix in _nested(field.annotation):
            keys += model_keys(inner, f"{prefix}{name}{suffix}")
    return keys


def _nested(annotation) -> list[tuple[type[BaseModel], str]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, ".")]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:  # a tagged variant of a union (source: files | sql)
        return _nested(args[0])
    if origin in (typing.Union, types.UnionType):
        return [found for arg in args for found in _nested(arg)]
    if origin is list:
        return [(inner, "[]" + suffix) for inner, suffix in _nested(args[0])]
    if origin is dict:
        return [(inner, ".<key>" + suffix) for inner, suffix in _nested(args[1])]
    return []


def shipped_configs() -> list[Path]:
    return sorted(PIPELINES_DIR.glob("*.yaml"))


# -- generated files stay in step with the code ---------------------------------------------------


def test_the_committed_schema_is_what_the_config_model_generates():
    assert SCHEMA_PATH.read_text() == config_reference.schema_text(), (
        "include/pipelines/pipeline.schema.json is stale: run "
        "`python -m include.ml config schema --out include/pipelines/pipeline.schema.json`")


def test_the_committed_docs_are_what_the_config_model_generates():
    assert DOCS_PATH.read_text() == config_reference.markdown_reference(), (
        "docs/config.md is stale: run `python -m include.ml config docs --out docs/config.md`")


def test_the_cli_writes_the_schema_and_the_docs(tmp_path: Path, capsys):
    assert main(["config", "schema", "--out", str(tmp_path / "schema.json")]) == 0
    assert main(["config", "docs", "--out", str(tmp_path / "config.md")]) == 0
    assert main(["config", "docs"]) == 0

    assert (tmp_path / "schema.json").read_text() == SCHEMA_PATH.read_text()
    assert (tmp_path / "config.md").read_text() == DOCS_PATH.read_text()
    assert capsys.readouterr().out == DOCS_PATH.read_text()


# -- every key documented ---------------------------------------------------------------------------


@pytest.mark.parametrize("model", [ClassificationPipeline, RegressionPipeline])
def test_every_key_of_the_config_appears_in_the_docs(model: type[BaseModel]):
    docs = DOCS_PATH.read_text()

    missing = [key for key in model_keys(model) if f"| `{key}` |" not in docs]

    assert missing == []
    assert "`features[].max_missing`" in docs and "`drift.thresholds.<key>.severe`" in docs  # the walk went deep


def test_every_key_has_a_type_a_default_and_a_meaning():
    keys = config_reference.key_references()

    assert [k.path for k in keys if not (k.type and k.default and k.meaning)] == []
    assert {k.path for k in keys} == set(model_keys(ClassificationPipeline))


def test_a_required_key_says_so_and_a_default_is_shown_as_written_in_yaml():
    rows = {k.path: k for k in config_reference.key_references()}

    assert rows["target"].default == "required"
    assert rows["model.test_size"].default == "`0.25`"
    assert rows["model.test_size"].type == "number (> 0, < 1)"
    assert rows["airflow.schedule"].default == '`"@daily"`'
    assert '"psi": {"drifted": 0.1, "severe": 0.25}' in rows["drift.thresholds"].default  # a default_factory's


def test_a_key_whose_choices_depend_on_the_task_lists_them_per_task():
    estimator = {k.path: k for k in config_reference.key_references()}["model.estimator"]

    assert "*classification*: one of" in estimator.type and "*regression*: one of" in estimator.type
    assert "`\"ridge\"`" in estimator.type.partition("*regression*")[2]
    assert "ridge" not in estimator.type.partition("*regression*")[0]


# -- the schema's choices are the registry's --------------------------------------------------------


def branch(task: str) -> tuple[dict, dict]:
    """The committed schema's pipeline definition for ``task``, and all its definitions."""
    schema = json.loads(SCHEMA_PATH.read_text())
    return schema["$defs"][schema["discriminator"]["mapping"][task].rpartition("/")[2]], schema["$defs"]


@pytest.mark.parametrize("task", TASKS)
def test_the_schema_lists_exactly_the_registry_estimators_of_each_task(task: str):
    pipeline, defs = branch(task)
    model = defs[pipeline["properties"]["model"]["$ref"].rpartition("/")[2]]

    choices = model["properties"]["estimator"]["anyOf"]
    assert [option["enum"] for option in choices if "enum" in option] == [list(ESTIMATORS[task])]
    assert [option["pattern"] for option in choices if "pattern" in option] == [IMPORT_PATH_PATTERN]  # or a class


@pytest.mark.parametrize("task", TASKS)
def test_the_schema_lists_exactly_the_metrics_of_each_task(task: str):
    pipeline, _ = branch(task)

    assert pipeline["properties"]["metric"]["enum"] == list(METRICS[task])


def test_every_task_of_the_registry_has_its_metrics_and_its_pipeline_class():
    assert tuple(METRICS) == TASKS
    assert {ClassificationPipeline.model_fields["task"].annotation, RegressionPipeline.model_fields["task"].annotation
            } == {typing.Literal[task] for task in TASKS}


# -- the YAML files point at the schema, and it accepts them -----------------------------------------


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.stem)
def test_each_shipped_config_points_editors_at_the_schema_and_validates_against_it(path: Path):
    text = path.read_text()
    instance = json.loads(json.dumps(yaml.safe_load(text), default=str))  # dates as YAML editors see them

    assert text.splitlines()[0] == SCHEMA_COMMENT
    jsonschema.validate(instance, json.loads(SCHEMA_PATH.read_text()))


def test_the_schema_refuses_an_estimator_of_the_other_task():
    raw = json.loads(json.dumps(yaml.safe_load((PIPELINES_DIR / "credit_default.yaml").read_text()), default=str))
    raw["model"]["estimator"] = "ridge"

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(raw, json.loads(SCHEMA_PATH.read_text()))
