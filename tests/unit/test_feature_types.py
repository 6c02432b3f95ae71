"""Feature types and inference through the library: datetime and boolean features train, drift and
score as the model sees them; ``inference`` excludes, overrides and bounds columns and says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.ml import steps
from include.ml.config import PipelineConfig
from include.ml.records import FeaturesRecord, RunWorkspace, ValidationRecord
from include.ml.scoring import score_partition

DAYS = ("2026-03-01", "2026-03-02")
ROWS = 600


def config_for(fmt: str = "parquet", **overrides) -> PipelineConfig:
    """A classification pipeline on ``features: infer`` whose gates let an equal candidate through, so
    the branch of a second run is decided by drift."""
    return PipelineConfig.model_validate({
        "name": "types", "task": "classification", "target": "churned",
        "source": {"path": f"landing/types/{{ds}}.{fmt}"},
        "model": {"estimator": "logistic_regression"}, "metric": "roc_auc",
        "gates": {"min_score": 0.55, "max_regression": 0.5}, "validation": {"min_rows": 200},
        "alerts": {"email": ["ml@example.com"]}, "registry": "registry/types", **overrides,
    })


def batch(seed: int, rows: int = ROWS) -> pd.DataFrame:
    """Customers: a signup timestamp over four years, a member flag (bool), a plan code (1-4), a spend;
    churn depends on all four. Every seed draws from the same distribution."""
    rng = np.random.default_rng(seed)
    signup = (pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 4 * 365, rows), unit="D")
              + pd.to_timedelta(rng.integers(0, 24 * 60, rows), unit="min"))
    member = rng.random(rows) < 0.4
    plan = rng.integers(1, 5, rows)
    spend = rng.gamma(2.0, 50.0, rows)
    logit = (-0.5 + 1.2 * member - 0.8 * (plan == 3) + 0.6 * (signup.year.to_numpy() >= 2023)
             + 0.004 * (spend - 100) + rng.normal(0, 0.5, rows))
    return pd.DataFrame({"signup": signup, "member": member, "plan": plan, "spend": spend.round(2),
                         "churned": (logit > 0).astype(int)})


def land(home: Path, frame: pd.DataFrame, ds: str, fmt: str = "parquet") -> Path:
    path = home / "landing" / "types" / f"{ds}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False) if fmt == "parquet" else frame.to_csv(path, index=False)
    return path


def run(config: PipelineConfig, ds: str) -> dict[str, dict]:
    """Every step of a training run of ``ds`` (the run id names the registry: one workspace per config)."""
    return steps.run_steps(config, f"{Path(config.registry).name}__{ds}", ds)


def features_of(results: dict[str, dict]) -> dict[str, str]:
    """The run's features and their types."""
    ws = RunWorkspace(Path(results["report"]["workspace"]))
    return {f.name: f.type for f in ws.read(FeaturesRecord).specs()}


def notes_of(results: dict[str, dict]) -> list[str]:
    return RunWorkspace(Path(results["report"]["workspace"])).read(ValidationRecord).inference_notes


def test_a_parquet_datetime_is_inferred_as_datetime_and_a_batch_like_the_first_is_promoted(ml_home):
    config = config_for()
    for seed, ds in enumerate(DAYS):
        land(ml_home, batch(seed), ds)

    first = run(config, DAYS[0])
    second = run(config, DAYS[1])

    assert features_of(first)["signup"] == "datetime"
    assert first["drift_check"]["branch"] == "promote"
    assert second["drift_check"]["drift_verdict"] == "none"
    assert second["drift_check"]["branch"] == "promote", second["drift_check"]["reasons"]
    assert second["drift_check"]["reasons"] == ["quality gates passed"]
    drifted = second["report"]["drift_by_feature"]
    assert {"signup.year", "signup.month", "signup.dayofweek"} <= set(drifted)  # judged by its parts
    assert "signup" not in drifted


def test_boolean_columns_are_inferred_from_a_parquet_bool_and_from_csv_words(ml_home):
    frame = batch(0).assign(paperless=lambda f: np.where(f["spend"] > 90, "true", "false"))
    land(ml_home, frame, DAYS[0], "csv")
    land(ml_home, frame.drop(columns="paperless"), DAYS[1], "parquet")
    from_csv = run(config_for("csv", registry="registry/csv"), DAYS[0])
    from_parquet = run(config_for("parquet", registry="registry/parquet"), DAYS[1])

    assert features_of(from_csv)["paperless"] == "boolean"
    assert features_of(from_csv)["member"] == "boolean"  # True/False written to the CSV
    assert features_of(from_parquet)["member"] == "boolean"
    assert from_csv["drift_check"]["branch"] == from_parquet["drift_check"]["branch"] == "promote"
    assert from_csv["drift_check"]["reasons"] == ["quality gates passed; first model"]


