"""Batch scoring: chunked, bad rows rejected with reasons, output published atomically or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.ml.cli import main
from include.ml.config import FeatureSpec
from include.ml.errors import BatchReadError, InputDataError
from include.ml.scoring import TooManyRejectsError, score_file


@pytest.fixture
def production(in_credit_history):
    """The shared history's production model, its features, and a batch to score (no target)."""
    from include.ml.steps import registry_for

    config = in_credit_history.config
    registry = registry_for(config)
    version = registry.production()
    features = [FeatureSpec.model_validate(f) for f in registry.metadata(version)["features"]]
    batch = pd.read_csv(in_credit_history.landing[0]).drop(columns=[config.target])
    return config, registry.load(version), version, features, batch


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_parquet_file_is_scored_in_chunks_with_the_same_predictions_as_in_memory(production, tmp_path):
    config, model, version, features, batch = production
    source = tmp_path / "in.parquet"
    batch.to_parquet(source, index=False)

    summary = score_file(model, version, config, features, source, tmp_path / "out" / "pred.parquet", chunk_rows=150)

    predictions = pd.read_parquet(tmp_path / "out" / "pred.parquet")
    assert summary.chunks == int(np.ceil(len(batch) / 150)) > 1
    assert summary.scored == summary.rows == len(batch) == len(predictions)
    assert predictions["customer_id"].tolist() == batch["customer_id"].tolist()
    expected = model.predict_proba(batch[[f.name for f in features]])[:, 1]
    np.testing.assert_allclose(predictions["proba_1"].to_numpy(), expected)
    np.testing.assert_allclose(predictions["proba_0"] + predictions["proba_1"], 1.0)
    assert set(predictions["model_version"]) == {version}
    assert summary.rejects is None and _files(tmp_path / "out") == ["pred.parquet"]
    assert sum(summary.prediction_histogram.values()) == len(batch)


def test_csv_and_parquet_inputs_give_identical_predictions(production, tmp_path):
    config, model, version, features, batch = production
    batch.to_csv(tmp_path / "in.csv", index=False)
    batch.to_parquet(tmp_path / "in.parquet", index=False)

    score_file(model, version, config, features, tmp_path / "in.csv", tmp_path / "a.parquet", chunk_rows=200)
    score_file(model, version, config, features, tmp_path / "in.parquet", tmp_path / "b.parquet", chunk_rows=333)

    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="scored_at"), b.drop(columns="scored_at"))


