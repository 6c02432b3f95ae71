"""The pipeline config described from its model: the JSON Schema editors check the YAML files with
(``include/pipelines/pipeline.schema.json``) and the Markdown reference of every key (``docs/config.md``).

Both are generated, never edited: ``python -m include.ml config schema --out ...`` and
``python -m include.ml config docs --out ...`` rewrite them, and a test fails when either is stale.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from include.ml.config import METRICS, PIPELINE_CONFIG
from include.ml.estimators import ESTIMATORS, TASKS
from include.ml.paths import PIPELINES_DIR, REPO_ROOT

SCHEMA_PATH = PIPELINES_DIR / "pipeline.schema.json"
DOCS_PATH = REPO_ROOT / "docs" / "config.md"
SCHEMA_COMMENT = "# yaml-language-server: $schema=pipeline.schema.json"  # first line of each pipeline YAML

_TITLE = "Pipeline config"
_DESCRIPTION = ("One pipeline of the ML bundle, a YAML file in include/pipelines named after it: data, features, "
                "model, gates, drift, alerts, registry. The task (classification or regression) decides which "
                "estimators and metrics may be chosen.")


class _FactoryDefaults(GenerateJsonSchema):
    """pydantic leaves out defaults made by a ``default_factory``; a reader wants them (``drift.thresholds``)."""

    def default_schema(self, schema):
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {key: value for key, value in schema.items() if key != "default_factory"}
            schema["default"] = factory()
        return super().default_schema(schema)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pipeline config: one ``oneOf`` branch per task."""
    schema = PIPELINE_CONFIG.json_schema(schema_generator=_FactoryDefaults)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": _TITLE, "description": _DESCRIPTION,
            **schema}


