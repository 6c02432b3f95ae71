"""
### ML realised performance (one DAG per config in `include/pipelines/`)

Daily at 12:00 UTC: picks up the labels delivered for the logical date in
`$ML_HOME/labels/<pipeline>/` (files `<date>*.csv|parquet` with the id columns and the actual
target, arriving days after scoring), joins them by id with the predictions stored by the
batch-scoring DAG over the last `performance.lookback_days` days, computes the primary metric per
model version and scoring date, and records it in the registry's `performance.jsonl`. An email
goes out when a group is worse than the floor (`performance.floor`, else `gates.min_score`) or
worse than its version's validation score by more than `performance.max_drop`.
"""

from __future__ import annotations

import logging

from airflow.sdk import CronTriggerTimetable, dag, get_current_context, task

from include.airflow_alerts import PerformanceEmail
from include.airflow_tasks import dag_args, fail_without_retry, run_day
from include.ml.config import PipelineConfig, load_each


def build_performance_dag(config: PipelineConfig):
    """The realised-performance DAG of one pipeline config."""
    recipients, sender = config.alerts.email, config.alerts.from_email

    @dag(
        dag_id=config.performance_dag_id,
        description=f"Realised {config.metric} of {config.name} once labels arrive.",
        schedule=CronTriggerTimetable("0 12 * * *", timezone="UTC"),
        **dag_args(config, "monitoring", __doc__),
    )
    def performance() -> None:
        @task(on_success_callback=PerformanceEmail(config.name, recipients, sender))
        def measure() -> dict:
            from include.airflow_metrics import emit_performance_metrics
            from include.ml import performance

            context = get_current_context()
            ds = run_day(context)

            with fail_without_retry():
                result = performance.measure(config, ds, run_id=context["run_id"])
            for record in result["records"]:
                emit_performance_metrics(config.name, record)  # realised metric per version (StatsD when on)
            logging.getLogger(__name__).info(
                "labels of %s: %d row(s), %d matched; %d group(s), %d below expectations", ds,
                result["labelled_rows"], result["matched_rows"], len(result["records"]), len(result["breaches"]))
            return result

        measure()

    return performance()


_configs, _errors = load_each()
for _config in _configs:
    globals()[_config.performance_dag_id] = build_performance_dag(_config)
for _error in _errors:
    logging.getLogger(__name__).error("pipeline config skipped: %s", _error)