def test_a_few_bad_rows_go_to_rejects_with_their_reason_and_the_rest_is_scored(production, tmp_path):
    config, model, version, features, batch = production
    batch = batch.astype({"age": object})
    batch.loc[3, "age"] = "forty"
    batch.loc[7, "utilization"] = 2.5
    batch.to_csv(tmp_path / "in.csv", index=False)

    summary = score_file(model, version, config, features, tmp_path / "in.csv", tmp_path / "pred.parquet",
                         chunk_rows=100, max_reject_share=0.01)

    rejects = pd.read_parquet(summary.rejects)
    assert summary.rejected == 2 and summary.scored == len(batch) - 2
    assert dict(zip(rejects["customer_id"], rejects["reject_reason"], strict=True)) == {
        batch.loc[3, "customer_id"]: "age: not a number",
        batch.loc[7, "customer_id"]: "utilization: above maximum 1",
    }
    assert summary.reject_reasons == {"age: not a number": 1, "utilization: above maximum 1": 1}
    scored = pd.read_parquet(tmp_path / "pred.parquet")
    assert batch.loc[3, "customer_id"] not in set(scored["customer_id"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_predictions_and_rejects_carry_the_input_row_number_without_id_columns(production, tmp_path, suffix):
    config, model, version, features, batch = production
    config = config.model_copy(update={"id_columns": []})
    batch = batch.drop(columns="customer_id")
    batch.loc[[5, 250], "utilization"] = 2.5  # one in the first chunk, one in the third
    source = tmp_path / f"in{suffix}"
    batch.to_csv(source, index=False) if suffix == ".csv" else batch.to_parquet(source, index=False)

    summary = score_file(model, version, config, features, source, tmp_path / "pred.parquet", chunk_rows=100)

    scored, rejects = pd.read_parquet(tmp_path / "pred.parquet"), pd.read_parquet(summary.rejects)
    assert rejects["row"].tolist() == [5, 250]
    assert scored["row"].tolist() == [r for r in range(len(batch)) if r not in (5, 250)]
    expected = model.predict_proba(batch.loc[scored["row"], [f.name for f in features]])[:, 1]
    np.testing.assert_allclose(scored["proba_1"].to_numpy(), expected)  # row n is the input's row n


def test_too_many_bad_rows_fail_clearly_and_publish_nothing(production, tmp_path):
    config, model, version, features, batch = production
    batch.loc[: len(batch) // 5, "utilization"] = 9.0
    batch.to_parquet(tmp_path / "in.parquet", index=False)
    out = tmp_path / "out"

    with pytest.raises(TooManyRejectsError, match=r"rows of .*in\.parquet .* failed validation, more than the allowed"):
        score_file(model, version, config, features, tmp_path / "in.parquet", out / "pred.parquet", chunk_rows=100)

    assert _files(out) == []  # no partial output, no temporary files
    assert (tmp_path / "in.parquet").exists()


def test_a_missing_feature_column_or_file_is_a_clear_error(production, tmp_path):
    config, model, version, features, batch = production
    batch.drop(columns=["income"]).to_parquet(tmp_path / "in.parquet", index=False)

    with pytest.raises(InputDataError, match=r"lacks column\(s\) \['income'\]"):
        score_file(model, version, config, features, tmp_path / "in.parquet", tmp_path / "pred.parquet")
    with pytest.raises(BatchReadError, match="does not exist"):
        score_file(model, version, config, features, tmp_path / "nope.parquet", tmp_path / "pred.parquet")
    assert not (tmp_path / "pred.parquet").exists()


def test_cli_score_uses_production_and_reports_rows(production, tmp_path, capsys):
    _, _, version, _, batch = production
    batch.to_parquet(tmp_path / "in.parquet", index=False)

    code = main(["score", "--pipeline", "credit_default", "--input", str(tmp_path / "in.parquet"),
                 "--output", str(tmp_path / "p.parquet"), "--chunk-rows", "250", "--json"])

    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["version"] == version and summary["scored"] == len(batch)
    assert summary["chunks"] == int(np.ceil(len(batch) / 250))


def test_cli_score_without_a_production_model_exits_1(tmp_path, capsys):
    code = main(["score", "--pipeline", "house_prices", "--input", str(tmp_path / "x.parquet"),
                 "--output", str(tmp_path / "p.parquet")])

    assert code == 1
    assert "has no production model yet" in capsys.readouterr().err


# -- output names: two inputs never write the same file ----------------------------------------


def _inbox(config, ds: str, names: list[str], batch: pd.DataFrame) -> Path:
    from include.ml.paths import scoring_inbox

    folder = scoring_inbox(config, ds)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith(".csv"):
            batch.head(50).to_csv(folder / name, index=False)
        else:
            batch.head(50).to_parquet(folder / name, index=False)
    return folder


@pytest.mark.parametrize(("ds", "names", "expected"), [
    ("2026-02-11", ["part.csv", "part.parquet"], "scoring inputs 'part.csv' and 'part.parquet'"),
    ("2026-02-12", ["part.parquet", "part.pq"], "scoring inputs 'part.parquet' and 'part.pq'"),
    ("2026-02-13", ["x.csv", "x.rejects.parquet"], "scoring input 'x.rejects.parquet'"),
    ("2026-02-14", ["x.rejects.csv"], "scoring input 'x.rejects.csv'"),
], ids=["csv and parquet", "parquet and pq", "an input named like a rejects file", "rejects-like csv"])
def test_inputs_that_would_write_the_same_output_are_refused_before_anything_is_written(
        production, ds: str, names: list[str], expected: str):
    from include.ml import scoring
    from include.ml.paths import predictions_dir

    config, *_, batch = production
    folder = _inbox(config, ds, names, batch)

    with pytest.raises(InputDataError, match="nothing was scored") as caught:
        scoring.partitions(config, ds)
    for name in names:  # a task given one of them directly refuses as well
        with pytest.raises(InputDataError):
            scoring.score_partition(config, str(folder / name), ds)

    assert expected in str(caught.value)
    assert not predictions_dir(config, ds).exists()


def test_inputs_with_distinct_outputs_are_all_listed(production):
    from include.ml import scoring

    config, *_, batch = production
    folder = _inbox(config, "2026-02-02", ["a.csv", "b.parquet", "summary.csv"], batch)

    assert scoring.partitions(config, "2026-02-02") == [str(folder / n) for n in ("a.csv", "b.parquet", "summary.csv")]
