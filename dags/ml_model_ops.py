"""
### ML model operations: promote or roll back a production model by hand

Trigger with the form: choose the **pipeline**, the **action** and, for `promote` (optional for
`rollback`), the **version**, and give a **reason** (kept in the audit log and the email).

- `promote`: point production at a registered version (e.g. a candidate held for drift).
- `rollback`: point production back at the version it replaced, or at the version given.

The request is checked against the registry first (`check_request`, `model_ops.plan_change`): a
version that does not exist, anything that is not a version id, an empty reason or a version
already in production is refused with a clear message and nothing changes. The switch
(`switch_production`, `model_ops.apply_change`) is a compare-and-swap: if production moved
meanwhile, nothing changes. A change emits the pipeline's production-model Asset event and an
email. The same operations on the command line, through the same two functions:
`python -m include.ml models promote|rollback|history --pipeline NAME`.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from airflow.sdk import Param, dag, get_current_context, task

from include.airflow_alerts import ProductionChangeEmail, TaskFailureEmail
from include.airflow_assets import event_extra, production_asset, production_change
from include.ml.config import AlertConfig, load_each
from include.ml.model_ops import ACTIONS

_configs, _errors = load_each()  # a broken pipeline config must not take the rollback tool down
CONFIGS = {c.name: c for c in _configs}
RECIPIENTS = sorted({address for c in CONFIGS.values() for address in c.alerts.email}) or ["ml-oncall@example.com"]
SENDER = next((c.alerts.from_email for c in CONFIGS.values()), AlertConfig.model_fields["from_email"].default)
for _error in _errors:
    logging.getLogger(__name__).error("pipeline config skipped: %s", _error)


def _config(pipeline: str):
    from airflow.sdk.exceptions import AirflowFailException

    if pipeline not in CONFIGS:
        raise AirflowFailException(f"unknown pipeline {pipeline!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[pipeline]


@dag(
    dag_id=Path(__file__).stem,
    description=__doc__.strip().splitlines()[0].removeprefix("### "),
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ml", "operations"],
    doc_md=__doc__,
    default_args={
        "owner": "ml-platform",
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "on_failure_callback": TaskFailureEmail("model-ops", RECIPIENTS, SENDER),
    },
    # The trigger form (Airflow 3.3.2 renders these JSON-schema Params): no default action or pipeline, so
    # the person picks both (the form marks an empty required field and keeps Trigger disabled until it is
    # filled); the version may stay empty (null) for a rollback; no `pattern` or `minLength`, whose raw
    # messages the form would show: check_request refuses a malformed version or an empty reason in words.
    params={
        "pipeline": Param(None, type="string", enum=sorted(CONFIGS) or [""], title="Pipeline",
                          description="the pipeline whose production model changes"),
        "action": Param(None, type="string", enum=list(ACTIONS), title="Action",
                        values_display={"promote": "promote: make the version below production",
                                        "rollback": "rollback: back to the version production replaced "
                                                    "(or the version below)"},
                        description="promote a registered version, or roll production back"),
        "version": Param(None, type=["null", "string"], title="Version",
                         description="a version id such as v0003: needed to promote; for a rollback leave it "
                                     "empty to go back to the version production replaced"),
        "reason": Param("", type="string", title="Reason",
                        description="required: why, in a few words (kept in the audit log and sent in the "
                                    "email)"),
    },
)
def ml_model_ops() -> None:
    @task
    def check_request() -> dict:
        """Plan the change (``model_ops.plan_change``): refuse an unknown pipeline, a malformed or unknown
        version, an empty reason or a version already in production, before any change."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.ml import model_ops
        from include.ml.errors import PipelineError

        context = get_current_context()
        params, dag_run = context["params"], context["dag_run"]
        actor = f"{getattr(dag_run, 'triggering_user_name', None) or 'unknown user'} via {context['run_id']}"
        try:
            # the form's empty version means "not given" (for a rollback: the version production replaced)
            plan = model_ops.plan_change(_config(params["pipeline"]), params["action"], params.get("version") or None,
                                         params.get("reason") or "", actor)
        except PipelineError as error:
            raise AirflowFailException(f"request refused, production unchanged: {error}") from error
        return plan.to_dict()

    @task(outlets=[production_change(name) for name in CONFIGS],  # the pipeline is picked at run time
          on_success_callback=ProductionChangeEmail("model-ops", RECIPIENTS, SENDER))
    def switch_production(plan: dict) -> dict:
        """Apply the plan (``model_ops.apply_change``, a compare-and-swap); record the Asset event of the
        pipeline's model."""
        from airflow.sdk.exceptions import AirflowFailException

        from include.airflow_metrics import emit_manual_promotion, emit_rollback
        from include.ml import model_ops
        from include.ml.errors import PipelineError
        from include.ml.steps import registry_for

        change = model_ops.ProductionChange.model_validate(plan)
        config = _config(change.pipeline)
        try:
            entry = model_ops.apply_change(config, change)
        except PipelineError as error:
            raise AirflowFailException(str(error)) from error
        (emit_rollback if change.action == "rollback" else emit_manual_promotion)(change.pipeline)
        extra = event_extra(registry_for(config), change.to_version, change.action, change.actor)
        alias = production_change(change.pipeline)
        get_current_context()["outlet_events"][alias].add(production_asset(change.pipeline), extra=extra)
        return {"pipeline": change.pipeline, "entry": entry, "extra": extra}

    switch_production(check_request())


ml_model_ops()
