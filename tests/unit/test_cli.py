"""``python -m include.ml``: every command runs in-process here through ``main([...])``; text for people,
``--json`` for scripts, exit 1 with the reason on stderr when the input or the registry refuses."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from include.ml import alerts, simulate, steps
from include.ml.cli import main
from include.ml.config import ConfigError, load_all, load_config
from include.ml.drift import DriftReport
from include.ml.errors import RegistryError
from include.ml.fitting import split
from include.ml.registry import ModelRegistry

DAY1 = dt.date(2026, 1, 1)

COMMANDS = [
    [],
    ["simulate"],
    ["config"],
    ["config", "check"],
    ["validate"],
    ["drift"],
    ["train"],
    ["models"],
    ["models", "list"],
    ["models", "show"],
    ["models", "promote"],
    ["models", "rollback"],
    ["models", "history"],
    ["runs"],
]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv: str):
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def credit_batch(credit_config) -> Path:
    return simulate.write_batches(credit_config, DAY1, 1, rows=800)[0]


@pytest.fixture
def broken_batch(tmp_path: Path, credit_frame: pd.DataFrame) -> Path:
    """20 utilization values above the maximum (2.5% of rows: an error) and one unknown home_ownership (a warning)."""
    credit_frame.loc[3:22, "utilization"] = 1.7
    credit_frame.loc[30, "home_ownership"] = "castle"
    path = tmp_path / "broken.csv"
    credit_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def odd_batch(tmp_path: Path, credit_frame: pd.DataFrame) -> Path:
    """A batch that passes with warnings: two ages above the maximum and an income far beyond any seen."""
    credit_frame.loc[[5, 6], "age"] = 121.0
    credit_frame.loc[9, "income"] = 9_000_000.0
    path = tmp_path / "odd.csv"
    credit_frame.to_csv(path, index=False)
    return path


# -- usage ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "(none)")
def test_every_command_explains_itself_with_help(capsys, command: list[str]):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m include.ml {' '.join(command)}".rstrip())


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "required: command" in capsys.readouterr().err


def test_a_malformed_date_is_a_usage_error_that_says_the_format(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--start", "01/02/2026"])

    assert exited.value.code == 2
    assert "'01/02/2026' is not a date in YYYY-MM-DD form" in capsys.readouterr().err


def test_an_unknown_pipeline_exits_1_listing_the_known_ones(capsys):
    code, _, err = run(capsys, "models", "list", "--pipeline", "fraud")

    assert code == 1
    assert err.startswith("error: no pipeline 'fraud'")
    assert "credit_default" in err


# -- simulate -------------------------------------------------------------------------------


def test_simulate_writes_batches_for_every_pipeline(capsys, ml_home: Path):
    code, out, _ = run(capsys, "simulate", "--start", "2026-01-01", "--days", "2", "--rows", "30")

    assert code == 0
    for config in load_all():
        assert f"{config.name}: 2 batch(es) in {ml_home / 'landing' / config.name}" in out
    assert len(list((ml_home / "landing/house_prices").glob("*.parquet"))) == 2


def test_simulate_json_lists_the_written_files(capsys, ml_home: Path):
    written = run_json(capsys, "simulate", "--pipeline", "credit_default", "--start", "2026-01-01",
                       "--days", "2", "--rows", "30", "--drift-from", "2026-01-02")

    assert list(written) == ["credit_default"]
    files = [Path(p) for p in written["credit_default"]]
    assert [f.name for f in files] == ["2026-01-01.csv", "2026-01-02.csv"]
    assert "bnpl_partner" in set(pd.read_csv(files[1])["channel"])


def test_simulate_tells_when_drift_is_on(capsys):
    _, out, _ = run(capsys, "simulate", "--pipeline", "credit_default", "--start", "2026-01-01", "--rows", "30",
                    "--drift-from", "2026-01-01")

    assert "drift switched on from 2026-01-01" in out


def test_simulate_zero_days_is_a_usage_error_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--pipeline", "credit_default", "--start", "2026-01-01", "--days", "0"])

    assert exited.value.code == 2
    assert "'0' is not a whole number of at least 1" in capsys.readouterr().err


# -- config check ---------------------------------------------------------------------------


def test_config_check_reports_each_pipeline_ok(capsys):
    code, out, _ = run(capsys, "config", "check")

    assert code == 0
    assert out.splitlines() == [
        "credit_default: ok (classification, hist_gradient_boosting, roc_auc)",
        "diabetes: ok (regression, include/models/diabetes.py:build_model, r2)",
        "digits: ok (classification, logistic_regression, accuracy)",
        "house_prices: ok (regression, random_forest, rmse)",
    ]


def test_config_check_json_describes_the_pipelines(capsys, ml_home: Path):
    data = run_json(capsys, "config", "check", "--pipeline", "house_prices")

    assert data == {"house_prices": {"task": "regression", "target": "price", "estimator": "random_forest",
                                     "metric": "rmse", "dag_id": "ml_training__house_prices",
                                     "registry": str(ml_home / "registry/house_prices"), "warnings": []}}


def test_config_check_of_a_broken_config_exits_1_saying_where(capsys, tmp_path: Path, monkeypatch):
    from include.ml import config as config_module

    text = (config_module.PIPELINES_DIR / "credit_default.yaml").read_text().replace("metric: roc_auc", "metric: rmse")
    (tmp_path / "credit_default.yaml").write_text(text)
    monkeypatch.setattr(config_module, "PIPELINES_DIR", tmp_path)

    code, out, err = run(capsys, "config", "check")

    assert code == 1
    assert out == ""
    assert err.startswith(f"error: {tmp_path / 'credit_default.yaml'}: invalid pipeline config")
    assert "metric 'rmse' does not fit task 'classification'" in err


def _broken_copy(tmp_path: Path, monkeypatch, pipeline: str, old: str, new: str) -> Path:
    """``pipeline``'s shipped config with ``old`` replaced by ``new``, as the only config there is."""
    from include.ml import config as config_module

    text = (config_module.PIPELINES_DIR / f"{pipeline}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{pipeline}.yaml"
    path.write_text(text.replace(old, new))
    monkeypatch.setattr(config_module, "PIPELINES_DIR", tmp_path)
    return path


@pytest.mark.parametrize(("pipeline", "old", "new", "expected"), [
    ("credit_default", "min_batch_rows: 200", "min_batch_rows: 900",
     "drift.min_batch_rows (900) is above validation.min_rows (500): a batch could pass validation and then hold "
     "every run as insufficient data"),
    ("credit_default", "min_score: 0.70", "min_score: 1.5",
     "gates.min_score (1.5) is above the highest roc_auc there is (1): no model can reach it"),
    ("house_prices", "min_score: 120000", "min_score: -1",
     "gates.min_score (-1) is below the lowest rmse there is (0)"),
], ids=["drift minimum above validation minimum", "roc_auc gate above 1", "rmse ceiling below 0"])
def test_config_check_refuses_contradictory_settings_naming_the_file_and_keys(
        capsys, tmp_path: Path, monkeypatch, pipeline: str, old: str, new: str, expected: str):
    path = _broken_copy(tmp_path, monkeypatch, pipeline, old, new)

    code, out, err = run(capsys, "config", "check")

    assert code == 1 and out == ""
    assert err.startswith(f"error: {path}: invalid pipeline config")
    assert f"  - {expected}" in err


def test_an_unset_drift_minimum_follows_a_lower_validation_minimum(tmp_path: Path, monkeypatch):
    path = _broken_copy(tmp_path, monkeypatch, "house_prices", "  min_rows: 200", "  min_rows: 50")

    config = load_config(path)

    assert (config.validation.min_rows, config.drift.min_batch_rows) == (50, 50)


def test_config_check_warns_when_id_columns_is_empty_and_still_exits_0(capsys, tmp_path: Path, monkeypatch):
    path = _broken_copy(tmp_path, monkeypatch, "house_prices", "id_columns: [sale_id]", "id_columns: []")

    code, out, _ = run(capsys, "config", "check")

    assert code == 0
    assert out.splitlines()[0] == "house_prices: ok (regression, random_forest, rmse)"
    assert out.splitlines()[1].startswith(f"  warning: {path}: id_columns is empty: predictions and rejects carry "
                                          "only the input's row number ('row')")


# -- validate -------------------------------------------------------------------------------


def test_validate_passes_a_good_batch(capsys, credit_batch: Path):
    code, out, _ = run(capsys, "validate", "--pipeline", "credit_default", str(credit_batch))

    assert code == 0
    assert out.strip() == f"{credit_batch}: passed (800 rows, 15 features from config); 0 warning(s)"


def test_validate_json_of_a_good_batch(capsys, credit_batch: Path):
    assert run_json(capsys, "validate", "--pipeline", "credit_default", str(credit_batch)) == {
        "passed": True, "rows": 800, "features": 15, "feature_origin": "config", "reference_version": None,
        "warnings": []}


def test_validate_passes_a_batch_with_a_few_odd_values_and_lists_the_warnings(capsys, odd_batch: Path):
    code, out, err = run(capsys, "validate", "--pipeline", "credit_default", str(odd_batch))

    assert code == 0, err
    assert out.splitlines() == [
        f"{odd_batch}: passed (800 rows, 15 features from config); 1 warning(s)",
        "  - column 'age': 2 values above maximum 120 (first rows: 5, 6; values: 121.0, 121.0) "
        "[0.25% of rows; the limit is 1.00%]",
    ]


def test_validate_checks_against_the_production_model_training_data(capsys, in_credit_history, odd_batch: Path):
    data = run_json(capsys, "validate", "--pipeline", "credit_default", str(odd_batch))
    _, out, _ = run(capsys, "validate", "--pipeline", "credit_default", str(odd_batch))

    assert data["reference_version"] == "v0002"
    warned = {(w["column"], w["rule"].split(" (")[0]) for w in data["warnings"]}
    assert {("age", "above maximum 120"), ("income", "above the training range")} <= warned
    assert all(w["severity"] == "warning" for w in data["warnings"])
    assert out.startswith(f"{odd_batch}: passed (800 rows, 15 features from config, training ranges of v0002); ")
    assert "\n  - column 'income': 1 values above the training range (max " in out


def test_validate_fails_a_bad_batch_with_exit_1_and_the_reasons_on_stderr(capsys, broken_batch: Path):
    code, out, err = run(capsys, "validate", "--pipeline", "credit_default", str(broken_batch))

    assert code == 1
    assert out == ""
    assert "(1 problem(s))" in err
    assert "column 'utilization': 20 values above maximum 1 (first rows: 3, 4, 5, 6, 7" in err
    assert "warnings:\n  - column 'home_ownership': 1 values not among allowed levels" in err


def test_validate_json_of_a_bad_batch_lists_the_errors_then_the_warnings(capsys, broken_batch: Path):
    code, out, _ = run(capsys, "validate", "--pipeline", "credit_default", str(broken_batch), "--json")

    assert code == 1
    data = json.loads(out)
    assert data["passed"] is False
    assert [(f["column"], f["severity"], f["rows"][:2]) for f in data["failures"]] == [
        ("utilization", "error", [3, 4]), ("home_ownership", "warning", [30])]


def test_validate_does_not_quarantine_or_touch_the_registry(capsys, broken_batch: Path, ml_home: Path):
    run(capsys, "validate", "--pipeline", "credit_default", str(broken_batch))

    assert not (ml_home / "quarantine").exists()
    assert not (ml_home / "registry").exists()


def test_validate_of_a_missing_file_exits_1(capsys, tmp_path: Path):
    code, _, err = run(capsys, "validate", "--pipeline", "credit_default", str(tmp_path / "nope.csv"))

    assert code == 1
    assert f"batch file {tmp_path / 'nope.csv'} does not exist" in err


def test_validate_takes_the_file_as_an_argument_not_input(capsys, credit_batch: Path):
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--pipeline", "credit_default", "--input", str(credit_batch)])

    assert exited.value.code == 2
    assert "--input" in capsys.readouterr().err


def test_validate_of_an_inferred_pipeline_does_not_save_a_feature_spec(capsys, house_config):
    (batch,) = simulate.write_batches(house_config, DAY1, 1, rows=300)

    code, out, _ = run(capsys, "validate", "--pipeline", "house_prices", str(batch))

    assert code == 0
    assert "10 features from inferred" in out
    assert not (house_config.registry_layout.feature_spec).exists()


# -- train ----------------------------------------------------------------------------------


def test_train_fits_a_candidate_and_registers_nothing(capsys, credit_config, credit_batch: Path, tmp_path: Path):
    code, out, _ = run(capsys, "train", "--pipeline", "credit_default", "--input", str(credit_batch),
                       "--out", str(tmp_path / "ws"))

    assert code == 0
    train_rows = len(split(pd.read_csv(credit_batch), credit_config).train)  # the rows the hash leaves to train
    assert out.startswith(f"candidate trained in {tmp_path / 'ws'} ({train_rows} rows,")
    assert "roc_auc: 0." in out and "(production -: –); gates passed" in out  # no score prints as everywhere
    assert (tmp_path / "ws" / "candidate.joblib").exists()
    registry = steps.registry_for(credit_config)
    assert (registry.versions(), registry.production()) == ([], None)


def test_train_json_reports_training_and_evaluation(capsys, credit_config, credit_batch: Path, tmp_path: Path):
    data = run_json(capsys, "train", "--pipeline", "credit_default", "--input", str(credit_batch),
                    "--out", str(tmp_path / "ws"), "--ds", "2026-01-01")

    assert data["workspace"] == str(tmp_path / "ws")
    assert data["training"]["train_rows"] == len(split(pd.read_csv(credit_batch), credit_config).train)
    assert data["evaluation"]["metric"] == "roc_auc"
    assert data["evaluation"]["gates"]["passed"] is True
    assert json.loads((tmp_path / "ws" / "extract.json").read_text())["ds"] == "2026-01-01"


def test_train_without_out_uses_a_new_workspace_under_the_data_root(capsys, credit_batch: Path, ml_home: Path):
    data = run_json(capsys, "train", "--pipeline", "credit_default", "--input", str(credit_batch))

    assert Path(data["workspace"]).parent == ml_home / "runs/credit_default"
    assert Path(data["workspace"]).name.startswith("cli_")


def test_train_on_a_bad_batch_exits_1(capsys, broken_batch: Path, tmp_path: Path):
    code, _, err = run(capsys, "train", "--pipeline", "credit_default", "--input", str(broken_batch),
                       "--out", str(tmp_path / "ws"))

    assert code == 1
    assert "column 'utilization'" in err
    assert not (tmp_path / "ws" / "candidate.joblib").exists()


def test_train_of_an_inferred_pipeline_leaves_the_registry_untouched(capsys, house_config, tmp_path: Path):
    (batch,) = simulate.write_batches(house_config, DAY1, 1, rows=300)

    code, _, _ = run(capsys, "train", "--pipeline", "house_prices", "--input", str(batch),
                     "--out", str(tmp_path / "ws"))

    assert code == 0
    assert not house_config.registry_path.exists()


# -- drift, models, runs (on the shared three-run history) ----------------------------------


def test_drift_of_a_drifted_batch_against_production(capsys, in_credit_history):
    report = run_json(capsys, "drift", "--pipeline", "credit_default", "--current", str(in_credit_history.landing[2]))
    code, out, _ = run(capsys, "drift", "--pipeline", "credit_default", "--current", str(in_credit_history.landing[2]))

    assert code == 0
    drifted, severe, reasons = report["drifted_features"], report["severe_features"], report["reasons"]
    lines = out.splitlines()
    assert lines[0] == (f"drift verdict: drift (against v0002; {len(drifted)} of 15 features drifted, "
                        f"{len(severe)} severely)")
    assert lines[1:1 + len(reasons)] == [f"  {r}" for r in reasons]
    critical = next(line for line in lines if line.startswith("  critical feature(s) drifted: "))
    assert set(critical.split(": ", 1)[1].split(", ")) == {"income", "utilization"}
    header, *rows = lines[1 + len(reasons):]
    assert header.split() == ["feature", "type", "level", "gating", "statistics"]
    assert rows[0].split()[:3] == ["channel", "categorical", "severe"]
    assert [g.split("=")[0] for g in rows[0].split(None, 3)[3].split(", ")] == [
        "jensen_shannon", "unseen_share", "missing_rate_change"]
    assert [r.split()[0] for r in rows[:len(drifted)]] == drifted  # worst first
    levels = [r.split()[2] for r in rows]
    assert levels == sorted(levels, key=["severe", "drifted", "none", "insufficient_data"].index)
    assert levels.count("severe") == len(severe)


def test_drift_json_is_the_full_report_against_a_chosen_version(capsys, in_credit_history):
    data = run_json(capsys, "drift", "--pipeline", "credit_default", "--current", str(in_credit_history.landing[1]),
                    "--reference", "v0001")

    report = DriftReport.from_dict(data)
    assert report.reference_version == "v0001"
    assert report.verdict == "none"
    assert set(report.features) == {f.name for f in in_credit_history.config.features}
    assert report.settings["critical_features"] == ["income", "utilization"]


def _sensor_file(path: Path, seed: int, shift: float = 0.0, rows: int = 600) -> Path:
    """A file of a schema no pipeline has: a reading id, a temperature, a city, a day."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"reading_id": [f"r{seed}-{i}" for i in range(rows)],
                          "temperature": rng.normal(20 + shift, 3, rows),
                          "city": rng.choice(["oslo", "lima", "pune"], rows),
                          "day": pd.date_range("2026-01-01", periods=rows, freq="h")})
    frame.to_parquet(path, index=False) if path.suffix == ".parquet" else frame.to_csv(path, index=False)
    return path


def test_drift_of_two_files_of_another_schema_compares_their_common_columns(capsys, tmp_path: Path):
    reference = _sensor_file(tmp_path / "a.parquet", seed=1)
    same = _sensor_file(tmp_path / "b.csv", seed=2)
    warmer = _sensor_file(tmp_path / "c.parquet", seed=3, shift=6.0)

    unchanged = run_json(capsys, "drift", "--reference", str(reference), "--current", str(same))
    changed = run_json(capsys, "drift", "--reference", str(reference), "--current", str(warmer))
    code, out, _ = run(capsys, "drift", "--reference", str(reference), "--current", str(warmer))

    assert {n: f["type"] for n, f in unchanged["features"].items()} == {"temperature": "numeric",
                                                                        "city": "categorical"}
    assert unchanged["not_compared"] == {"reading_id": "one value per row (an id)", "day": "a timestamp"}
    assert unchanged["verdict"] == "none"
    assert changed["verdict"] == "drift" and changed["drifted_features"] == ["temperature"]
    assert code == 0 and out.startswith(f"drift verdict: drift (against {reference}; 1 of 2 features drifted")


def test_drift_of_two_files_without_a_common_column_is_a_clear_error(capsys, tmp_path: Path):
    reference = _sensor_file(tmp_path / "a.parquet", seed=1)
    other = tmp_path / "other.csv"
    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).to_csv(other, index=False)

    code, out, err = run(capsys, "drift", "--reference", str(reference), "--current", str(other))

    assert code == 1 and out == ""
    assert err.startswith("error: the two files have no column in common (reference: ['reading_id', "
                          "'temperature', 'city', 'day']; current: ['x', 'y'])")


def test_drift_of_another_schema_against_a_pipeline_names_the_missing_columns(capsys, tmp_path: Path):
    reference = _sensor_file(tmp_path / "a.parquet", seed=1)

    code, _, err = run(capsys, "drift", "--pipeline", "credit_default", "--reference", str(reference),
                       "--current", str(reference))

    assert code == 1
    assert err.startswith(f"error: reference file {reference} lacks feature column(s) ['age', ")
    assert "Traceback" not in err


def test_drift_against_a_reference_file_profiles_it_on_the_fly(capsys, in_credit_history):
    first, second, drifted = (str(p) for p in in_credit_history.landing)

    same = run_json(capsys, "drift", "--pipeline", "credit_default", "--current", second, "--reference", first)
    changed = run_json(capsys, "drift", "--pipeline", "credit_default", "--current", drifted, "--reference", first)

    assert (same["verdict"], same["reference_version"]) == ("none", first)
    assert same["reference_rows"] == in_credit_history.rows
    assert changed["verdict"] == "drift"
    assert changed["drifted_features"][0] == "channel"


def test_drift_against_a_file_needs_no_registry(capsys, credit_config):
    landed = simulate.write_batches(credit_config, DAY1, 2, rows=800)

    code, out, _ = run(capsys, "drift", "--pipeline", "credit_default", "--current", str(landed[1]),
                       "--reference", str(landed[0]))

    assert code == 0
    assert out.startswith(f"drift verdict: none (against {landed[0]}; 0 of 15 features drifted, 0 severely)")
    assert not credit_config.registry_path.exists()


def test_drift_without_a_production_model_exits_1_saying_what_to_pass(capsys, credit_batch: Path):
    code, _, err = run(capsys, "drift", "--pipeline", "credit_default", "--current", str(credit_batch))

    assert code == 1
    assert "has no production model yet; pass --reference VERSION or --reference FILE" in err


@pytest.mark.parametrize(("reference", "expected"), [("v0009", "version v0009 does not exist"),
                                                      ("nowhere.csv", "batch file nowhere.csv does not exist")])
def test_drift_against_an_unknown_version_or_file_exits_1(capsys, in_credit_history, reference: str, expected: str):
    code, _, err = run(capsys, "drift", "--pipeline", "credit_default", "--current", str(in_credit_history.landing[0]),
                       "--reference", reference)

    assert code == 1
    assert expected in err


def test_drift_against_a_profile_of_the_old_format_exits_1_saying_so(capsys, credit_config, credit_batch, tmp_path):
    registry = steps.registry_for(credit_config)
    (tmp_path / "m.joblib").write_bytes(b"model")
    registry.register(tmp_path / "m.joblib", {"run_id": "old"}, {"bins": 10, "rows": 1, "numeric": {},
                                                                  "categorical": {}})
    registry.set_production("v0001", expected=None, actor="old", reason="before the upgrade")

    code, out, err = run(capsys, "drift", "--pipeline", "credit_default", "--current", str(credit_batch))

    assert (code, out) == (1, "")
    assert "error: reference profile format 1 is not the supported 2" in err


def test_drift_of_a_batch_missing_a_feature_exits_1_naming_it(capsys, in_credit_history, tmp_path: Path):
    path = tmp_path / "no_income.csv"
    pd.read_csv(in_credit_history.landing[2]).drop(columns=["income"]).to_csv(path, index=False)

    code, _, err = run(capsys, "drift", "--pipeline", "credit_default", "--current", str(path))

    assert code == 1
    assert f"{path} lacks feature column(s) ['income'] that the reference v0002 has" in err


def test_drift_of_a_batch_with_integer_category_codes_matches_the_stored_profile_of_the_same_rows(
    capsys, credit_frame, tmp_path: Path, monkeypatch
):
    from include.ml import config as config_module
    from include.ml.drift import ReferenceProfile
    from include.ml.validate import validate_frame

    text = (config_module.PIPELINES_DIR / "credit_default.yaml").read_text().replace(
        "  - {name: education,", "  - {name: segment, type: categorical}\n  - {name: education,")
    (tmp_path / "credit_default.yaml").write_text(text)
    monkeypatch.setattr(config_module, "PIPELINES_DIR", tmp_path)
    config = config_module.get_pipeline("credit_default")
    credit_frame["segment"] = [1 + i % 3 for i in range(len(credit_frame))]
    credit_frame.loc[0, "segment"] = None  # read back from CSV as 1.0, 2.0, 3.0 and NaN
    path = tmp_path / "batch.csv"
    credit_frame.to_csv(path, index=False)
    validated = validate_frame(pd.read_csv(path), config, config.features)
    registry = steps.registry_for(config)
    (tmp_path / "m.joblib").write_bytes(b"model")
    registry.register(tmp_path / "m.joblib", {"run_id": "r1"},
                      ReferenceProfile(bins=10).fit(validated, config.features).to_dict())
    registry.set_production("v0001", expected=None, actor="r1", reason="first")

    report = run_json(capsys, "drift", "--pipeline", "credit_default", "--current", str(path))

    assert report["features"]["segment"]["unseen_levels"] == []
    assert report["verdict"] == "none"


def test_drift_needs_the_current_batch(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["drift", "--pipeline", "credit_default"])

    assert exited.value.code == 2
    assert "--current" in capsys.readouterr().err


def test_models_list_marks_production(capsys, in_credit_history):
    code, out, _ = run(capsys, "models", "list", "--pipeline", "credit_default")

    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["version", "decision", "logical", "date", "roc_auc", "registered", "at"]
    assert [r.startswith("*") for r in rows] == [False, True, False]
    assert [r.lstrip("* ").split()[:3] for r in rows] == [
        ["v0001", "promoted", "2026-01-01"],
        ["v0002", "promoted", "2026-01-02"],
        ["v0003", "held", "2026-01-03"],
    ]


def test_models_list_json(capsys, in_credit_history):
    rows = run_json(capsys, "models", "list", "--pipeline", "credit_default")

    assert [(r["version"], r["production"], r["decision"]) for r in rows] == [
        ("v0001", False, "promoted"), ("v0002", True, "promoted"), ("v0003", False, "held")]
    assert all(0.5 < r["roc_auc"] < 1 for r in rows)


def test_models_list_of_an_empty_registry_says_so(capsys, ml_home: Path):
    code, out, _ = run(capsys, "models", "list", "--pipeline", "credit_default")

    assert code == 0
    assert out.strip() == f"no versions registered yet in {ml_home / 'registry/credit_default'}"


def test_models_show_describes_one_version(capsys, in_credit_history):
    code, out, _ = run(capsys, "models", "show", "--pipeline", "credit_default", "v0003")

    assert code == 0
    assert out.startswith("v0003 of credit_default (held)")
    assert "champion: v0002" in out
    assert f"data: {in_credit_history.landing[2]} ({in_credit_history.rows} rows" in out


def test_models_show_json_is_the_metadata(capsys, in_credit_history):
    meta = run_json(capsys, "models", "show", "--pipeline", "credit_default", "v0002")

    assert meta["version"] == "v0002"
    assert meta["is_production"] is True
    assert meta["artifact"]["sha256"] == steps.registry_for(in_credit_history.config).metadata("v0002")[
        "artifact"]["sha256"]


@pytest.mark.parametrize(("version", "expected"), [("v0009", "version v0009 does not exist"),
                                                    ("../../etc/passwd", "is not a version id")])
def test_models_show_of_a_bad_version_exits_1(capsys, in_credit_history, version: str, expected: str):
    code, out, err = run(capsys, "models", "show", "--pipeline", "credit_default", version)

    assert code == 1
    assert out == ""
    assert expected in err


def test_runs_lists_the_recent_runs(capsys, in_credit_history):
    code, out, _ = run(capsys, "runs", "--pipeline", "credit_default")

    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["logical", "date", "trained", "roc_auc", "drift", "branch", "production", "error"]
    assert [r.split()[:2] + r.split()[3:] for r in rows] == [
        ["2026-01-01", "v0001", "no_reference", "promote", "v0001"],
        ["2026-01-02", "v0002", "none", "promote", "v0002"],
        ["2026-01-03", "v0003", "drift", "hold", "v0002"],
    ]


def test_runs_json_with_last(capsys, in_credit_history):
    runs = run_json(capsys, "runs", "--pipeline", "credit_default", "--last", "2")

    assert [(r["logical_date"], r["branch"]) for r in runs] == [("2026-01-02", "promote"), ("2026-01-03", "hold")]


def test_runs_before_any_run_says_so(capsys):
    code, out, _ = run(capsys, "runs", "--pipeline", "house_prices")

    assert code == 0
    assert out.strip() == "no runs recorded yet for house_prices"


def test_runs_last_zero_lists_no_runs(capsys, in_credit_history):
    assert run_json(capsys, "runs", "--pipeline", "credit_default", "--last", "0") == []


# -- promote, rollback, history (each on a registry of its own) -----------------------------


@pytest.fixture
def three_versions(credit_config, tmp_path: Path) -> ModelRegistry:
    """credit_default's registry with v0001..v0003 registered and v0001 in production."""
    registry = steps.registry_for(credit_config)
    (tmp_path / "m.joblib").write_bytes(b"model")
    for i in range(3):
        registry.register(tmp_path / "m.joblib", {"run_id": f"run-{i}"}, {})
    registry.set_production("v0001", expected=None, actor="run-0", reason="first model")
    return registry


def test_promote_points_production_at_a_version_and_audits_who_and_why(capsys, three_versions):
    code, out, _ = run(capsys, "models", "promote", "--pipeline", "credit_default", "v0003",
                       "--reason", "held for drift; drift is expected")

    assert code == 0
    assert out.strip() == "production: v0001 -> v0003 (held for drift; drift is expected)"
    assert three_versions.production() == "v0003"
    last = three_versions.audit()[-1]
    assert (last["action"], last["from"], last["to"]) == ("promote", "v0001", "v0003")
    assert last["actor"].startswith("cli:")


def test_promote_json_is_the_audit_entry(capsys, three_versions):
    entry = run_json(capsys, "models", "promote", "--pipeline", "credit_default", "v0002", "--reason", "better")

    assert entry == three_versions.audit()[-1]


def test_promote_without_a_reason_is_a_usage_error(capsys, three_versions):
    with pytest.raises(SystemExit) as exited:
        main(["models", "promote", "--pipeline", "credit_default", "v0002"])

    assert exited.value.code == 2
    assert "--reason" in capsys.readouterr().err
    assert three_versions.production() == "v0001"


@pytest.mark.parametrize("command", [["models", "promote", "v0002", "--reason", "better"],
                                     ["models", "rollback", "--reason", "v0001 misbehaves"]],
                         ids=["promote", "rollback"])
def test_a_registry_change_without_pipeline_is_a_usage_error_naming_the_option_and_the_pipelines(
    capsys, three_versions, command: list[str]
):
    with pytest.raises(SystemExit) as exited:
        main(command)

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --pipeline" in err
    assert f"known pipelines: {', '.join(c.name for c in load_all())}" in err
    assert three_versions.production() == "v0001"
    assert len(three_versions.audit()) == 1


def test_a_registry_change_needs_pipeline_even_when_only_one_is_configured(capsys, tmp_path: Path, monkeypatch):
    from include.ml import config as config_module

    (tmp_path / "credit_default.yaml").write_text((config_module.PIPELINES_DIR / "credit_default.yaml").read_text())
    monkeypatch.setattr(config_module, "PIPELINES_DIR", tmp_path)

    with pytest.raises(SystemExit) as exited:
        main(["models", "rollback", "--reason", "bad"])

    assert exited.value.code == 2
    assert "known pipelines: credit_default" in capsys.readouterr().err


def test_a_read_only_command_needs_pipeline_when_several_are_configured(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["models", "list"])

    assert exited.value.code == 2
    assert f"--pipeline; known pipelines: {', '.join(c.name for c in load_all())}" in capsys.readouterr().err


def test_a_read_only_command_defaults_to_the_only_configured_pipeline(capsys, tmp_path: Path, monkeypatch):
    from include.ml import config as config_module

    (tmp_path / "house_prices.yaml").write_text((config_module.PIPELINES_DIR / "house_prices.yaml").read_text())
    monkeypatch.setattr(config_module, "PIPELINES_DIR", tmp_path)

    code, out, _ = run(capsys, "runs")

    assert code == 0
    assert out.strip() == "no runs recorded yet for house_prices"


@pytest.mark.parametrize(("version", "reason", "expected"), [
    ("v0009", "typo", "version v0009 does not exist"),
    ("../v0001", "sneaky", "is not a version id"),
    ("v0002", "  ", "a reason is required"),
])
def test_a_refused_promote_exits_1_and_changes_nothing(capsys, three_versions, version, reason, expected):
    code, _, err = run(capsys, "models", "promote", "--pipeline", "credit_default", version, "--reason", reason)

    assert code == 1
    assert expected in err
    assert three_versions.production() == "v0001"
    assert len(three_versions.audit()) == 1


def test_rollback_returns_to_the_version_production_replaced(capsys, three_versions):
    three_versions.set_production("v0002", expected="v0001", actor="run-1", reason="better")

    code, out, _ = run(capsys, "models", "rollback", "--pipeline", "credit_default", "--reason", "v0002 misbehaves")

    assert code == 0
    assert out.strip() == "rolled back: production v0002 -> v0001 (v0002 misbehaves)"
    assert three_versions.production() == "v0001"
    assert three_versions.audit()[-1]["action"] == "rollback"


def test_rollback_to_a_named_version(capsys, three_versions):
    entry = run_json(capsys, "models", "rollback", "--pipeline", "credit_default", "--to", "v0003", "--reason", "pin")

    assert (entry["from"], entry["to"], entry["action"]) == ("v0001", "v0003", "rollback")
    assert three_versions.production() == "v0003"


def test_rollback_of_the_first_model_has_nowhere_to_go(capsys, three_versions):
    code, _, err = run(capsys, "models", "rollback", "--pipeline", "credit_default", "--reason", "bad")

    assert code == 1
    assert "production is v0001 and has no earlier version to roll back to; name one explicitly" in err
    assert three_versions.production() == "v0001"


def test_rollback_before_any_production_model_exits_1(capsys):
    code, _, err = run(capsys, "models", "rollback", "--pipeline", "credit_default", "--reason", "bad")

    assert code == 1
    assert "production is empty" in err


def test_two_rollbacks_walk_back_through_the_promotions(capsys, three_versions):
    three_versions.set_production("v0002", expected="v0001", actor="run-1", reason="better")
    three_versions.set_production("v0003", expected="v0002", actor="run-2", reason="better")

    run(capsys, "models", "rollback", "--pipeline", "credit_default", "--reason", "v0003 misbehaves")
    run(capsys, "models", "rollback", "--pipeline", "credit_default", "--reason", "v0002 misbehaves too")

    assert three_versions.production() == "v0001"


def test_history_lists_every_production_switch(capsys, three_versions):
    three_versions.set_production("v0002", expected="v0001", actor="run-1", reason="better")

    code, out, _ = run(capsys, "models", "history", "--pipeline", "credit_default")

    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["time", "action", "from", "to", "actor", "reason"]
    assert [r.split()[1:] for r in rows] == [
        ["promote", "v0001", "run-0", "first", "model"],
        ["promote", "v0001", "v0002", "run-1", "better"],
    ]


def test_history_json_is_the_audit_log(capsys, three_versions):
    assert run_json(capsys, "models", "history", "--pipeline", "credit_default") == three_versions.audit()


def test_history_before_any_switch_says_so(capsys):
    code, out, _ = run(capsys, "models", "history", "--pipeline", "credit_default")

    assert code == 0
    assert out.strip() == "production has never been switched"


# -- commands named in messages exist -------------------------------------------------------


def _config_error_text(tmp_path: Path) -> str:
    (tmp_path / "credit_default.yaml").write_text("name: credit_default\ncolour: blue\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "credit_default.yaml")
    return str(caught.value)


def _registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    (tmp_path / "m.joblib").write_bytes(b"model")
    registry.register(tmp_path / "m.joblib", {"run_id": "r1"}, {})
    registry.set_production("v0001", expected=None, actor="r1", reason="first")
    return registry


def _unknown_version_text(tmp_path: Path) -> str:
    with pytest.raises(RegistryError) as caught:
        _registry(tmp_path).check_version_id("bad")
    return str(caught.value)


def _lost_race_text(tmp_path: Path) -> str:
    with pytest.raises(RegistryError) as caught:
        _registry(tmp_path).set_production("v0001", expected="v0002", actor="r2", reason="late")
    return str(caught.value)


MESSAGES = [
    pytest.param(_config_error_text, id="config error -> config check"),
    pytest.param(_unknown_version_text, id="bad version id -> models list"),
    pytest.param(_lost_race_text, id="lost production race -> models history"),
    pytest.param(lambda _: alerts.EVENTS["promoted"][2], id="promoted alert -> models rollback"),
]


@pytest.mark.parametrize("message", MESSAGES)
def test_a_command_a_message_tells_the_user_to_run_exists(capsys, tmp_path: Path, message):
    (command,) = re.findall(r"python -m include\.ml ([a-z]+(?: [a-z]+)?)", message(tmp_path))

    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])

    assert exited.value.code == 0, capsys.readouterr().err


def test_models_verify_flags_a_changed_artifact_and_exits_1(credit_config, run_day, capsys):
    from include.ml.simulate import write_batches
    from include.ml.steps import registry_for

    write_batches(credit_config, dt.date(2026, 1, 1), 1, rows=800)
    run_day(credit_config, "2026-01-01")
    assert main(["models", "verify", "--pipeline", "credit_default"]) == 0
    assert re.search(r"^\* v0001\s+ok\s", capsys.readouterr().out, re.M)
    artifact = registry_for(credit_config).versions_dir / "v0001" / "model.joblib"
    artifact.write_bytes(artifact.read_bytes() + b"x")
    assert main(["models", "verify", "--pipeline", "credit_default", "v0001"]) == 1
    captured = capsys.readouterr()
    assert re.search(r"^\* v0001\s+CHANGED\s", captured.out, re.M)
    assert "artifact(s) changed after registration: v0001" in captured.err
