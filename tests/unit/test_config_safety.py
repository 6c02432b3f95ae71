"""Configs cannot point a pipeline at another's files or out of the data root: shared registries,
landing paths and scoring outputs, '..' and absolute paths, templates that are never filled, and
``--pipeline`` given a path are all refused, naming the files and keys (docs/security.md)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from include.ml import cli
from include.ml import config as config_module
from include.ml.config import ConfigError, SharedPathError, get_pipeline, load_all, load_config, load_each
from include.ml.paths import PIPELINES_DIR


@pytest.fixture
def pipelines(tmp_path: Path, monkeypatch):
    """``pipelines(name, changes) -> Path``: a copy of credit_default.yaml named ``name`` (its paths
    follow the name) with ``changes`` (dotted keys), in a folder that is the only config folder."""
    folder = tmp_path / "pipelines"
    folder.mkdir()
    monkeypatch.setattr(config_module, "PIPELINES_DIR", folder)
    shipped = yaml.safe_load((PIPELINES_DIR / "credit_default.yaml").read_text())

    def write(name: str, changes: dict | None = None) -> Path:
        data = copy.deepcopy(shipped)
        data.update(name=name, registry=f"registry/{name}")
        data["source"]["path"] = f"landing/{name}/{{ds}}.csv"
        for dotted, value in (changes or {}).items():
            *parents, last = dotted.split(".")
            node = data
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def run_check(capsys) -> tuple[int, str, str]:
    code = cli.main(["config", "check"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


# -- two configs sharing a place ------------------------------------------------------------


def test_two_configs_sharing_a_registry_are_refused_by_config_check_naming_both_files(pipelines, capsys):
    first = pipelines("alpha", {"registry": "registry/shared"})
    second = pipelines("beta", {"registry": "registry/shared/"})

    code, out, err = run_check(capsys)

    assert code == 1 and out == ""
    assert f"{first} and {second} share registry" in err
    assert "neither pipeline gets a DAG" in err


def test_load_each_gives_neither_of_two_configs_sharing_a_registry_and_keeps_the_others(pipelines):
    first = pipelines("alpha", {"registry": "registry/shared"})
    second = pipelines("beta", {"registry": "./registry/shared"})
    pipelines("gamma")

    configs, errors = load_each()

    assert [c.name for c in configs] == ["gamma"]
    assert len(errors) == 1 and isinstance(errors[0], SharedPathError)
    assert str(first) in str(errors[0]) and str(second) in str(errors[0])
    assert "registry" in str(errors[0])


def test_a_registry_inside_another_registry_is_shared(pipelines):
    pipelines("alpha", {"registry": "registry/alpha"})
    pipelines("beta", {"registry": "registry/alpha/versions"})

    configs, errors = load_each()

    assert configs == [] and "share registry" in str(errors[0])


def test_two_configs_sharing_a_landing_path_template_are_refused(pipelines):
    first = pipelines("alpha", {"source.path": "landing/common/{ds}.csv"})
    second = pipelines("beta", {"source.path": "landing/common/{ds}.csv"})

    configs, errors = load_each()

    assert configs == []
    assert f"{first} and {second} share source.path" in str(errors[0])
    with pytest.raises(SharedPathError, match=r"share source\.path"):
        load_all()


def test_two_configs_sharing_a_scoring_output_dir_are_refused(pipelines):
    pipelines("alpha", {"scoring.output_dir": "predictions/common/{ds}"})
    pipelines("beta", {"scoring.output_dir": "predictions/common/{ds}"})

    configs, errors = load_each()

    assert configs == [] and "share scoring.output_dir" in str(errors[0])


def test_a_registry_inside_a_folder_an_upstream_writes_is_refused(pipelines):
    path = pipelines("alpha", {"registry": "landing/alpha/registry"})

    configs, errors = load_each()

    assert configs == []
    assert f"{path}: registry" in str(errors[0]) and "source.path folder" in str(errors[0])


def test_get_pipeline_of_a_config_sharing_a_registry_is_refused(pipelines):
    pipelines("alpha", {"registry": "registry/shared"})
    pipelines("beta", {"registry": "registry/shared"})

    with pytest.raises(SharedPathError, match="share registry"):
        get_pipeline("alpha")


def test_the_shipped_configs_share_nothing():
    configs, errors = load_each(PIPELINES_DIR)

    assert errors == [] and len(configs) == len(config_module.config_paths(PIPELINES_DIR))


# -- paths stay inside the data root --------------------------------------------------------


@pytest.mark.parametrize("key", ["registry", "source.path", "scoring.input_dir", "scoring.output_dir",
                                 "performance.labels_dir"])
def test_a_path_with_dot_dot_is_refused_naming_its_key(pipelines, key: str):
    value = {"registry": "../outside", "source.path": "landing/../../etc/{ds}.csv",
             "scoring.input_dir": "../scoring/{ds}", "scoring.output_dir": "predictions/../../{ds}",
             "performance.labels_dir": "labels/../../x"}[key]

    message = error_of(pipelines("alpha", {key: value}))

    assert f"{key} ({value!r}) has a '..' component" in message


def test_dot_dot_is_refused_even_when_outside_paths_are_allowed(pipelines):
    message = error_of(pipelines("alpha", {"registry": "../outside", "allow_outside_data_root": True}))

    assert "registry ('../outside') has a '..' component" in message


def test_an_absolute_path_is_refused_unless_allowed(pipelines, tmp_path: Path):
    elsewhere = str(tmp_path / "elsewhere")

    message = error_of(pipelines("alpha", {"registry": elsewhere}))
    allowed = load_config(pipelines("alpha", {"registry": elsewhere, "allow_outside_data_root": True}))

    assert f"registry ({elsewhere!r}) is absolute, outside the data root" in message
    assert "allow_outside_data_root: true" in message
    assert allowed.registry_path == Path(elsewhere)


@pytest.mark.parametrize("value", ["", ".", "./", "/"], ids=["empty", "dot", "dot slash", "root"])
def test_a_registry_that_names_no_folder_is_refused(pipelines, value: str):
    changes = {"registry": value, "allow_outside_data_root": True}

    assert "names no folder: the registry would be the whole data root" in error_of(pipelines("alpha", changes))


def test_an_empty_registry_key_is_refused(pipelines):
    assert "registry: Input should be a valid string (got None)" in error_of(pipelines("alpha", {"registry": None}))


# -- templates ------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("source.path", "landing/x/{{ds}}.csv", "source.path has an escaped brace"),
    ("source.path", "landing/x/{ds}}.csv", "source.path is not a valid path template"),
    ("source.path", "landing/{pipeline}/{ds}.csv", "source.path may only use the placeholders {ds} and {ds_nodash}; "
                                                   "{pipeline} is not one"),
    ("source.path", "landing/x/{ds!r}.csv", "{ds!r} is not one"),
    ("source.path", "landing/x/{ds:>12}.csv", "{ds:>12} is not one"),
    ("source.path", "landing/x/{}.csv", "{} is not one"),
    ("scoring.input_dir", "scoring/{pipeline}/latest", "scoring.input_dir must contain {ds}"),
    ("scoring.output_dir", "predictions/{pipeline}/{ds_nodash}", "{ds_nodash} is not one"),
    ("scoring.output_dir", "predictions/{{pipeline}}/{ds}", "scoring.output_dir has an escaped brace"),
    ("performance.labels_dir", "labels/{ds}", "performance.labels_dir may only use the placeholders {pipeline}"),
], ids=["escaped ds", "stray brace", "pipeline in source", "conversion", "format spec", "empty field",
        "scoring inbox without date", "scoring output with ds_nodash", "escaped pipeline", "labels with date"])
def test_a_path_template_with_an_unknown_or_unfilled_placeholder_is_refused(pipelines, key, value, expected):
    assert expected in error_of(pipelines("alpha", {key: value}))


# -- --pipeline takes a name ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "/etc/passwd", "alpha/../alpha", "Alpha", "alpha.yaml", ""])
def test_pipeline_accepts_only_a_config_name_and_lists_the_known_ones(pipelines, name: str):
    pipelines("alpha")
    outside = config_module.PIPELINES_DIR.parent / "x.yaml"
    outside.write_text("name: x\n")

    with pytest.raises(ConfigError) as caught:
        get_pipeline(name)

    assert f"no pipeline {name!r}" in str(caught.value) and "known pipelines: ['alpha']" in str(caught.value)


def test_the_cli_refuses_a_pipeline_path_with_exit_1(pipelines, capsys):
    pipelines("alpha")

    code = cli.main(["config", "check", "--pipeline", "../../x"])

    assert code == 1
    assert "no pipeline '../../x'" in capsys.readouterr().err


# -- audit reasons stay on one line ---------------------------------------------------------


def test_a_reason_with_line_breaks_and_control_characters_is_stored_as_one_line():
    from include.ml.registry import one_line

    forged = "ok\r\n2026-01-01T00:00:00  promote  v0001  v0009  admin  forged\x1b[2K\u2028\x85end\t"

    assert one_line(forged) == "ok 2026-01-01T00:00:00  promote  v0001  v0009  admin  forged [2K end"


def test_models_history_shows_one_line_per_entry_even_for_an_old_entry_with_a_newline():
    entries = [["2026-01-01", "promote", None, "v0001", "ci\nbot", "first\r\n2026-01-02  rollback  forged"]]

    table = cli._table(entries, ["time", "action", "from", "to", "actor", "reason"])

    assert len(table.splitlines()) == 2
    assert "ci bot" in table and "first 2026-01-02  rollback  forged" in table
