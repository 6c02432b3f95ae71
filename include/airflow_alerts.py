"""Airflow callbacks that deliver the pipeline's alerts by email through ``SmtpNotifier``.

Each callback builds a fresh notifier per call (a notifier keeps what it rendered, so a shared
one would resend the first email's text), and sends through the ``smtp_default`` connection.
The words come from :mod:`include.ml.alerts`.
"""

from __future__ import annotations

import html
import logging
import re
import sys
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier

from include.ml import alerts, paths

log = logging.getLogger(__name__)


class _EmailCallback:
    def __init__(self, pipeline: str, recipients: list[str], from_email: str):
        self.pipeline = pipeline
        self.recipients = list(recipients)
        self.from_email = from_email

    def render(self, context: dict[str, Any]) -> alerts.Email | None:
        """The email for this event, or None when there is nothing to tell."""
        raise NotImplementedError

    def __call__(self, context: dict[str, Any]) -> None:
        email = self.render(context)
        if email is None:
            return
        to = ", ".join(self.recipients)
        # The alert's whole text goes to the task log whatever the mail server does: the log is its copy.
        log.info("alert for %s:\nSubject: %s\n%s", to, email.subject, _plain_text(email.html))
        notifier = SmtpNotifier(to=self.recipients, from_email=self.from_email,
                                subject=email.subject, html_content=email.html)
        try:
            # notify() rather than __call__: the text is final, it must not go through Jinja again.
            notifier.notify(context)
        except Exception as error:  # the mail server must not decide the run's state
            log.warning("alert email NOT delivered to %s (%s: %s). Subject: %s. Its text is logged above; check "
                        "the smtp_default connection (make airflow starts a local mail server)",
                        to, type(error).__name__, error, email.subject)
            return
        log.info("alert email sent to %s: %s", to, email.subject)


def _plain_text(markup: str) -> str:
    """The readable text of an alert's HTML body, one line per block, for the task log."""
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", "", markup)
    text = re.sub(r"(?i)<br\s*/?>|</(p|div|h[1-6]|li|tr|table|pre)>", "\n", text)
    text = re.sub(r"(?i)</t[hd]>", "  ", text)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _run_id(context: dict[str, Any]) -> str:
    if context.get("run_id"):
        return str(context["run_id"])
    dag_run = context.get("dag_run")
    return str(getattr(dag_run, "run_id", "unknown"))


class OutcomeEmail(_EmailCallback):
    """``on_success_callback`` of the promote, hold and reject tasks: emails the decision."""

    def render(self, context: dict[str, Any]) -> alerts.Email:
        ti = context["ti"]
        outcome = ti.xcom_pull(task_ids=ti.task_id)
        workspace = paths.run_workspace(self.pipeline, _run_id(context))
        drift = workspace.read_json_or_none(workspace.DRIFT)  # the full report; None before a comparison
        return alerts.outcome_email(outcome, drift, run_url=getattr(ti, "log_url", None))


class TaskFailureEmail(_EmailCallback):
    """``on_failure_callback`` of every task: names DAG, task, run, date and the error."""

    def render(self, context: dict[str, Any]) -> alerts.Email:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from include.ml.errors import ArtifactIntegrityError

        # only a scoring task can raise TooManyRejectsError, and it has imported the module then: other
        # tasks' callbacks skip importing scikit-learn (seconds on a busy machine, inside the task's
        # task_success_overtime)
        scoring = sys.modules.get("include.ml.scoring")
        too_many_rejects = getattr(scoring, "TooManyRejectsError", None)
        ti = context["ti"]
        exception = context.get("exception")

        def caused_by(kind: type) -> bool:
            return isinstance(exception, kind) or isinstance(getattr(exception, "__cause__", None), kind)

        event = ("artifact_tampered" if caused_by(ArtifactIntegrityError)
                 else "scoring_rejects" if too_many_rejects and caused_by(too_many_rejects)
                 else "batch_late" if isinstance(exception, AirflowSensorTimeout) else "task_failed")
        return alerts.task_failure_email(
            self.pipeline, ti.dag_id, ti.task_id, _run_id(context), context.get("ds"),
            error=f"{type(exception).__name__}: {exception}" if exception is not None
            else "no exception was recorded (the task was killed or timed out); see the task log",
            try_number=getattr(ti, "try_number", None), log_url=getattr(ti, "log_url", None),
            event=event,
        )


class RunFailureEmail(_EmailCallback):
    """``on_failure_callback`` of the DAG: one email for the failed run."""

    def render(self, context: dict[str, Any]) -> alerts.Email:
        dag = context.get("dag")
        ti = context.get("ti")
        return alerts.run_failure_email(
            self.pipeline, getattr(dag, "dag_id", "unknown"), _run_id(context), context.get("ds"),
            failed_tasks=[ti.task_id] if ti is not None else [], reason=context.get("reason"),
        )


class ProductionChangeEmail(_EmailCallback):
    """``on_success_callback`` of the model-operations switch: who changed production, how and why."""

    def render(self, context: dict[str, Any]) -> alerts.Email:
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=ti.task_id)
        return alerts.production_change_email(result["pipeline"], result["entry"], _run_id(context),
                                              result.get("extra"))


class PerformanceEmail(_EmailCallback):
    """``on_success_callback`` of the labels task: emails when a realised metric fell too low."""

    def render(self, context: dict[str, Any]) -> alerts.Email | None:
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=ti.task_id)
        return alerts.performance_email(result) if result and result.get("breaches") else None


class EstimatedPerformanceEmail(_EmailCallback):
    """``on_success_callback`` of the scoring summary: emails when the estimated metric fell too low."""

    def render(self, context: dict[str, Any]) -> alerts.Email | None:
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=ti.task_id)
        return alerts.estimated_performance_email(summary) if summary and alerts.estimate_breaches(summary) else None


class PredictionDriftEmail(_EmailCallback):
    """``on_success_callback`` of the scoring summary: emails when the predictions drifted."""

    def render(self, context: dict[str, Any]) -> alerts.Email | None:
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=ti.task_id)
        drift = (summary or {}).get("prediction_drift") or {}
        return alerts.prediction_drift_email(summary) if drift.get("verdict") == "drift" else None


class DecisionRequestEmail(_EmailCallback):
    """Notifier of the decision request (:class:`include.airflow_approval.DecisionRequest`): emails what is
    asked, with the link to its Required Action in the Airflow UI and the time no answer keeps production."""

    def render(self, context: dict[str, Any]) -> alerts.Email:
        import datetime as dt

        from include.ml.monitoring import Links

        task, ti = context["task"], context["ti"]
        url = task.generate_link_to_ui(task_instance=ti, base_url=Links.from_env().airflow)
        timeout_at = (dt.datetime.now(dt.UTC) + task.response_timeout).isoformat(timespec="minutes") \
            if task.response_timeout else None
        return alerts.decision_request_email(task.request, url, timeout_at)


class DecisionAnswerEmail(_EmailCallback):
    """``on_success_callback`` of the task that carries out an answer: who chose what, or that nobody
    answered in time and production was kept."""

    def render(self, context: dict[str, Any]) -> alerts.Email:
        ti = context["ti"]
        return alerts.decision_answer_email(ti.xcom_pull(task_ids=ti.task_id))
