"""The training run's wait for its batch: a deferrable sensor on the landing file of the run's logical
date (``source.path`` of the config, filled in by :meth:`~include.ml.config.SourceConfig.path_for`).

While the file is missing the task is *deferred*: the triggerer polls for it and no worker slot is held.
After ``airflow.batch_wait_minutes`` (or the run's ``batch_wait_minutes`` parameter) the task fails
with no retry, and its failure email is the "batch late" alert (RUNBOOK.md#alert-batch-late).
"""

from __future__ import annotations

import glob
from typing import Any

from airflow.providers.standard.sensors.filesystem import FileSensor
from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout

from include.ml.config import PipelineConfig

WAIT_TASK = "wait_for_batch"
WAIT_PARAM = "batch_wait_minutes"  # the run's own wait, in the trigger form (default: the config's)
POKE_SECONDS = 30  # how often the triggerer looks for the file: a stat every 30 s costs nothing


def logical_day(context) -> str:
    """The run's logical date as YYYY-MM-DD; a run triggered without one cannot pick a batch."""
    if not context.get("ds"):
        raise AirflowFailException("this run has no logical date, so no batch can be chosen: trigger it with a "
                                   "logical date (the date of the batch to train on)")
    return context["ds"]


def batch_wait_params(config: PipelineConfig) -> dict[str, Param]:
    """The training DAG's trigger-form parameter: how long this run waits for its batch."""
    return {WAIT_PARAM: Param(
        config.airflow.batch_wait_minutes, type="number", exclusiveMinimum=0, title="Wait for the batch (minutes)",
        description="How long this run waits for the landing file of its logical date before it fails with a "
                    "'batch late' alert (airflow.batch_wait_minutes of the config). The wait holds no worker slot.")}


class BatchSensor(FileSensor):
    """Waits, deferred, for the landing file of the run's logical date; its rendered ``filepath`` (the
    Rendered Template tab) shows which file, hence which date, the run reads. No ``fs_default``
    connection is needed: the path is the config's, absolute under the data root."""

    def __init__(self, *, config: PipelineConfig, **kwargs: Any):
        super().__init__(filepath=config.source.path, deferrable=True, poke_interval=POKE_SECONDS,
                         timeout=config.airflow.batch_wait_minutes * 60, **kwargs)
        self.config = config

    @property
    def path(self) -> str:  # FileSensor's joins an fs_default base path; ours is absolute already
        return glob.escape(self.filepath)

    def render_template_fields(self, context, jinja_env=None) -> None:
        """The landing file of this run's logical date, from the one place paths are made."""
        super().render_template_fields(context, jinja_env)
        self.filepath = str(self.config.source.path_for(logical_day(context)))

    def execute(self, context) -> None:
        minutes = float(context["params"].get(WAIT_PARAM, self.config.airflow.batch_wait_minutes))
        self.timeout = minutes * 60
        self.log.info("the batch of %s is read from %s; waiting up to %g minute(s) for it (deferred: no worker "
                      "slot is held while waiting)", context["ds"], self.filepath, minutes)
        super().execute(context)
        self.log.info("the batch of %s is there: %s", context["ds"], self.filepath)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context) -> None:
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as timeout:
            minutes = float(context["params"].get(WAIT_PARAM, self.config.airflow.batch_wait_minutes))
            raise AirflowSensorTimeout(
                f"batch late: no file arrived at {self.filepath} for {context['ds']} within {minutes:g} minute(s) "
                f"(airflow.batch_wait_minutes of {self.config.name}). Ask the upstream owner when the delivery "
                f"comes; once it is there, clear this task (or trigger the date again).") from timeout
