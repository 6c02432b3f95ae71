"""A rerun of an earlier date with a training window (issue 16): later dates have run and been
archived since, yet the rerun trains on the same batches as then, so it finds the version that date
registered, reuses it and switches nothing.

Four days of credit_default with ``model.window_batches: 3``, then day 3 (no longer production) again
under another run id, as a cleared or re-triggered run is. A rerun of the production date is
tests/unit/test_training_window.py's.
"""

from __future__ import annotations

import datetime as dt

import yaml

from include.ml import simulate, steps
from include.ml.config import PipelineConfig
from include.ml.paths import PIPELINES_DIR

START = dt.date(2026, 1, 1)
DAYS = 4
WINDOW = 3
ROWS = 800


def window_config() -> PipelineConfig:
    raw = yaml.safe_load((PIPELINES_DIR / "credit_default.yaml").read_text())
    raw["model"]["window_batches"] = WINDOW
    return PipelineConfig.model_validate(raw)


RERUN_DAY = 3


def test_a_rerun_of_an_earlier_date_with_a_window_reuses_that_dates_version_and_switches_nothing():
    config = window_config()
    simulate.write_batches(config, START, DAYS, rows=ROWS)
    dates = [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    first = {ds: steps.run_steps(config, f"scheduled__{ds}T00:00:00+00:00", ds) for ds in dates}
    registry = steps.registry_for(config)
    production, versions = registry.production(), registry.versions()
    audit, pointer = registry.audit(), registry.pointer_path.read_bytes()
    ds = dates[RERUN_DAY - 1]
    assert first[ds]["train"]["train_rows"] > ROWS  # the window: more than the date's own batch

    rerun = steps.run_steps(config, f"manual__{ds}T06:00:00+00:00", ds)["conclude"]

    assert rerun["version"] == first[ds]["conclude"]["version"] != production
    assert rerun["reused_from_earlier_run"] is True
    assert rerun["switched"] is False
    assert registry.production() == production
    assert registry.versions() == versions
    assert registry.audit() == audit
    assert registry.pointer_path.read_bytes() == pointer
