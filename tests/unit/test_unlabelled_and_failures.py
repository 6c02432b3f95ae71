"""Rows without a target are left out of training and counted (or refuse the batch), and a run that
fails at a step is recorded: in the run history, in ``runs`` and on the monitoring page, with its
error and quarantine folder, until a successful rerun of the same run id replaces it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest

from include.ml import monitoring, simulate, steps
from include.ml.cli import main
from include.ml.config import PipelineConfig
from include.ml.errors import BatchValidationError

DAY1 = "2026-01-01"
ROWS = 800
RUN_ID = "scheduled__2026-01-01T00:00:00+00:00"


def land(config: PipelineConfig, frame: pd.DataFrame) -> None:
    path = config.source.path_for(DAY1)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def credit_batch() -> pd.DataFrame:
    return simulate.credit_default(pd.Timestamp(DAY1).date(), ROWS, seed=7, drifted=False)


def airflow_failure(step: str, error: Exception) -> dict:
    """The context Airflow gives a task's on_failure_callback after its last try: the library's error
    wrapped by ``fail_without_retry`` in an AirflowFailException."""
    from include.airflow_tasks import fail_without_retry

    try:
        with fail_without_retry():
            raise error
    except Exception as wrapped:  # AirflowFailException
        return {"ti": SimpleNamespace(task_id=step), "run_id": RUN_ID, "ds": DAY1, "exception": wrapped}
    raise AssertionError("fail_without_retry let the error through")


def runs_json(capsys, config: PipelineConfig) -> list[dict]:
    assert main(["runs", "--pipeline", config.name, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# -- unlabelled rows --------------------------------------------------------------------------


def test_rows_without_a_target_are_left_out_of_training_and_counted_in_the_run_summary(credit_config):
    frame = credit_batch()
    frame.loc[[3, 50, 400], "default"] = None
    land(credit_config, frame)

    results = steps.run_steps(credit_config, RUN_ID, DAY1)

    assert results["drift_check"]["branch"] == "promote"
    assert results["validate"]["unlabelled_rows"] == 3
    assert (results["report"]["rows"], results["report"]["unlabelled_rows"]) == (ROWS, 3)
    assert steps.run_history(credit_config)[-1]["unlabelled_rows"] == 3
    training = results["train"]
    assert training["train_rows"] + training["holdout_rows"] == ROWS - 3


def test_under_the_error_policy_rows_without_a_target_fail_the_run_saying_so(credit_config):
    config = credit_config.model_copy(update={"validation": credit_config.validation.model_copy(
        update={"unlabelled": "error"})})
    frame = credit_batch()
    frame.loc[[3], "default"] = None
    land(config, frame)

    with pytest.raises(BatchValidationError, match=r"column 'default': 1 rows \(0\.1%\) have no target value "
                                                   r"\(first rows: 3\); validation\.unlabelled is 'error'"):
        steps.run_steps(config, RUN_ID, DAY1)


# -- failed runs ------------------------------------------------------------------------------


def test_a_run_failing_validation_is_recorded_with_its_error_and_quarantine_until_a_rerun_replaces_it(
        credit_config, capsys):
    from include.airflow_tasks import FailedRunRecorder

    broken = credit_batch()
    broken.loc[5:24, "age"] = 7  # 2.5% of rows below the minimum: an error
    land(credit_config, broken)
    with pytest.raises(BatchValidationError) as caught:
        steps.run_steps(credit_config, RUN_ID, DAY1)

    FailedRunRecorder(credit_config)(airflow_failure("validate", caught.value))

    (line,) = runs_json(capsys, credit_config)
    assert (line["run_id"], line["state"], line["branch"], line["step"]) == (RUN_ID, "failed", "failed", "validate")
    assert line["error"] == "batch failed validation for pipeline 'credit_default' (1 problem(s)):"
    assert line["quarantined_to"] == caught.value.quarantined_to
    assert line["error_type"] == "BatchValidationError"
    assert main(["runs", "--pipeline", credit_config.name]) == 0
    text = capsys.readouterr().out
    assert f"failed at validate: {line['error']}; the batch was quarantined to {line['quarantined_to']}" in text
    (row,) = monitoring.pipeline_detail(credit_config)["runs"]
    assert (row["outcome"], row["airflow_state"], row["failed_step"]) == ("failed", "failed", "validate")
    assert (row["error"], row["quarantined_to"]) == (line["error"], line["quarantined_to"])
    assert steps.run_summaries(credit_config) == [] and len(steps.failed_runs(credit_config)) == 1

    land(credit_config, credit_batch())  # the corrected delivery, and the same run again
    results = steps.run_steps(credit_config, RUN_ID, DAY1)

    (line,) = runs_json(capsys, credit_config)
    assert line["branch"] == results["drift_check"]["branch"] == "promote" and "state" not in line
    (row,) = monitoring.pipeline_detail(credit_config)["runs"]
    assert row["outcome"] == "promote" and row["error"] is None
    assert steps.failed_runs(credit_config) == []


def test_a_failed_run_keeps_only_the_first_line_of_its_error_escaped_on_the_page(credit_config):
    steps.record_failure(credit_config, "manual__1", DAY1, "train", RuntimeError("<b>out of memory</b>\nstack..."))

    detail = monitoring.pipeline_detail(credit_config)
    page = monitoring.render_pipeline(detail)

    (row,) = detail["runs"]
    assert row["error"] == "<b>out of memory</b>" and row["quarantined_to"] is None
    assert "&lt;b&gt;out of memory&lt;/b&gt;" in page and "<b>out of memory" not in page
    assert detail["drift_heatmap"]["runs"] == []  # a failed run compared no feature


def test_the_failure_hook_never_raises(credit_config, monkeypatch):
    from include.airflow_tasks import FailedRunRecorder

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(steps, "record_failure", broken)

    FailedRunRecorder(credit_config)({"ti": SimpleNamespace(task_id="train"), "run_id": RUN_ID, "ds": DAY1,
                                      "exception": RuntimeError("boom")})
