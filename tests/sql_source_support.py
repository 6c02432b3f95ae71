"""A schema of its own in the machine's real PostgreSQL (127.0.0.1:5432, trust auth, database ``test``) for
the SQL source tests: created per test, dropped after it. The URL carries a canary password (trust auth
ignores it) that must never show up anywhere the pipeline writes."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from include.ml import simulate
from include.ml.config import PipelineConfig, get_pipeline
from tests.e2e.dag_support import serialized

HOST = os.environ.get("ML_TEST_POSTGRES_HOST", "127.0.0.1")
PORT = int(os.environ.get("ML_TEST_POSTGRES_PORT", "5432"))
DATABASE = os.environ.get("ML_TEST_POSTGRES_DB", "test")
USER = "postgres"
CANARY_PASSWORD = f"sql-canary-Pw-{uuid.uuid4().hex[:12]}"  # made per test session: no literal secret in the tree
START = dt.date(2026, 1, 1)
ROWS = 1500  # credit_default rows a day


def url_for(port: int = PORT, password: str = CANARY_PASSWORD) -> str:
    return f"postgresql+psycopg2://{USER}:{password}@{HOST}:{port}/{DATABASE}"


@dataclass(frozen=True)
class SourceDatabase:
    """A fresh schema; ``url`` reaches it (with the canary password), ``table`` is ``<schema>.batches``."""

    schema: str
    url: str

    @property
    def table(self) -> str:
        return f"{self.schema}.batches"

    def engine(self):
        import sqlalchemy as sa

        return sa.create_engine(self.url, poolclass=sa.pool.NullPool)

    def load(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (with its ``day`` column) to the table."""
        frame.to_sql("batches", self.engine(), schema=self.schema, if_exists="append", index=False)

    def execute(self, sql: str, **params) -> int:
        """Run a statement; the rows it changed."""
        import sqlalchemy as sa

        with self.engine().begin() as connection:
            return connection.execute(sa.text(sql), params).rowcount

    def ids_of(self, day) -> list:
        """The customer ids of ``day`` in the order a plain scan returns them (no ORDER BY)."""
        import sqlalchemy as sa

        with self.engine().connect() as connection:
            return list(connection.execute(sa.text(f"SELECT customer_id FROM {self.table} WHERE day = :day"),
                                           {"day": day}).scalars())

    def count(self) -> int:
        import sqlalchemy as sa

        with self.engine().connect() as connection:
            return connection.execute(sa.text(f"SELECT count(*) FROM {self.table}")).scalar_one()


@contextmanager
def source_database() -> Iterator[SourceDatabase]:
    """A uniquely named schema, dropped with everything in it when the block ends."""
    import sqlalchemy as sa

    database = SourceDatabase(schema=f"ml_test_{uuid.uuid4().hex[:12]}", url=url_for())
    engine = database.engine()
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {database.schema}"))
    try:
        yield database
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {database.schema} CASCADE"))
        engine.dispose()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound and released): the database that refuses."""
    from tests.conftest import _free_port

    return _free_port()


# -- the DAGs of a pipeline reading from such a schema ------------------------------------------------

CONNECTION = "ml_test_sql_source"


def connect(monkeypatch, port: int = PORT) -> None:
    """The Airflow connection the config names, from the environment (as a secrets backend serves it)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONNECTION.upper()}", json.dumps({
        "conn_type": "postgres", "host": HOST, "port": port, "login": USER, "password": CANARY_PASSWORD,
        "schema": DATABASE}))


def sql_pipeline(db, query: str | None = None, retries: int = 2) -> PipelineConfig:
    """credit_default as ``credit_sql``: its batches and its rows to score come from ``db``'s table."""
    raw = get_pipeline("credit_default").model_dump(mode="json", exclude_none=True)
    sql = query or f"SELECT * FROM {db.table} WHERE day = CAST(:ds AS date)"
    raw.update(name="credit_sql", registry="registry/credit_sql", simulation=None)
    raw.pop("deadlines", None)  # dag.test() of Airflow 3.3.2 fails a successful run that has deadline alerts
    raw["source"] = {"kind": "sql", "name": "credit_daily", "connection": CONNECTION, "query": sql,
                     "chunk_rows": 500}
    raw["scoring"]["query"] = {"name": "credit_to_score", "connection": CONNECTION,
                               "query": f"SELECT * FROM {db.schema}.to_score WHERE day = CAST(:ds AS date)"}
    raw["airflow"].update(retries=retries, retry_delay_seconds=1, max_retry_delay_seconds=2)
    return PipelineConfig.model_validate(raw)


def deliver(db, day: dt.date, seed: int) -> pd.DataFrame:
    frame = simulate.credit_default(day, ROWS, seed=seed, drifted=False).assign(day=day)
    db.load(frame)
    return frame


def run(dag, day: dt.date):
    dag_run = dag.test(logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
    return dag_run, {ti.task_id: ti for ti in dag_run.get_task_instances()}


def training_dag(config: PipelineConfig):
    from dags.ml_training import build_training_dag

    dag = build_training_dag(config)
    dag.get_task("extract").retry_delay = dt.timedelta(seconds=1)  # the config's backoff, as in test_faults
    return serialized(dag)
