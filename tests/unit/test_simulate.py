"""The daily batch generators: deterministic, realistic enough to learn from, and drifting on request."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from include.ml import paths, simulate, steps
from include.ml.config import PipelineConfig

DAY = dt.date(2026, 1, 1)
GENERATORS = {
    "credit_default": (simulate.credit_default, "customer_id", "default"),
    "house_prices": (simulate.house_prices, "sale_id", "price"),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_and_date_give_the_same_rows(name: str):
    generate, _, _ = GENERATORS[name]

    first = generate(DAY, 300, 7, False)
    again = generate(DAY, 300, 7, False)

    pd.testing.assert_frame_equal(first, again)


@pytest.mark.parametrize("name", GENERATORS)
def test_another_date_or_seed_gives_other_rows(name: str):
    generate, _, target = GENERATORS[name]
    base = generate(DAY, 300, 7, False)

    next_day = generate(DAY + dt.timedelta(days=1), 300, 7, False)
    other_seed = generate(DAY, 300, 8, False)

    assert not base[target].equals(next_day[target])
    assert not base[target].equals(other_seed[target])


@pytest.mark.parametrize("name", GENERATORS)
def test_a_batch_has_between_10_and_20_mixed_features_with_some_missing_values(name: str):
    generate, id_column, target = GENERATORS[name]

    frame = generate(DAY, 2000, 7, False)
    features = frame.drop(columns=[id_column, target])

    assert 10 <= features.shape[1] <= 20
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(features[c])]
    assert 0 < len(numeric) < features.shape[1]  # numeric and categorical
    assert features[numeric].isna().any().any()
    assert features.drop(columns=numeric).isna().any().any()
    assert frame[target].notna().all()
    assert frame[id_column].is_unique


def test_credit_default_columns_are_the_ones_its_config_declares(credit_config: PipelineConfig):
    frame = simulate.credit_default(DAY, 100, 7, False)

    declared = {f.name for f in credit_config.features}

    assert set(frame.columns) == declared | {credit_config.target, *credit_config.id_columns}


def test_credit_default_has_a_learnable_share_of_defaults():
    frame = simulate.credit_default(DAY, 4000, 7, False)

    assert set(frame["default"].unique()) == {0, 1}
    assert 0.08 < frame["default"].mean() < 0.25


def test_credit_drift_lowers_income_raises_utilisation_and_adds_a_channel():
    normal = simulate.credit_default(DAY, 4000, 7, False)
    drifted = simulate.credit_default(DAY, 4000, 7, True)

    assert drifted["income"].median() < 0.9 * normal["income"].median()
    assert drifted["utilization"].mean() > normal["utilization"].mean() + 0.05
    assert "bnpl_partner" not in set(normal["channel"])
    assert (drifted["channel"] == "bnpl_partner").mean() > 0.2


def test_house_drift_raises_prices_and_adds_a_neighbourhood():
    normal = simulate.house_prices(DAY, 4000, 11, False)
    drifted = simulate.house_prices(DAY, 4000, 11, True)

    assert drifted["price"].median() > 1.05 * normal["price"].median()
    assert "riverside" not in set(normal["neighbourhood"])
    assert "riverside" in set(drifted["neighbourhood"])


def test_write_batches_lands_one_file_per_day_with_the_requested_rows(credit_config: PipelineConfig, ml_home: Path):
    written = simulate.write_batches(credit_config, DAY, 3, rows=50)

    assert written == [ml_home / f"landing/credit_default/2026-01-0{d}.csv" for d in (1, 2, 3)]
    assert [len(pd.read_csv(p)) for p in written] == [50, 50, 50]
    assert sorted(p.name for p in written[0].parent.iterdir()) == [p.name for p in written]  # no temp files


def test_write_batches_uses_the_configured_file_format(house_config: PipelineConfig):
    (written,) = simulate.write_batches(house_config, DAY, 1, rows=50)

    assert written.suffix == ".parquet"
    assert len(pd.read_parquet(written)) == 50


def test_write_batches_rows_default_to_the_config(credit_config: PipelineConfig):
    config = credit_config.model_copy(
        update={"simulation": credit_config.simulation.model_copy(update={"rows_per_day": 37})}
    )

    (written,) = simulate.write_batches(config, DAY, 1)

    assert len(pd.read_csv(written)) == 37


def test_written_files_match_the_generator_output(house_config: PipelineConfig):
    (written,) = simulate.write_batches(house_config, DAY, 1, rows=60)

    expected = simulate.house_prices(DAY, 60, house_config.simulation.seed, False)

    pd.testing.assert_frame_equal(pd.read_parquet(written), expected, check_dtype=False)


def test_drift_switches_on_from_drift_from_and_stays_on(credit_config: PipelineConfig):
    written = simulate.write_batches(credit_config, DAY, 3, drift_from=DAY + dt.timedelta(days=1), rows=500)

    has_new_channel = [(pd.read_csv(p)["channel"] == "bnpl_partner").any() for p in written]

    assert has_new_channel == [False, True, True]


def test_drift_from_in_the_config_is_used_when_not_given(credit_config: PipelineConfig):
    simulation = credit_config.simulation.model_copy(update={"drift_from": DAY + dt.timedelta(days=1)})
    config = credit_config.model_copy(update={"simulation": simulation})

    written = simulate.write_batches(config, DAY, 2, rows=500)

    assert [(pd.read_csv(p)["channel"] == "bnpl_partner").any() for p in written] == [False, True]


def test_a_pipeline_without_a_simulation_section_cannot_be_simulated(credit_config: PipelineConfig):
    config = credit_config.model_copy(update={"simulation": None})

    with pytest.raises(ValueError, match="no 'simulation' section"):
        simulate.write_batches(config, DAY, 1)


def test_a_model_trained_on_one_simulated_day_is_good_but_not_perfect(credit_config: PipelineConfig):
    """The data carries a real signal (the gate of 0.70 is reachable) but is not trivially separable."""
    simulate.write_batches(credit_config, DAY, 1, rows=1500)
    workspace = paths.workspace_dir(credit_config.name, "auc-check")

    steps.extract(credit_config, workspace, DAY.isoformat())
    steps.validate(credit_config, workspace)
    steps.train(credit_config, workspace)
    evaluation = steps.evaluate(credit_config, workspace)

    assert evaluation["metric"] == "roc_auc"
    assert 0.75 <= evaluation["score"] <= 0.92
