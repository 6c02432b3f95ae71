"""
### ML batch scoring (one DAG per config in `include/pipelines/`)

Runs when the pipeline's production model changes (its Asset) and every day at 06:00 UTC.
Lists the partition files delivered for the logical date in
`$ML_HOME/scoring/<pipeline>/<date>/` (with `scoring.query`, first reads the date's rows through the
query's Airflow connection into that folder as one partition), scores each in its own mapped task (so Celery workers
share the load) with the production model (sha256 checked), streaming in chunks, and writes
predictions to `$ML_HOME/predictions/<pipeline>/<date>/<partition>.parquet` with rejected rows
and their reasons beside them. A partition with more bad rows than `scoring.max_reject_share`
fails and publishes nothing. A summary task totals rows, rejects and the mean prediction, and
compares the predictions with those the model gave its holdout rows at training (prediction
drift: an email when they differ) and estimates the primary metric from the calibrated probabilities
(an email when the estimate is below the floor or the validation score, `performance:` settings).
"""

from __future__ import annotations

import logging

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from include.airflow_alerts import EstimatedPerformanceEmail, PredictionDriftEmail
from include.airflow_assets import production_asset
from include.airflow_deadlines import deadline_alerts, without_deadlines_in_dag_test
from include.airflow_tasks import dag_args, fail_without_retry, run_day, source_url
from include.ml.config import PipelineConfig, load_each


def build_scoring_dag(config: PipelineConfig):
    """The batch-scoring DAG of one pipeline config."""
    recipients, sender = config.alerts.email, config.alerts.from_email

    @dag(
        dag_id=config.scoring_dag_id,
        description=f"Score new {config.name} data with the production model.",
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
                                     assets=production_asset(config.name)),
        deadline=deadline_alerts(config, "scoring"),
        **dag_args(config, "scoring", __doc__),
    )
    def scoring() -> None:
        @task
        def list_partitions() -> list[str]:
            from include.ml.scoring import prepare_partitions

            with fail_without_retry():  # colliding names are the delivery's to fix; a late one still retries
                return prepare_partitions(config, run_day(get_current_context()), source_url(config.scoring.query))

        @task
        def score_partition(path: str) -> dict:
            from include.ml import scoring

            with fail_without_retry():
                return scoring.score_partition(config, path, run_day(get_current_context()))

        @task(on_success_callback=[PredictionDriftEmail(config.name, recipients, sender),
                                   EstimatedPerformanceEmail(config.name, recipients, sender)])
        def summarise(summaries: list[dict]) -> dict:
            from include.airflow_metrics import emit_scoring_metrics
            from include.ml import scoring

            context = get_current_context()
            summary = scoring.summarise(config, run_day(context), list(summaries), run_id=context["run_id"])
            emit_scoring_metrics(config.name, summary)  # rows, rejects (StatsD when on)
            return summary

        summarise(score_partition.expand(path=list_partitions()))

    return without_deadlines_in_dag_test(scoring())


_configs, _errors = load_each()
for _config in _configs:
    globals()[_config.scoring_dag_id] = build_scoring_dag(_config)
for _error in _errors:
    logging.getLogger(__name__).error("pipeline config skipped: %s", _error)
