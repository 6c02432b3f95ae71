"""Each training step says in plain words, in its log, what it read, what validation found, what it
trained, how the candidate scored and what was decided and why (Airflow copies these lines into the
task log)."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from include.ml import simulate, steps
from include.ml.errors import BatchValidationError
from include.ml.storage import sha256_file
from tests.unit.conftest import DAY1, ROWS, run_training_day


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == steps.log.name]


def test_a_first_run_logs_its_batch_validation_training_scores_and_decision(credit_config, caplog):
    landed = simulate.write_batches(credit_config, DAY1, 1, rows=ROWS)
    caplog.set_level(logging.INFO, logger=steps.log.name)

    summary = run_training_day(credit_config, DAY1.isoformat())

    lines = _lines(caplog)
    read = next(line for line in lines if line.startswith("read the batch of 2026-01-01"))
    assert str(landed[0]) in read and f"{ROWS} rows" in read and sha256_file(landed[0]) in read
    assert any(line.startswith(f"validation passed: {ROWS} of {ROWS} rows kept") for line in lines)
    trained = next(line for line in lines if line.startswith("trained "))
    assert credit_config.model.estimator in trained and " s (seed " in trained and "rows held out" in trained
    evaluated = next(line for line in lines if line.startswith("evaluated on "))
    assert f"candidate {credit_config.metric} {summary['score']:.4f}" in evaluated
    assert "production none yet" in evaluated and "quality gates passed" in evaluated
    assert "decision: promote, because quality gates passed; first model" in lines
    assert "promote: v0001 registered; production switched from none to v0001" in lines
    finished = "run scheduled__2026-01-01T00:00:00+00:00 of 2026-01-01: promote v0001"
    assert any(line.startswith(finished) for line in lines)


def test_a_drifted_day_logs_the_drifted_features_and_why_it_was_held(credit_config, caplog):
    simulate.write_batches(credit_config, DAY1, 2, drift_from=DAY1 + dt.timedelta(days=1), rows=ROWS)
    run_training_day(credit_config, DAY1.isoformat())
    caplog.set_level(logging.INFO, logger=steps.log.name)

    run_training_day(credit_config, (DAY1 + dt.timedelta(days=1)).isoformat())

    lines = _lines(caplog)
    drift = next(line for line in lines if line.startswith("drift against production v0001: drift (drifted: "))
    assert "channel" in drift or "income" in drift or "utilization" in drift, drift
    assert any(line.startswith("decision: hold, because input drift against production v0001") for line in lines)
    assert "hold: v0002 registered; production stays v0001" in lines


def test_a_refused_batch_is_logged_as_a_warning_with_its_quarantine_folder(credit_config, caplog):
    frame = simulate.credit_default(DAY1, ROWS, 7, False)
    frame.loc[5:24, "age"] = 7  # more out-of-range rows than the config allows
    landing = credit_config.source.path_for(DAY1.isoformat())
    landing.parent.mkdir(parents=True)
    frame.to_csv(landing, index=False)
    caplog.set_level(logging.INFO, logger=steps.log.name)

    with pytest.raises(BatchValidationError):
        run_training_day(credit_config, DAY1.isoformat())

    warning = next(r for r in caplog.records if r.name == steps.log.name and r.levelno == logging.WARNING)
    assert warning.getMessage().startswith(f"validation refused the batch of 2026-01-01 ({ROWS} rows): ")
    assert "copied to quarantine " in warning.getMessage()
