"""A training window and a holdout no model trained on (issue 16, items 1-2): the candidate trains
on the last ``model.window_batches`` validated batches and lists them in its fingerprint; reruns of
a date with the same window reuse its version; a row's holdout side is a hash of its key, so the
champion never trained on the candidate's holdout."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from include.ml import simulate, steps
from include.ml.config import PipelineConfig, get_pipeline
from include.ml.errors import HoldoutSplitError
from include.ml.fitting import hash_split, split
from include.ml.storage import sha256_file
from tests.unit.conftest import run_training_day

DAY1 = dt.date(2026, 1, 1)
ROWS = 800
DAYS = 3


def ds(offset: int) -> str:
    return (DAY1 + dt.timedelta(days=offset)).isoformat()


def windowed(config: PipelineConfig, batches: int) -> PipelineConfig:
    return config.model_copy(update={"model": config.model.model_copy(update={"window_batches": batches})})


def read(workspace: str | Path, name: str) -> dict:
    return json.loads((Path(workspace) / name).read_text())


@dataclass(frozen=True)
class WindowHistory:
    home: Path
    config: PipelineConfig
    summaries: list[dict]
    landing: list[Path]


@pytest.fixture(scope="module")
def window_history(tmp_path_factory: pytest.TempPathFactory) -> WindowHistory:
    """Three scheduled days of credit_default with a window of three batches (built once, read only)."""
    home = tmp_path_factory.mktemp("window_history")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = windowed(get_pipeline("credit_default"), DAYS)
        landing = simulate.write_batches(config, DAY1, DAYS, rows=ROWS)
        summaries = [run_training_day(config, ds(i)) for i in range(DAYS)]
    return WindowHistory(home=home, config=config, summaries=summaries, landing=landing)


@pytest.fixture
def own_copy(window_history: WindowHistory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WindowHistory:
    """A copy of the history this test may change (``$ML_HOME`` points at it)."""
    home = tmp_path / "copy"
    shutil.copytree(window_history.home, home)
    monkeypatch.setenv("ML_HOME", str(home))
    landing = [home / path.relative_to(window_history.home) for path in window_history.landing]
    return WindowHistory(home=home, config=window_history.config, summaries=window_history.summaries,
                         landing=landing)


def test_a_window_of_three_trains_on_the_rows_of_three_batches_and_lists_their_fingerprints(window_history):
    last = window_history.summaries[-1]
    training = read(last["workspace"], "training.json")
    validated = [read(s["workspace"], "validation.json")["rows"] for s in window_history.summaries]

    assert training["window_batches"] == training["window_found"] == DAYS
    assert training["train_rows"] + training["holdout_rows"] == sum(validated)
    assert [b["ds"] for b in training["window"]] == [ds(i) for i in range(DAYS)]
    assert [b["rows"] for b in training["window"]] == validated
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(window_history.home))
        meta = steps.registry_for(window_history.config).metadata(last["version"])
    assert [(b["ds"], b["sha256"]) for b in meta["training"]["window"]] == [
        (ds(i), sha256_file(path)) for i, path in enumerate(window_history.landing)]


def test_the_first_days_train_on_the_batches_archived_so_far(window_history):
    found = [read(s["workspace"], "training.json")["window_found"] for s in window_history.summaries]
    assert found == [1, 2, 3]


def test_drift_is_judged_on_the_runs_own_batch(window_history):
    last = window_history.summaries[-1]
    validated = pd.read_parquet(Path(last["workspace"]) / "validated.parquet")
    assert len(validated) == read(last["workspace"], "validation.json")["rows"]
    assert set(validated["customer_id"].str[1:9]) == {ds(DAYS - 1).replace("-", "")}


def test_a_rerun_of_a_date_with_the_same_window_reuses_its_version_and_switches_nothing(own_copy):
    registry = steps.registry_for(own_copy.config)
    versions, production = registry.versions(), registry.production()

    rerun = run_training_day(own_copy.config, ds(DAYS - 1), run_id=f"manual__{ds(DAYS - 1)}")

    assert rerun["reused_from_earlier_run"] is True
    assert rerun["version"] == own_copy.summaries[-1]["version"]
    assert rerun["switched"] is False
    assert (registry.versions(), registry.production()) == (versions, production)


def test_a_changed_earlier_batch_makes_a_rerun_a_new_model(own_copy):
    registry = steps.registry_for(own_copy.config)
    changed = pd.read_csv(own_copy.landing[0]).iloc[:-50]
    changed.to_csv(own_copy.landing[0], index=False)
    run_training_day(own_copy.config, ds(0), run_id=f"manual__{ds(0)}")  # replaces day 1's archive
    versions = registry.versions()

    rerun = run_training_day(own_copy.config, ds(DAYS - 1), run_id=f"manual__{ds(DAYS - 1)}")

    assert rerun["reused_from_earlier_run"] is False
    assert rerun["version"] not in versions
    training = read(rerun["workspace"], "training.json")
    assert training["window"][0] == {"ds": ds(0), "sha256": sha256_file(own_copy.landing[0]), "rows": len(changed)}


def test_a_window_of_one_keys_reruns_on_the_batchs_own_sha256(run_day, credit_config):
    simulate.write_batches(credit_config, DAY1, 1, rows=ROWS)
    first = run_day(credit_config, ds(0))
    training = read(first["workspace"], "training.json")

    assert training["window_sha256"] == first["data_sha256"]
    assert run_day(credit_config, ds(0), run_id="manual__again")["reused_from_earlier_run"] is True


def test_a_rows_holdout_side_is_the_same_in_every_batch_that_contains_it(credit_config, house_config):
    day1, day2 = (simulate.credit_default(DAY1 + dt.timedelta(days=i), ROWS, seed=7, drifted=False) for i in range(2))
    both = pd.concat([day2, day1.iloc[:300]], ignore_index=True)
    first, second = hash_split(day1, credit_config), hash_split(both, credit_config)
    shared = set(day1["customer_id"].iloc[:300])
    assert set(first.holdout["customer_id"]) & shared == set(second.holdout["customer_id"]) & shared
    assert first.key == ["customer_id"]

    no_ids = house_config.model_copy(update={"id_columns": []})
    houses = simulate.house_prices(DAY1, ROWS, seed=11, drifted=False).drop(columns="sale_id")
    alone, mixed = hash_split(houses, no_ids), hash_split(pd.concat([houses.iloc[::-1], houses.iloc[:50]]), no_ids)
    assert alone.key == [c for c in houses.columns if c != no_ids.target]
    assert set(alone.holdout.index) == set(mixed.holdout.index)  # by content, not by position


def test_the_holdout_share_follows_test_size(credit_config):
    frame = simulate.credit_default(DAY1, 4000, seed=3, drifted=False)
    share = len(split(frame, credit_config).holdout) / len(frame)
    assert abs(share - credit_config.model.test_size) < 0.03


def test_no_row_of_the_candidates_holdout_was_in_the_champions_training_rows(window_history):
    last = window_history.summaries[-1]
    evaluation = read(last["workspace"], "evaluation.json")
    holdout = pd.read_parquet(Path(last["workspace"]) / "holdout.parquet")
    config = window_history.config
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(window_history.home))
        registry = steps.registry_for(config)
        champion = registry.metadata(evaluation["champion_version"])
        layout = config.registry_layout
        champion_rows = pd.concat([pd.read_parquet(layout.batch_rows(b["ds"])) for b in champion["training"]["window"]])
    champion_train = split(champion_rows, config).train

    candidate_dates = [b["ds"] for b in read(last["workspace"], "training.json")["window"]]
    assert {b["ds"] for b in champion["training"]["window"]} < set(candidate_dates)  # its batches are in the window
    assert len(champion_train) == champion["training"]["train_rows"]
    assert set(holdout["customer_id"]) & set(champion_rows["customer_id"])  # the windows overlap...
    assert not set(holdout["customer_id"]) & set(champion_train["customer_id"])  # ...but not in the holdout


def test_a_holdout_without_two_classes_is_an_error_that_names_the_knobs(credit_config):
    frame = simulate.credit_default(DAY1, 12, seed=7, drifted=False)
    frame[credit_config.target] = [0] * 11 + [1]
    with pytest.raises(HoldoutSplitError, match=r"model\.window_batches"):
        hash_split(frame, credit_config)
