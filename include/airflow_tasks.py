"""What every pipeline DAG shares: its DAG arguments and task defaults from the config, and the rule
that errors retrying cannot fix (bad input, a broken config, a refused registry change) fail at once."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import Iterator

from include.airflow_alerts import RunFailureEmail, TaskFailureEmail
from include.ml.config import PipelineConfig

log = logging.getLogger(__name__)


class FailedRunRecorder:
    """``on_failure_callback`` of the training tasks (Airflow calls it once a task has failed for good,
    after its last try): records the run as failed in the pipeline's run history, with the step, the
    error and the quarantine folder (:func:`include.ml.steps.record_failure`). Never raises: the
    failure email and the run's state must not depend on it."""

    def __init__(self, config: PipelineConfig):
        self.config = config

    def __call__(self, context) -> None:
        from include.ml import steps

        ti = context.get("ti")
        run_id = context.get("run_id") or getattr(context.get("dag_run"), "run_id", None)
        error = context.get("exception")
        try:
            steps.record_failure(self.config, str(run_id), run_day(context), getattr(ti, "task_id", "unknown"),
                                 error if error is not None else "no exception was recorded (the task was killed or "
                                                                 "timed out); see the task log")
        except Exception:  # recording is best effort; the task log keeps the error either way
            log.exception("could not record the failed run %s of %s in its run history", run_id, self.config.name)


def default_args(config: PipelineConfig, record_failures: bool = False) -> dict:
    """Owner, retries with exponential backoff, timeout and the failure email, from ``config.airflow``;
    with ``record_failures`` (training) a task that fails for good also records the run as failed."""
    settings = config.airflow
    on_failure = TaskFailureEmail(config.name, config.alerts.email, config.alerts.from_email)
    return {
        "owner": settings.owner,
        "retries": settings.retries,
        "retry_delay": dt.timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(seconds=settings.max_retry_delay_seconds),
        "execution_timeout": dt.timedelta(minutes=settings.task_timeout_minutes),
        "on_failure_callback": [on_failure, FailedRunRecorder(config)] if record_failures else on_failure,
    }


def dag_args(config: PipelineConfig, kind: str, doc_md: str) -> dict:
    """The ``@dag`` arguments every pipeline DAG of ``config`` shares: start date, no catch-up,
    ``airflow.max_active_runs`` runs at once (so a run waiting for a late batch blocks neither the next
    date nor a person's run), tags (``ml``, ``kind``, the task and the config's), docs, task defaults and
    the run-failure email."""
    settings = config.airflow
    return {
        "start_date": dt.datetime.combine(settings.start_date, dt.time(), tzinfo=dt.UTC),
        "catchup": False,
        "max_active_runs": settings.max_active_runs,
        "tags": ["ml", kind, config.task, *settings.tags],
        "doc_md": doc_md,
        "default_args": default_args(config, record_failures=kind == "training"),
        "on_failure_callback": RunFailureEmail(config.name, config.alerts.email, config.alerts.from_email),
    }


def run_day(context) -> str:
    """The run's logical date as YYYY-MM-DD, or the day it was created for (an Asset-triggered or
    manual run without a logical date)."""
    if context.get("ds"):
        return context["ds"]
    return context["dag_run"].run_after.date().isoformat()


SIGNING_CONNECTION = "ml_signing_key"  # its password: the model signing key (include/ml/signing.py)


def signing_key_from_connection() -> None:
    """At task time, never while parsing: when neither ``ML_SIGNING_KEY`` nor ``ML_SIGNING_KEY_FILE``
    is set, take the key from the password of the ``ml_signing_key`` connection (or a secrets backend
    that serves it). Without one, the library's error says how to create a key."""
    if os.environ.get("ML_SIGNING_KEY") or os.environ.get("ML_SIGNING_KEY_FILE"):
        return
    from airflow.sdk import Connection

    try:
        connection = Connection.get(SIGNING_CONNECTION)
    except Exception:  # not defined (AirflowNotFoundException) or unreachable: fall through to the library's error
        return
    if getattr(connection, "password", None):
        os.environ["ML_SIGNING_KEY"] = connection.password


# an Airflow connection type -> the SQLAlchemy driver of its URL (psycopg2 is in the lock); other types as named
SQLALCHEMY_DRIVERS = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2"}


def source_url(source: object) -> str | None:
    """At task time, never while parsing: the SQLAlchemy URL of a query's Airflow connection (``source``
    a :class:`~include.ml.config.SqlQuery`, such as a ``kind: sql`` source or ``scoring.query``), built from
    its fields (type, login, password, host, port, schema as the database, extras as URL options; the extra
    ``sqlalchemy_scheme`` names the driver of a type not in :data:`SQLALCHEMY_DRIVERS`) and masked in every
    log; ``None`` for a file source or no query. A connection that does not exist, or names no driver, is a
    :class:`~include.ml.errors.ConfigError` (no retries)."""
    from include.ml.config import SqlQuery

    if not isinstance(source, SqlQuery):
        return None
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret
    from sqlalchemy.engine import URL

    from include.ml.errors import ConfigError

    try:
        connection = Connection.get(source.connection)  # masks its password and extras in the task's logs
    except AirflowNotFoundException:
        raise ConfigError(
            f"query {source.name!r} reads through the Airflow connection {source.connection!r}, which does not exist: "
            f"create it (RUNBOOK.md, 'The SQL source connection'): bin/airflow connections add {source.connection} "
            "--conn-json '{\"conn_type\": \"postgres\", \"host\": ..., \"port\": 5432, \"schema\": DATABASE, "
            "\"login\": ..., \"password\": ...}'") from None
    extra = dict(connection.extra_dejson)
    driver = extra.pop("sqlalchemy_scheme", None) or SQLALCHEMY_DRIVERS.get(connection.conn_type)
    if not driver:  # without the postgres provider, `connections add --conn-type postgres` stores "generic"
        raise ConfigError(
            f"query {source.name!r}: the Airflow connection {source.connection!r} has type {connection.conn_type!r}, "
            "which names no database driver: create it with --conn-json and \"conn_type\": \"postgres\" (RUNBOOK.md, "
            "'The SQL source connection'), or give its extra a sqlalchemy_scheme such as postgresql+psycopg2")
    options = {key: str(value) for key, value in extra.items() if isinstance(value, str | int | float | bool)}
    url = URL.create(driver,
                     username=connection.login or None, password=connection.password or None,
                     host=connection.host or None, port=connection.port or None,
                     database=connection.schema or None, query=options).render_as_string(hide_password=False)
    mask_secret(url)
    return url


@contextlib.contextmanager
def fail_without_retry() -> Iterator[None]:
    """Turn the library's non-transient errors into ``AirflowFailException`` (no retries); the signing
    key is taken from its connection first when the environment has none."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.ml.errors import ConfigError, InputDataError, RegistryError

    signing_key_from_connection()
    try:
        yield
    except (InputDataError, ConfigError, RegistryError) as error:
        raise AirflowFailException(str(error)) from error