def test_integer_codes_stay_numeric_unless_inference_types_makes_them_categorical(ml_home):
    land(ml_home, batch(0), DAYS[0])

    inferred = run(config_for(registry="registry/plain"), DAYS[0])
    overridden = run(config_for(inference={"types": {"plan": "categorical"}}, registry="registry/codes"), DAYS[0])

    assert features_of(inferred)["plan"] == "numeric"
    assert any("'plan' has 4 distinct whole numbers: kept numeric" in note for note in notes_of(inferred))
    assert features_of(overridden)["plan"] == "categorical"
    assert overridden["drift_check"]["branch"] == "promote"
    assert overridden["drift_check"]["reasons"] == ["quality gates passed; first model"]


@pytest.mark.parametrize("id_column", [
    pd.Series([f"C{i:06d}" for i in range(ROWS)], name="customer"),  # text, one per row
    pd.Series(np.arange(1000, 1000 + ROWS), name="row_number"),  # whole numbers counting up
    pd.Series(np.random.default_rng(3).permutation(10**6)[:ROWS], name="account_id"),  # named like an id
], ids=["text", "counting-up", "named-id"])
def test_an_id_like_column_is_left_out_with_its_reason(ml_home, id_column: pd.Series):
    land(ml_home, batch(0).assign(**{id_column.name: id_column.to_numpy()}), DAYS[0])

    results = run(config_for(), DAYS[0])

    assert id_column.name not in features_of(results)
    assert any(note.startswith(f"column {id_column.name!r} left out: ID-like") and f"{ROWS} distinct values" in note
               for note in notes_of(results)), notes_of(results)
    assert results["drift_check"]["branch"] == "promote"


def test_a_column_named_in_inference_exclude_is_not_a_feature(ml_home):
    land(ml_home, batch(0), DAYS[0])

    results = run(config_for(inference={"exclude": ["spend"]}), DAYS[0])

    assert set(features_of(results)) == {"signup", "member", "plan"}
    assert "column 'spend' left out: inference.exclude names it" in notes_of(results)
    assert results["drift_check"]["branch"] == "promote"


def test_a_sparse_free_text_column_is_left_out_by_max_levels_and_the_run_goes_on(ml_home):
    rng = np.random.default_rng(5)
    comments = np.array([f"comment {i} about the service" for i in rng.integers(0, 400, ROWS)], dtype=object)
    comments[rng.random(ROWS) < 0.3] = None
    land(ml_home, batch(0).assign(comment=comments), DAYS[0])

    results = run(config_for(inference={"max_levels": 100}), DAYS[0])

    assert "comment" not in features_of(results)
    note = next(n for n in notes_of(results) if n.startswith("column 'comment'"))
    assert "free text" in note and "more than inference.max_levels 100" in note
    assert results["drift_check"]["branch"] == "promote"


def test_a_column_missing_more_than_validation_allows_is_left_out_not_failing_every_batch(ml_home):
    sparse = np.where(np.random.default_rng(6).random(ROWS) < 0.8, np.nan, 1.0)
    land(ml_home, batch(0).assign(rarely=sparse), DAYS[0])

    results = run(config_for(), DAYS[0])

    assert "rarely" not in features_of(results)
    assert any(n.startswith("column 'rarely' left out:") and "validation.max_missing" in n for n in notes_of(results))
    assert results["drift_check"]["branch"] == "promote"


def test_scoring_reads_datetime_and_boolean_features_and_rejects_a_bad_date_with_its_reason(ml_home):
    config = config_for(scoring={"max_reject_share": 0.05})
    land(ml_home, batch(0), DAYS[0])
    assert run(config, DAYS[0])["drift_check"]["branch"] == "promote"
    inbox = ml_home / "scoring" / "types" / DAYS[1]
    inbox.mkdir(parents=True)
    delivered = batch(9, rows=200).drop(columns="churned")
    delivered["signup"] = delivered["signup"].dt.strftime("%Y-%m-%dT%H:%M:%S")  # dates as text in a CSV
    delivered["member"] = np.where(delivered["member"], "yes", "no")
    delivered.loc[7, "signup"] = "not yet"
    delivered.loc[11, "member"] = "maybe"
    delivered.to_csv(inbox / "part-000.csv", index=False)

    summary = score_partition(config, str(inbox / "part-000.csv"), DAYS[1])

    assert summary["scored"] == 198
    assert summary["reject_reasons"] == {"signup: not a date": 1, "member: not a boolean": 1}
    rejects = pd.read_parquet(summary["rejects"])
    assert rejects.set_index("signup")["reject_reason"].to_dict()["not yet"] == "signup: not a date"
    predictions = pd.read_parquet(summary["output"])
    assert predictions["proba_1"].between(0, 1).all() and len(predictions) == 198