def schema_text() -> str:
    """:func:`json_schema` as the committed file holds it."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


# -- the keys, from the schema ----------------------------------------------------------------


@dataclass(frozen=True)
class KeyReference:
    """One key of the config: its dotted path (``[]`` for a list item, ``<key>`` for a mapping's key),
    the values it takes, its default (or ``required``) and what it means."""

    path: str
    type: str
    default: str
    meaning: str


@dataclass(frozen=True)
class SectionReference:
    """A mapping of keys in the config (``""`` for the top level) and what it is for."""

    path: str
    meaning: str
    keys: tuple[KeyReference, ...]


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _clean(text: str) -> str:
    """A docstring or description as one Markdown paragraph (``x`` in reST is `x` in Markdown)."""
    return " ".join(text.split()).replace("``", "`")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _sentence(text: str) -> str:
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


class _Walker:
    def __init__(self, defs: dict[str, dict]):
        self.defs = defs

    def resolve(self, node: dict) -> dict:
        return self.defs[node["$ref"].rpartition("/")[2]] if "$ref" in node else node

    def child(self, node: dict) -> tuple[dict, str] | None:
        """The mapping of keys below ``node`` and the path suffix to reach it, if it has one."""
        for option in node.get("anyOf", [node]):
            target = self.resolve(option)
            if "properties" in target:
                return target, "."
            if target.get("type") == "array" and "items" in target and "properties" in self.resolve(target["items"]):
                return self.resolve(target["items"]), "[]."
            extra = target.get("additionalProperties")
            if isinstance(extra, dict) and "properties" in self.resolve(extra):
                return self.resolve(extra), ".<key>."
        return None

    def type_of(self, node: dict) -> str:
        if "oneOf" in node:  # variants told apart by their kind (source)
            return "mapping (keys below, by kind)"
        if "anyOf" in node:
            options = sorted(node["anyOf"], key=lambda option: option.get("type") == "null")
            return " or ".join(self.type_of(option) for option in options)
        target = self.resolve(node)
        if "properties" in target:
            return "mapping (keys below)"
        if "const" in target:
            text = _code(target["const"])
        elif "enum" in target:
            text = "one of " + ", ".join(_code(value) for value in target["enum"])
        elif target.get("type") == "array":
            items = target["items"]
            text = "list of mappings (keys below)" if "properties" in self.resolve(items) else \
                f"list of {self.type_of(items)}"
        elif target.get("type") == "object":
            extra = target.get("additionalProperties")
            text = f"mapping of names to {self.type_of(extra)}" if isinstance(extra, dict) else "mapping"
        else:
            text = target.get("format", target.get("type", "any"))
        return text + self.bounds(target)

    @staticmethod
    def bounds(node: dict) -> str:
        marks = [(key, sign) for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                                                ("exclusiveMaximum", "<")) if key in node]
        parts = [f"{sign} {node[key]}" for key, sign in marks]
        if "minItems" in node:
            parts.append(f"at least {node['minItems']} item(s)")
        if "pattern" in node:
            parts.append(f"matching `{node['pattern']}`")
        return f" ({', '.join(parts)})" if parts else ""

    def default_of(self, node: dict, required: bool) -> str:
        if required:
            return "required"
        if "default" not in node:
            return "-"
        if isinstance(node["default"], dict) and "properties" in self.resolve(node):  # a section left out
            return "the defaults below"
        return _code(node["default"])

    def sections(self, node: dict, path: str, meaning: str) -> Iterator[SectionReference]:
        required, keys, below = set(node.get("required", ())), [], []
        for name, prop in node["properties"].items():
            key = f"{path}{name}"
            child = self.child(prop)
            described = prop.get("description") or self.resolve(prop).get("description", "")
            keys.append(KeyReference(key, self.type_of(prop), self.default_of(prop, name in required),
                                     _clean(described)))
            if "oneOf" in prop:  # one section per variant, each with its own keys
                below += [(self.resolve(option), key + ".", self.resolve(option).get("description") or described)
                          for option in prop["oneOf"]]
            elif child is not None:
                target, suffix = child
                below.append((target, key + suffix, target.get("description") or described))
        yield SectionReference(path.removesuffix("."), _clean(meaning), tuple(keys))
        for target, key, text in below:
            yield from self.sections(target, key, text)


def _merged(texts: dict[str, str]) -> str:
    """One cell for what the tasks say: once when they agree, else per task."""
    if len(set(texts.values())) == 1:
        return next(iter(texts.values()))
    return "<br>".join(f"*{task}*: {text}" for task, text in texts.items())


def sections() -> list[SectionReference]:
    """Every mapping of the config and its keys, in file order; a key whose type, default or meaning
    depends on the task (``task``, ``metric``, ``model.estimator``) says so per task."""
    schema = json_schema()
    walker = _Walker(schema["$defs"])
    per_task = {task: list(walker.sections(walker.resolve({"$ref": schema["discriminator"]["mapping"][task]}), "",
                                           _DESCRIPTION)) for task in TASKS}
    first, merged = per_task[TASKS[0]], []
    for index, section in enumerate(first):
        variants = {task: found[index] for task, found in per_task.items()}
        paths = [k.path for k in section.keys]
        if any(v.path != section.path or [k.path for k in v.keys] != paths for v in variants.values()):
            raise ValueError(f"the tasks' configs differ in shape at {section.path or 'the top level'!r}")
        keys = []
        for position, key in enumerate(section.keys):
            versions = {task: v.keys[position] for task, v in variants.items()}
            types = {task: k.type for task, k in versions.items()}
            if key.path == schema["discriminator"]["propertyName"]:  # each task's class takes its own name
                types = {TASKS[0]: "one of " + ", ".join(_code(task) for task in TASKS)}
            keys.append(KeyReference(key.path, _merged(types), _merged({t: k.default for t, k in versions.items()}),
                                     _merged({t: k.meaning for t, k in versions.items()})))
        meaning = section.meaning
        if len({v.meaning for v in variants.values()}) > 1:  # each task's class has its docstring: use the key's
            meaning = next(k.meaning for done in merged for k in done.keys if k.path == section.path)
        merged.append(SectionReference(section.path, meaning, tuple(keys)))
    return merged


def key_references() -> list[KeyReference]:
    """Every key of the config, in file order."""
    return [key for section in sections() for key in section.keys]


# -- Markdown --------------------------------------------------------------------------------


def _estimators_table() -> list[str]:
    lines = ["| Task | `model.estimator` | scikit-learn class | Defaults (before `model.params`) | Seeded by "
             "`model.seed` |", "|---|---|---|---|---|"]
    for task, specs in ESTIMATORS.items():
        for spec in specs.values():
            defaults = ", ".join(f"`{k}={v!r}`" for k, v in spec.defaults.items()) or "-"
            lines.append(f"| {task} | `{spec.name}` | `{spec.import_path}` | {defaults} | "
                         f"{'yes' if spec.seeded else 'no'} |")
    return lines


def _metrics_table() -> list[str]:
    lines = ["| Task | `metric` | Better |", "|---|---|---|"]
    for task, metrics in METRICS.items():
        lines += [f"| {task} | `{name}` | {'higher' if greater else 'lower'} |" for name, greater in metrics.items()]
    return lines


def markdown_reference() -> str:
    """docs/config.md: every key with its type, default and meaning, then the estimators and metrics."""
    lines = [
        "# Pipeline config reference",
        "",
        "<!-- Generated from include/ml/config.py by `python -m include.ml config docs --out docs/config.md`; "
        "do not edit. -->",
        "",
        f"{_DESCRIPTION} Each YAML file in `include/pipelines/` starts with `{SCHEMA_COMMENT}`, so an editor "
        "with the YAML language server checks and completes it against `include/pipelines/pipeline.schema.json` "
        "(`python -m include.ml config schema`). `python -m include.ml config check` validates the files "
        "themselves, scikit-learn parameters included.",
        "",
        "Paths: `a.b` is key `b` of mapping `a`; `features[].name` is `name` of each item of the list "
        "`features`; `drift.thresholds.<key>.drifted` is `drifted` of each entry of the mapping "
        "`drift.thresholds`. Relative file paths are under the data root (`$ML_HOME`, default `<repo>/var`).",
        "",
    ]
    for section in sections():
        lines += [f"## {f'`{section.path}`' if section.path else 'Top level'}", ""]
        if section.path:
            lines += [_sentence(section.meaning), ""]
        lines += ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        lines += [f"| `{key.path}` | {_cell(key.type)} | {_cell(key.default)} | {_cell(key.meaning)} |"
                  for key in section.keys]
        lines.append("")
    lines += ["## Estimators", "",
              "The short names `model.estimator` takes (include/ml/estimators.py). It also takes the import "
              "path of any scikit-learn-compatible class (`sklearn.ensemble.ExtraTreesClassifier`: `fit` and "
              "`predict`, and `predict_proba` for classification), and `model.factory` names a function of the "
              "bundle that returns the model instead ([notebook-to-pipeline.md](notebook-to-pipeline.md)).", "",
              *_estimators_table(), "", "## Metrics", "",
              "The choices of `metric`; for a lower-is-better metric `gates.min_score` is a ceiling.", "",
              *_metrics_table(), ""]
    return "\n".join(lines)
