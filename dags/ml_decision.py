"""
### ML decision on a held candidate (one DAG per pipeline with `decision.drift_policy: approve`)

When the training DAG holds a candidate for input drift, its `hold` task emits an event of this
pipeline's decision-request Asset, and this DAG asks a person in Airflow's **Required Actions**
(Browse → Required Actions, or the run's task): **Promote candidate** or **Keep production**, with a
reason. The request shows the version pair, the champion/challenger comparison with its interval, the
drift table worst first and links to the held run and the monitoring page, and it is emailed to the
config's recipients with a link to it.

```
decide (waits for a person, no worker slot) → apply (compare-and-swap, audit log, Asset event, email)
```

The answer switches production through the registry's compare-and-swap, with the answering user as
the actor and the reason in the audit log; a second answer is refused by Airflow (409), and a promote
after production moved switches nothing. With no answer within `decision.response_timeout_hours`,
production is kept and the email says so. The training run has finished by then, so waiting here
holds back no training run, and no training deadline fires on it.
Start one by hand with the conf `{"run_id": "<the held training run's id>"}` (and, to wait less than the
config says, `"response_timeout_minutes": <minutes>`). See RUNBOOK.md.
"""

from __future__ import annotations

import logging

from airflow.sdk import DAG, dag, get_current_context, task

from include.airflow_alerts import DecisionAnswerEmail
from include.airflow_approval import DecisionRequest, decision_request_asset, held_run_id
from include.airflow_assets import event_extra, production_asset, production_change
from include.airflow_tasks import dag_args, fail_without_retry
from include.ml import approval
from include.ml.config import PipelineConfig, load_each

MAX_OPEN_DECISIONS = 32  # decision runs of one pipeline waiting at once; waiting holds no worker slot


def build_decision_dag(config: PipelineConfig) -> DAG:
    """The decision DAG of one pipeline config."""

    @dag(
        dag_id=approval.decision_dag_id(config.name),
        description=f"Ask a person to promote or keep a held candidate of {config.name}.",
        schedule=[decision_request_asset(config.name)],
        **{**dag_args(config, "decision", f"{__doc__}\n#### This pipeline: `{config.name}`\n\nNo answer within "
                                          f"{config.decision.response_timeout_hours:g} h keeps production."),
           "max_active_runs": MAX_OPEN_DECISIONS},
    )
    def decision() -> None:
        asked = DecisionRequest(task_id=approval.DECISION_TASK, config=config)

        @task(outlets=[production_change(config.name)], on_success_callback=DecisionAnswerEmail(
            config.name, config.alerts.email, config.alerts.from_email))
        def apply(answer: dict) -> dict:
            from include.ml.steps import registry_for

            context = get_current_context()
            user = answer.get("responded_by_user") or None
            with fail_without_retry():
                result = approval.apply_answer(
                    config, held_run_id(context), answer.get("chosen_options") or [],
                    (user.get("name") or user.get("id")) if user else None,
                    (answer.get("params_input") or {}).get(approval.REASON_PARAM) or "", context["run_id"])
            if result["switched"]:
                extra = event_extra(registry_for(config), result["version"], "promote", result["actor"])
                alias = production_change(config.name)
                context["outlet_events"][alias].add(production_asset(config.name), extra=extra)
            return result

        apply(asked.output)

    return decision()


_configs, _errors = load_each()
for _config in _configs:
    if _config.decision.drift_policy == "approve":
        globals()[approval.decision_dag_id(_config.name)] = build_decision_dag(_config)
for _error in _errors:  # the training DAG file logs these too; `python -m include.ml config check` shows them
    logging.getLogger(__name__).debug("pipeline config skipped: %s", _error)
