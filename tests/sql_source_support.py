"""A schema of its own in the machine's real PostgreSQL (127.0.0.1:5432, trust auth, database ``test``) for
the SQL source tests: created per test, dropped after it. The URL carries a canary password (trust auth
ignores it) that must never show up anywhere the pipeline writes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

HOST = os.environ.get("ML_TEST_POSTGRES_HOST", "127.0.0.1")
PORT = int(os.environ.get("ML_TEST_POSTGRES_PORT", "5432"))
DATABASE = os.environ.get("ML_TEST_POSTGRES_DB", "test")
USER = "postgres"
CANARY_PASSWORD = "sql-canary-Pw-4d1e8b07c9a2"


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
