"""Deadline alerts of the pipeline DAGs (``deadlines:`` in the config): a training run not finished, or a
scheduled scoring run without its predictions, a configured time after its logical date. Airflow's
scheduler checks them; the triggerer sends the email through ``SmtpNotifier`` (connection
``smtp_default``), with the words of :func:`include.ml.alerts.deadline_email`.

The reference is the run's logical date, so a run only waiting for a person cannot miss one: the
question is asked by the separate ``ml_decision__<pipeline>`` DAG, which has no deadline, once the
training run has finished. A run without a logical date (asset-triggered scoring) gets no deadline.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference

from include.ml import alerts
from include.ml.config import PipelineConfig

# what the notifier fills in when the deadline is missed: the callback receives only the run (the REST API's
# DAGRunResponse, as JSON) and the deadline
RUN, LOGICAL_DATE, DEADLINE = "{{ dag_run.dag_run_id }}", "{{ dag_run.logical_date }}", "{{ deadline.deadline_time }}"


def deadline_alerts(config: PipelineConfig, kind: Literal["training", "scoring"]) -> list[DeadlineAlert]:
    """The deadline alert of ``config``'s ``kind`` DAG, or none when ``deadlines.<kind>_minutes`` is unset."""
    minutes = config.deadlines.training_minutes if kind == "training" else config.deadlines.scoring_minutes
    if minutes is None:
        return []
    dag_id = config.dag_id if kind == "training" else config.scoring_dag_id
    email = alerts.deadline_email(kind, config.name, dag_id, minutes, RUN, LOGICAL_DATE, DEADLINE)
    return [DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE, interval=dt.timedelta(minutes=minutes),
        callback=AsyncCallback(SmtpNotifier, kwargs={
            "to": list(config.alerts.email), "from_email": config.alerts.from_email,
            "subject": email.subject, "html_content": email.html}),
        name=f"{kind} of {config.name} not finished {minutes:g} min after its logical date")]


def without_deadlines_in_dag_test(dag: DAG) -> DAG:
    """``dag`` whose ``dag.test()`` (and so ``airflow dags test``) runs without its deadline alerts.

    Airflow 3.3.2's ``dag.test()`` fails when a run of a DAG with a deadline alert ends: it looks the
    alerts up by the ids only the DAG processor assigns (``DagRun.update_state`` hands
    ``DeadlineAlertModel.get_by_id`` the alert itself). Deadlines are the scheduler's to check and
    ``dag.test()`` runs no scheduler, so its runs go without them; runs from a scheduler keep them.
    """
    if not dag.deadline:
        return dag
    run_test = dag.test

    def test(*args, **kwargs):
        alerts, dag.deadline = dag.deadline, None
        try:
            return run_test(*args, **kwargs)
        finally:
            dag.deadline = alerts

    dag.test = test
    return dag
