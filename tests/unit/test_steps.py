"""The DAG's steps run in a workspace folder: a first model is promoted, a drifted day is held, a
warning-level drift still promotes, a failing gate rejects, bad input is quarantined (odd values
only warn), and a retried step does not repeat its effect."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import joblib
import pandas as pd
import pytest
import sklearn

from include.ml import paths, simulate, steps
from include.ml.config import DriftConfig, Gates, PipelineConfig, load_config
from include.ml.drift import DriftReport
from include.ml.errors import ArtifactIntegrityError, BatchNotFoundError, BatchValidationError, InputDataError
from include.ml.storage import sha256_file

DAY1 = dt.date(2026, 1, 1)
ROWS = 800


def ds(offset: int) -> str:
    return (DAY1 + dt.timedelta(days=offset)).isoformat()


def run_id(day: str) -> str:
    return f"scheduled__{day}T00:00:00+00:00"


def read(workspace: Path, name: str) -> dict:
    return json.loads((workspace / name).read_text())


# -- credit_default over three days (shared, read-only) -------------------------------------


def test_the_first_run_promotes_its_model_and_sets_the_pointer(in_credit_history):
    first = in_credit_history.summaries[0]
    registry = steps.registry_for(in_credit_history.config)

    assert first["branch"] == "promote"
    assert (first["production_before"], first["production_after"]) == (None, "v0001")
    assert first["drift_verdict"] == "no_reference"
    assert first["reasons"] == ["quality gates passed; first model"]
    assert registry.audit()[0]["to"] == "v0001"
    assert registry.audit()[0]["actor"] == run_id(ds(0))


def test_the_second_run_is_compared_with_production_on_the_same_holdout(in_credit_history):
    second = in_credit_history.summaries[1]
    workspace = Path(second["workspace"])
    evaluation = read(workspace, "evaluation.json")

    assert evaluation["champion_version"] == "v0001"
    assert evaluation["champion"]["roc_auc"] == second["champion_score"]
    holdout = pd.read_parquet(workspace / "holdout.parquet")
    assert evaluation["holdout_rows"] == len(holdout) == pytest.approx(in_credit_history.rows * 0.3, abs=60)
    assert second["drift_verdict"] == "none"
    assert second["branch"] == "promote"
    assert second["production_after"] == "v0002"


def test_a_drifted_day_is_held_and_production_stays(in_credit_history):
    drifted = in_credit_history.summaries[2]
    registry = steps.registry_for(in_credit_history.config)

    assert drifted["branch"] == "hold"
    assert drifted["production_before"] == drifted["production_after"] == "v0002"
    assert registry.production() == "v0002"
    assert registry.metadata(drifted["version"])["decision"] == "held"
    assert drifted["drift_verdict"] == "drift"
    assert drifted["drifted_features"][0] == "channel"
    drift = read(Path(drifted["workspace"]), "drift.json")
    assert drifted["reasons"] == ["input drift against production v0002: " + "; ".join(drift["reasons"])]
    critical = next(r for r in drift["reasons"] if r.startswith("critical feature(s) drifted: "))
    assert set(critical.split(": ", 1)[1].split(", ")) == {"income", "utilization"}
    assert [e["to"] for e in registry.audit()] == ["v0001", "v0002"]


def test_the_drift_report_of_a_held_run_has_every_feature_and_names_the_new_level(in_credit_history):
    workspace = Path(in_credit_history.summaries[2]["workspace"])

    report = DriftReport.from_dict(read(workspace, "drift.json"))

    assert report.reference_version == "v0002"
    assert report.verdict == "drift"
    assert set(report.features) == {f.name for f in in_credit_history.config.features}
    assert report.features["channel"]["unseen_levels"] == ["bnpl_partner"]
    assert report.batch_rows == in_credit_history.rows


def test_the_decision_carries_the_drift_summary_not_the_full_report(in_credit_history):
    workspace = Path(in_credit_history.summaries[2]["workspace"])

    decision = read(workspace, "decision.json")

    assert decision["drift"] == DriftReport.from_dict(read(workspace, "drift.json")).summary()
    assert len(decision["drift"]["worst"]) == 5
    assert decision["drift_verdict"] == "drift"


def test_the_first_run_records_that_there_was_nothing_to_compare_with(in_credit_history):
    workspace = Path(in_credit_history.summaries[0]["workspace"])

    assert read(workspace, "drift.json")["verdict"] == "no_reference"
    assert read(workspace, "decision.json")["drift"]["reasons"] == ["no production model yet: nothing to compare with"]


def test_a_version_records_the_data_config_code_and_libraries_it_came_from(in_credit_history):
    config = in_credit_history.config
    meta = steps.registry_for(config).metadata("v0001")

    assert meta["run_id"] == run_id(ds(0))
    assert meta["logical_date"] == ds(0)
    assert meta["data"]["sha256"] == sha256_file(in_credit_history.landing[0])
    assert meta["data"]["rows"] == in_credit_history.rows
    assert meta["config_hash"] == config.config_hash()
    assert meta["config"]["model"]["estimator"] == "hist_gradient_boosting"
    assert meta["seed"] == 42
    assert [f["name"] for f in meta["features"]] == [f.name for f in config.features]
    assert meta["libraries"]["scikit-learn"] == sklearn.__version__
    assert meta["python"]
    assert meta["training"]["train_rows"] + meta["training"]["holdout_rows"] == in_credit_history.rows


def test_a_version_records_the_git_commit_of_the_code(in_credit_history):
    if not (paths.REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO_ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()

    assert steps.registry_for(in_credit_history.config).metadata("v0001")["code_version"] == head


def test_registering_outside_a_git_checkout_and_without_a_library_records_unknowns(
    credit_config, credit_landed, run_day, tmp_path, monkeypatch
):
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)  # not a git repository
    monkeypatch.setattr(steps, "LIBRARIES", ("scikit-learn", "no-such-library"))

    summary = run_day(credit_config, ds(0))

    meta = steps.registry_for(credit_config).metadata(summary["version"])
    assert meta["code_version"] is None
    assert meta["libraries"] == {"scikit-learn": sklearn.__version__, "no-such-library": None}


def test_run_history_lists_every_run_oldest_first(in_credit_history):
    history = steps.run_history(in_credit_history.config)

    assert [(h["logical_date"], h["branch"], h["version"]) for h in history] == [
        (ds(0), "promote", "v0001"),
        (ds(1), "promote", "v0002"),
        (ds(2), "hold", "v0003"),
    ]
    assert history[0]["data_sha256"] == sha256_file(in_credit_history.landing[0])


def test_the_landing_files_are_never_changed(in_credit_history):
    for path, summary in zip(in_credit_history.landing, in_credit_history.summaries, strict=True):
        assert sha256_file(path) == summary["data_sha256"]


# -- single steps ---------------------------------------------------------------------------


@pytest.fixture
def credit_landed(credit_config: PipelineConfig) -> list[Path]:
    return simulate.write_batches(credit_config, DAY1, 2, rows=ROWS)


def test_extract_copies_the_batch_into_the_workspace_with_its_fingerprint(credit_config, credit_landed, ml_home):
    workspace = paths.workspace_dir("credit_default", run_id(ds(0)))

    result = steps.extract(credit_config, workspace, ds(0))

    assert workspace == ml_home / "runs/credit_default/scheduled__2026-01-01T00_00_00_00_00"
    assert result == read(workspace, "extract.json")
    assert result["sha256"] == sha256_file(credit_landed[0])
    assert (result["ds"], result["rows"], result["path"]) == (ds(0), ROWS, str(credit_landed[0]))
    assert len(pd.read_parquet(workspace / "batch.parquet")) == ROWS


def test_extract_of_a_date_that_has_not_landed_is_retryable(credit_config, tmp_path):
    with pytest.raises(BatchNotFoundError, match=r"2026-02-01\.csv does not exist"):
        steps.extract(credit_config, tmp_path / "ws", "2026-02-01")


def test_extract_can_read_a_file_given_explicitly(credit_config, credit_landed, tmp_path):
    result = steps.extract(credit_config, tmp_path / "ws", "2030-01-01", source=credit_landed[1])

    assert result["path"] == str(credit_landed[1])
    assert result["ds"] == "2030-01-01"


def test_a_bad_batch_is_quarantined_and_nothing_is_trained(credit_config, ml_home):
    frame = simulate.credit_default(DAY1, ROWS, 7, False)
    frame.loc[5:24, "age"] = 7  # 2.5% of rows: more than max_out_of_range_share
    frame.loc[30, "home_ownership"] = "castle"  # one row: a warning
    landing = credit_config.source.path_for(ds(0))
    landing.parent.mkdir(parents=True)
    frame.to_csv(landing, index=False)
    workspace = paths.workspace_dir("credit_default", "run:1")
    steps.extract(credit_config, workspace, ds(0))

    with pytest.raises(BatchValidationError) as caught:
        steps.validate(credit_config, workspace, run_id="run:1")

    quarantined = ml_home / "quarantine/credit_default/2026-01-01__run_1"
    assert caught.value.quarantined_to == str(quarantined)
    assert isinstance(caught.value, InputDataError)
    message = str(caught.value)
    assert "column 'age': 20 values below minimum 18 (first rows: 5, 6, 7, 8, 9;" in message
    assert "[2.50% of rows; the limit is 1.00%]" in message
    assert f"The batch was copied to {quarantined}" in message
    assert "production is unchanged" in message
    assert (quarantined / landing.name).read_bytes() == landing.read_bytes()
    reasons = json.loads((quarantined / "reasons.json").read_text())
    assert (reasons["pipeline"], reasons["run_id"], reasons["ds"]) == ("credit_default", "run:1", ds(0))
    assert reasons["sha256"] == sha256_file(landing)
    assert [(f["column"], f["severity"]) for f in reasons["failures"]] == [
        ("age", "error"), ("home_ownership", "warning")]
    assert landing.exists()
    assert not (workspace / "validated.parquet").exists()


def test_validate_keeps_only_ids_features_and_target(credit_config, credit_landed, tmp_path):
    frame = pd.read_csv(credit_landed[0]).assign(internal_note="x")
    frame.to_csv(credit_landed[0], index=False)
    workspace = tmp_path / "ws"
    steps.extract(credit_config, workspace, ds(0))

    result = steps.validate(credit_config, workspace)

    assert result == {"rows": ROWS, "features": 15, "feature_origin": "config", "passed": True,
                      "unlabelled_rows": 0, "warnings": 0, "warning_messages": []}
    validated = pd.read_parquet(workspace / "validated.parquet")
    assert list(validated.columns) == ["customer_id", *(f.name for f in credit_config.features), "default"]


# -- validate and decide against production (on copies of the shared history's workspaces) ---


def copy_workspace(history, day: int, tmp_path: Path) -> Path:
    """A private copy of one history run's workspace, as if evaluated against today's production:
    steps may rewrite it; the registry is only read."""
    workspace = Path(shutil.copytree(history.summaries[day]["workspace"], tmp_path / f"ws{day}"))
    evaluation = json.loads((workspace / "evaluation.json").read_text())
    evaluation["champion_version"] = steps.registry_for(history.config).production()
    (workspace / "evaluation.json").write_text(json.dumps(evaluation))
    return workspace


def test_a_production_change_during_the_run_holds_the_candidate(in_credit_history, tmp_path):
    workspace = Path(shutil.copytree(in_credit_history.summaries[1]["workspace"], tmp_path / "ws"))

    decision = steps.drift_check(in_credit_history.config, workspace)

    assert decision["branch"] == "hold"
    assert decision["reasons"][0].startswith("production changed during this run (v0001 when the candidate was "
                                             "evaluated, v0002 now)")


def test_validate_warns_about_values_beyond_production_training_data_and_passes(in_credit_history, tmp_path):
    workspace = copy_workspace(in_credit_history, 1, tmp_path)
    batch = pd.read_parquet(workspace / "batch.parquet")
    far = {"income": 5e6, "months_employed": 5000, "credit_limit": 5e6, "debt_to_income": 40, "open_accounts": 90,
           "loan_amount": 5e6}
    for row, (column, value) in enumerate(far.items()):
        batch.loc[row, column] = value
    batch.loc[7, "channel"] = "bnpl_partner"
    batch.to_parquet(workspace / "batch.parquet", index=False)

    result = steps.validate(in_credit_history.config, workspace)

    validation = read(workspace, "validation.json")
    messages = [w["message"] for w in validation["warnings"]]
    assert validation["reference_version"] == "v0002"
    assert {m.split(":")[0] for m in messages} >= {*(f"column {c!r}" for c in far), "column 'channel'"}
    assert "column 'channel': 1 values are levels training never saw (first rows: 7; values: 'bnpl_partner')" \
        in messages
    assert all(w["severity"] == "warning" for w in validation["warnings"])
    assert result["passed"] is True
    assert result["warnings"] == len(messages) >= 7
    assert result["warning_messages"] == messages[:5]
    assert len(pd.read_parquet(workspace / "validated.parquet")) == in_credit_history.rows


def with_drift(config: PipelineConfig, **changes) -> PipelineConfig:
    """``config`` with drift settings changed (validated, thresholds merged over the defaults)."""
    return config.model_copy(update={"drift": DriftConfig(**{**config.drift.model_dump(), **changes})})


MILD_ONLY = {statistic: {"drifted": levels["drifted"], "severe": 100.0}
             for statistic, levels in DriftConfig().model_dump()["thresholds"].items()}


def test_a_drift_warning_promotes_and_says_so(in_credit_history, tmp_path):
    workspace = copy_workspace(in_credit_history, 2, tmp_path)
    config = with_drift(in_credit_history.config, thresholds=MILD_ONLY, drift_share=1.0, critical_features=[])

    decision = steps.drift_check(config, workspace)

    assert decision["drift_verdict"] == "warn"
    assert decision["branch"] == "promote"
    assert decision["reasons"][0] == "quality gates passed"
    prefix = f"drift warning: {len(decision['drifted_features'])} feature(s) drifted, below the dataset rule: "
    assert decision["reasons"][1].startswith(prefix)
    assert set(decision["reasons"][1].removeprefix(prefix).split(", ")) == set(decision["drifted_features"])
    assert read(workspace, "drift.json")["verdict"] == "warn"


def test_a_batch_too_small_to_judge_drift_is_held(in_credit_history, tmp_path):
    workspace = copy_workspace(in_credit_history, 1, tmp_path)
    config = with_drift(in_credit_history.config, min_batch_rows=5000)

    decision = steps.drift_check(config, workspace)

    assert decision["drift_verdict"] == "insufficient_data"
    assert decision["branch"] == "hold"
    assert decision["reasons"] == [
        f"input drift against production v0002: batch has {in_credit_history.rows} rows, fewer than "
        "drift.min_batch_rows 5000"]


def test_a_critical_feature_alone_decides_a_hold(in_credit_history, tmp_path):
    workspace = copy_workspace(in_credit_history, 2, tmp_path)
    config = with_drift(in_credit_history.config, thresholds=MILD_ONLY, drift_share=1.0,
                        critical_features=["income"])

    decision = steps.drift_check(config, workspace)

    assert decision["branch"] == "hold"
    assert decision["reasons"] == ["input drift against production v0002: critical feature(s) drifted: income"]


def old_format(profile: dict) -> dict:
    """A reference profile as the previous release stored it (PSI bins, no "format" key)."""
    return {
        "bins": profile["bins"], "rows": profile["rows"],
        "numeric": {n: {"edges": [v["quantiles"][i] for i in v["edge_index"]], "shares": v["shares"],
                        "mean": v["mean"], "std": v["std"], "missing_rate": v["missing_rate"]}
                    for n, v in profile["numeric"].items()},
        "categorical": {n: {"shares": v["shares"], "missing_rate": v["missing_rate"]}
                        for n, v in profile["categorical"].items()},
    }


def test_a_production_model_from_before_the_profile_format_change_does_not_stop_every_run(credit_config, run_day):
    """Days at the simulation's size: the champion/challenger gate must pass for the drift check to
    decide (at 800 rows the hash holdout's interval is too wide and an equal day 2 is rejected)."""
    simulate.write_batches(credit_config, DAY1, 2)
    run_day(credit_config, ds(0))
    stored = credit_config.registry_path / "versions/v0001/reference_profile.json"
    stored.write_text(json.dumps(old_format(json.loads(stored.read_text()))))

    summary = run_day(credit_config, ds(1))

    assert summary["version"] == "v0002"
    # the gates pass (the old model still loads and scores), the drift check cannot compare: a person decides
    assert (summary["branch"], summary["drift_verdict"]) == ("hold", "no_reference")
    assert summary["reasons"][0].startswith("input drift against production v0001: cannot compare with production "
                                            "v0001: reference profile format 1 is not the supported 2")
    assert steps.registry_for(credit_config).reference_profile("v0002")["format"] == 2


def test_a_gate_set_impossibly_high_rejects_and_production_stays(credit_config, credit_landed, run_day):
    run_day(credit_config, ds(0))
    impossible = credit_config.model_copy(update={"gates": Gates(min_score=0.999)})

    summary = run_day(impossible, ds(1))

    registry = steps.registry_for(credit_config)
    assert summary["branch"] == "reject"
    assert summary["reasons"][0].startswith("roc_auc ")
    assert "is not at least the minimum 0.999" in summary["reasons"][0]
    assert summary["production_after"] == registry.production() == "v0001"
    assert registry.metadata(summary["version"])["decision"] == "rejected"


def test_a_config_file_with_an_impossible_gate_rejects_the_first_model(tmp_path, credit_landed):
    text = (paths.PIPELINES_DIR / "credit_default.yaml").read_text().replace("min_score: 0.70", "min_score: 0.999")
    (tmp_path / "credit_default.yaml").write_text(text)
    config = load_config(tmp_path / "credit_default.yaml")
    workspace = tmp_path / "ws"
    steps.extract(config, workspace, ds(0))
    steps.validate(config, workspace)
    steps.train(config, workspace)
    steps.evaluate(config, workspace)

    decision = steps.drift_check(config, workspace)
    outcome = steps.conclude(config, workspace, decision["branch"], "run-1", ds(0))

    assert decision["branch"] == "reject"
    assert outcome["production_after"] is None
    assert steps.registry_for(config).versions() == ["v0001"]


def test_gates_beat_drift_a_failing_drifted_candidate_is_rejected(credit_config, run_day):
    simulate.write_batches(credit_config, DAY1, 2, drift_from=DAY1 + dt.timedelta(days=1), rows=ROWS)
    run_day(credit_config, ds(0))
    impossible = credit_config.model_copy(update={"gates": Gates(min_score=0.999)})

    summary = run_day(impossible, ds(1))

    assert summary["drift_verdict"] == "drift"
    assert summary["branch"] == "reject"


def test_a_retried_conclude_and_report_do_not_repeat_their_effect(credit_config, credit_landed, run_day):
    summary = run_day(credit_config, ds(0), run_id="run-1")
    workspace = Path(summary["workspace"])

    again = steps.conclude(credit_config, workspace, "promote", "run-1", ds(0))
    steps.report(credit_config, workspace, "run-1", ds(0))

    registry = steps.registry_for(credit_config)
    assert again["version"] == summary["version"] == "v0001"
    assert registry.versions() == ["v0001"]
    assert len(registry.audit()) == 1
    assert [h["run_id"] for h in steps.run_history(credit_config)] == ["run-1"]


def test_a_rerun_of_a_run_replaces_its_history_entry(credit_config, credit_landed, run_day):
    run_day(credit_config, ds(0), run_id="run-1")
    run_day(credit_config, ds(1), run_id="run-2")
    steps.report(credit_config, paths.workspace_dir("credit_default", "run-1"), "run-1", ds(0))

    assert [h["run_id"] for h in steps.run_history(credit_config)] == ["run-2", "run-1"]


def test_conclude_refuses_an_unknown_branch(credit_config, tmp_path):
    with pytest.raises(ValueError, match="unknown branch 'retrain'"):
        steps.conclude(credit_config, tmp_path, "retrain", "run-1", ds(0))


def test_a_tampered_production_model_stops_the_evaluation(credit_config, credit_landed, run_day, tmp_path):
    run_day(credit_config, ds(0))
    registry = steps.registry_for(credit_config)
    joblib.dump({"not": "the model"}, registry.versions_dir / "v0001" / "model.joblib")
    workspace = tmp_path / "ws"
    steps.extract(credit_config, workspace, ds(1))
    steps.validate(credit_config, workspace)
    steps.train(credit_config, workspace)

    with pytest.raises(ArtifactIntegrityError):
        steps.evaluate(credit_config, workspace)


@pytest.fixture
def age_dropped(credit_config, credit_landed, run_day) -> tuple[PipelineConfig, Path]:
    """Production trained with 'age'; then 'age' is removed from the config and day 2 is trained."""
    run_day(credit_config, ds(0))
    without_age = credit_config.model_copy(update={"features": [f for f in credit_config.features if f.name != "age"]})
    workspace = paths.workspace_dir("credit_default", "run-2")
    steps.extract(without_age, workspace, ds(1))
    steps.validate(without_age, workspace)
    steps.train(without_age, workspace)
    return without_age, workspace


def test_a_production_model_needing_a_dropped_feature_is_not_scored_and_says_why(age_dropped):
    config, workspace = age_dropped

    evaluation = steps.evaluate(config, workspace)

    assert evaluation["champion_version"] == "v0001"
    assert evaluation["champion"] is None
    assert evaluation["champion_note"] == "production model needs columns missing from this batch: ['age']"
    assert evaluation["gates"]["delta"] is None


def test_dropping_a_feature_from_the_config_does_not_break_the_drift_check(age_dropped):
    config, workspace = age_dropped
    steps.evaluate(config, workspace)

    decision = steps.drift_check(config, workspace)

    assert decision["branch"] in steps.BRANCHES


def test_run_history_is_empty_before_the_first_run(credit_config):
    assert steps.run_history(credit_config) == []


# -- house_prices: features inferred once and kept in the registry --------------------------


def test_house_prices_infers_its_features_once_and_reuses_them(house_config, run_day):
    simulate.write_batches(house_config, DAY1, 2, rows=ROWS)

    first = run_day(house_config, ds(0))
    second = run_day(house_config, ds(1))

    spec_path = house_config.registry_layout.feature_spec
    spec = json.loads(spec_path.read_text())
    assert len(spec) == 10
    assert {f["name"] for f in spec} >= {"area_m2", "neighbourhood"}
    assert read(Path(first["workspace"]), "validation.json")["feature_origin"] == "inferred"
    assert read(Path(second["workspace"]), "validation.json")["feature_origin"] == "registry"
    assert (first["branch"], second["branch"]) == ("promote", "promote")
    assert first["score"] < house_config.gates.min_score  # rmse under its ceiling
    assert steps.registry_for(house_config).metadata("v0002")["features"] == spec


def test_a_column_added_upstream_later_is_not_used_by_an_inferred_pipeline(house_config, house_frame):
    first, _ = steps.resolve_features(house_config, house_frame)
    steps.save_inferred_features(house_config, first)

    features, origin = steps.resolve_features(house_config, house_frame.assign(pool="yes"))

    assert origin == "registry"
    assert "pool" not in [f.name for f in features]


def test_resolving_features_leaves_the_registry_alone(house_config, house_frame):
    features, origin = steps.resolve_features(house_config, house_frame)

    assert origin == "inferred" and len(features) == 10
    assert not (house_config.registry_layout.feature_spec).exists()


def test_a_first_batch_that_fails_validation_does_not_fix_the_inferred_features(house_config, ml_home):
    simulate.write_batches(house_config, DAY1, 1, rows=50)  # below min_rows 200
    workspace = paths.workspace_dir("house_prices", "run-1")
    steps.extract(house_config, workspace, ds(0))
    with pytest.raises(BatchValidationError, match="fewer than 200 rows"):
        steps.validate(house_config, workspace, run_id="run-1")

    assert not (house_config.registry_layout.feature_spec).exists()
