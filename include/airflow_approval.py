"""Airflow's side of a person's decision on a held candidate (``decision.drift_policy: approve``): the
Asset a hold emits to ask, the human-in-the-loop operator that asks in Required Actions, and where the
held run's id comes from. The words and what an answer does are :mod:`include.ml.approval`'s."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, AssetAlias, Param

from include.ml import approval
from include.ml.config import PipelineConfig
from include.ml.errors import DecisionRequestError


def decision_request_asset(pipeline: str) -> Asset:
    """The Asset whose events ask for a decision on one of ``pipeline``'s held candidates (extra: the
    held training run's ``run_id`` and the ``version``); the decision DAG is scheduled on it."""
    return Asset(f"ml_decision_request__{pipeline}")


def held_candidate_alias(pipeline: str) -> AssetAlias:
    """What the training DAG's hold task emits through: an event only when the hold asks for a decision."""
    return AssetAlias(f"ml_held_candidate__{pipeline}")


def held_run_id(context: dict[str, Any]) -> str:
    """The training run whose candidate a decision run is about: ``run_id`` of a manual trigger's conf,
    else of the newest event of the decision-request Asset that triggered the run."""
    dag_run = context["dag_run"]
    conf = getattr(dag_run, "conf", None) or {}
    if conf.get("run_id"):
        return str(conf["run_id"])
    events = [event for found in (context.get("triggering_asset_events") or {}).values() for event in found]
    for event in reversed(events):
        run_id = (getattr(event, "extra", None) or {}).get("run_id")
        if run_id:
            return str(run_id)
    raise DecisionRequestError(
        f"decision run {dag_run.run_id}: no training run to decide on; it is started by a hold's Asset event, "
        "or by hand with the conf {\"run_id\": \"<the held training run's id>\"}")


class DecisionRequest(HITLOperator):
    """Asks in Airflow's Required Actions whether to promote a held candidate or keep production.

    Subject and body are written at run time from the held run's workspace (:func:`approval.decision_request`);
    the options are :data:`approval.OPTIONS`, with one form field for the reason; with no answer within
    ``decision.response_timeout_hours`` (or a manual run's conf ``response_timeout_minutes``) the scheduler
    answers "Keep production" (with no user). Returns
    Airflow's answer (chosen options, params, who, when) for the next task.
    """

    def __init__(self, *, config: PipelineConfig, **kwargs: Any):
        from include.airflow_alerts import DecisionRequestEmail

        self.config = config
        self.request: dict | None = None  # what is asked, once execute has read it
        super().__init__(
            subject=f"Decision on a held candidate of {config.name}",
            options=list(approval.OPTIONS), defaults=[approval.KEEP], multiple=False,
            params={approval.REASON_PARAM: Param(
                "", type="string", title="Reason",
                description="why you promote or keep: it goes into the audit log with your name")},
            response_timeout=dt.timedelta(hours=config.decision.response_timeout_hours),
            notifiers=[DecisionRequestEmail(config.name, config.alerts.email, config.alerts.from_email)],
            **kwargs,
        )

    def execute(self, context):
        from include.airflow_tasks import fail_without_retry

        with fail_without_retry():
            self.request = approval.decision_request(self.config, held_run_id(context))
            minutes = approval.response_timeout_minutes(getattr(context["dag_run"], "conf", None) or {},
                                                        self.config)
        self.response_timeout = dt.timedelta(minutes=minutes)
        self.subject = approval.request_subject(self.request)
        self.body = approval.request_markdown(self.request, self.config.decision.response_timeout_hours)
        return super().execute(context)
