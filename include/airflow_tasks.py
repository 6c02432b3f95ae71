"""What every pipeline DAG shares: its DAG arguments and task defaults from the config, and the rule
that errors retrying cannot fix (bad input, a broken config, a refused registry change) fail at once."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from include.airflow_alerts import RunFailureEmail, TaskFailureEmail
from include.ml.config import PipelineConfig


def default_args(config: PipelineConfig) -> dict:
    """Owner, retries with exponential backoff, timeout and the failure email, from ``config.airflow``."""
    settings = config.airflow
    return {
        "owner": settings.owner,
        "retries": settings.retries,
        "retry_delay": dt.timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(seconds=settings.max_retry_delay_seconds),
        "execution_timeout": dt.timedelta(minutes=settings.task_timeout_minutes),
        "on_failure_callback": TaskFailureEmail(config.name, config.alerts.email, config.alerts.from_email),
    }


def dag_args(config: PipelineConfig, kind: str, doc_md: str) -> dict:
    """The ``@dag`` arguments every pipeline DAG of ``config`` shares: start date, no catch-up, one
    active run, tags (``ml``, ``kind``, the task and the config's), docs, task defaults and the
    run-failure email."""
    settings = config.airflow
    return {
        "start_date": dt.datetime.combine(settings.start_date, dt.time(), tzinfo=dt.UTC),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["ml", kind, config.task, *settings.tags],
        "doc_md": doc_md,
        "default_args": default_args(config),
        "on_failure_callback": RunFailureEmail(config.name, config.alerts.email, config.alerts.from_email),
    }


def run_day(context) -> str:
    """The run's logical date as YYYY-MM-DD, or the day it was created for (an Asset-triggered or
    manual run without a logical date)."""
    if context.get("ds"):
        return context["ds"]
    return context["dag_run"].run_after.date().isoformat()


@contextlib.contextmanager
def fail_without_retry() -> Iterator[None]:
    """Turn the library's non-transient errors into ``AirflowFailException`` (no retries)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.ml.errors import ConfigError, InputDataError, RegistryError

    try:
        yield
    except (InputDataError, ConfigError, RegistryError) as error:
        raise AirflowFailException(str(error)) from error
