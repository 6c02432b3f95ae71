"""
### ML training pipeline (one DAG per config in `include/pipelines/`)

Daily: wait for the batch of the logical date to land (deferred, up to `airflow.batch_wait_minutes`;
then a "batch late" alert), read it from the landing folder (or, with a `sql` source, the
rows its query returns through the config's Airflow connection), validate it, train a
candidate, score it against the production model on the same holdout, check the batch for drift
against the production model's training data, then **promote**, **hold** (drift: registered,
not promoted, a person decides) or **reject** (a quality gate failed), and report.

```text
extract → validate → train → evaluate → drift_check ─┬▶ promote ─┐
                                                     ├▶ hold ────┼▶ report
                                                     └▶ reject ──┘
```

Tasks exchange small JSON through XCom; data and models live in the run's workspace
(`$ML_HOME/runs/<pipeline>/<run_id>/`) and in the registry (`$ML_HOME/registry/<pipeline>/`).
Bad input fails at once without retries and the batch is quarantined; other errors retry with
exponential backoff. Emails go to the config's recipients through `smtp_default`.
See [RUNBOOK.md](/ml-models/runbook) for what each alert means.
"""

from __future__ import annotations

import logging

from airflow.sdk import DAG, dag, get_current_context, task

from include.airflow_alerts import OutcomeEmail
from include.airflow_approval import decision_request_asset, held_candidate_alias
from include.airflow_assets import event_extra, production_asset, production_change
from include.airflow_batch_wait import WAIT_TASK, BatchSensor, batch_wait_params, logical_day
from include.airflow_deadlines import deadline_alerts, without_deadlines_in_dag_test
from include.airflow_tasks import dag_args, fail_without_retry, source_url
from include.ml import steps
from include.ml.config import PipelineConfig, SourceConfig, load_each


def _run(step: str, config: PipelineConfig, branch: str | None = None) -> dict:
    """Run the step ``step`` of ``include.ml.steps.STEPS`` in this run's workspace; bad input fails
    without retries."""
    from include.ml import paths

    context = get_current_context()
    bundle = getattr(context["ti"], "bundle_instance", None)  # a versioned bundle pins the code
    workspace = paths.workspace_dir(config.name, context["run_id"])
    with fail_without_retry():
        return steps.run_step(step, config, workspace, context["run_id"], logical_day(context), branch=branch,
                              bundle_version=getattr(bundle, "version", None),
                              source_url=source_url(config.source) if step == steps.STEPS[0] else None)


def build_training_dag(config: PipelineConfig) -> DAG:
    """The training DAG of one pipeline config."""
    settings = config.airflow
    recipients, sender = config.alerts.email, config.alerts.from_email
    outcome_email = OutcomeEmail(config.name, recipients, sender)

    @dag(
        dag_id=config.dag_id,
        description=config.description or f"Train, check and promote the {config.name} model.",
        schedule=settings.schedule,
        params=batch_wait_params(config) if isinstance(config.source, SourceConfig) else {},
        deadline=deadline_alerts(config, "training"),
        **dag_args(config, "training",
                   f"{__doc__}\n#### This pipeline: `{config.name}`\n\n{config.description}\n\n"
                   f"{config.task} of `{config.target}` with `{config.model.described}`; "
                   f"primary metric `{config.metric}`, "
                   f"minimum {config.gates.min_score:g}, allowed regression against production "
                   f"{config.gates.max_regression:g}; drift gated by {config.drift.numeric_statistic} (numeric) and "
                   f"{config.drift.categorical_statistic} (categorical) above sampling noise. "
                   f"Config: `include/pipelines/{config.name}.yaml`."),
    )
    def training() -> None:
        @task
        def extract() -> dict:
            return _run("extract", config)

        @task
        def validate(extracted: dict) -> dict:
            return _run("validate", config)

        @task
        def train(validated: dict) -> dict:
            return _run("train", config)

        @task
        def evaluate(trained: dict) -> dict:
            return _run("evaluate", config)

        @task.branch
        def drift_check(evaluation: dict) -> str:
            decision = _run("drift_check", config)
            get_current_context()["ti"].xcom_push(key="drift", value=decision["drift"])
            return decision["branch"]

        def conclude(branch: str):
            # through aliases, so an event is recorded only when production really changed, or a
            # hold asks a person (drift_policy approve: the ml_decision DAG asks, this run ends)
            asks = held_candidate_alias(config.name)
            @task(task_id=branch, on_success_callback=outcome_email,
                  outlets={"promote": [production_change(config.name)], "hold": [asks]}.get(branch, []))
            def _conclude() -> dict:
                context = get_current_context()
                outcome = _run(steps.BRANCH_STEP, config, branch)
                if outcome["switched"]:
                    extra = event_extra(steps.registry_for(config), outcome["version"], "promote", context["run_id"])
                    alias = production_change(config.name)
                    context["outlet_events"][alias].add(production_asset(config.name), extra=extra)
                if outcome["decision_requested"]:
                    context["outlet_events"][asks].add(decision_request_asset(config.name), extra={
                        "run_id": outcome["run_id"], "version": outcome["version"]})
                return outcome

            return _conclude()

        @task(trigger_rule="none_failed_min_one_success")
        def report() -> dict:
            from include.airflow_metrics import emit_training_metrics

            summary = _run("report", config)
            emit_training_metrics(config.name, summary)  # gauges and the branch's counter (StatsD when on)
            return summary

        extracted = extract()
        if isinstance(config.source, SourceConfig):  # a landing file: wait for it, deferred (no worker slot)
            BatchSensor(task_id=WAIT_TASK, config=config) >> extracted
        branch = drift_check(evaluate(train(validate(extracted))))
        outcomes = [conclude(name) for name in steps.BRANCHES]
        branch >> outcomes
        outcomes >> report()

    return without_deadlines_in_dag_test(training())


_configs, _errors = load_each()
for _config in _configs:
    globals()[_config.dag_id] = build_training_dag(_config)
for _error in _errors:  # the other pipelines keep their DAGs; `python -m include.ml config check` shows this too
    logging.getLogger(__name__).error("pipeline config skipped: %s", _error)
