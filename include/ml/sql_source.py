"""Read the rows of a logical date from a database: a query with the date bound as a parameter, streamed
through a server-side cursor in chunks into a Parquet file, fingerprinted by the rows it returned.

The library takes a SQLAlchemy URL (the DAGs build it from an Airflow connection, the command line takes
``--source-url`` or the environment variable ``url_env`` names); it never appears in a message. The
Parquet file is then read like any delivery (:func:`include.ml.extract.read_batch`): rows from a database
are checked, never trusted.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include.ml import storage
from include.ml.config import SqlQuery, query_parameters
from include.ml.errors import BatchNotFoundError, BatchReadError, ConfigError, SourceQueryError, SourceUnavailableError
from include.ml.extract import parser_message

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FINGERPRINT_MODULUS = 2**256  # per-row sha256 digests are summed modulo this: the sum ignores row order


def database_url(query: SqlQuery, url: str | None = None) -> str:
    """The SQLAlchemy URL to read ``query`` through: ``url`` when given, else the environment variable
    ``query.url_env``; :class:`ConfigError` saying how to give one when neither is set."""
    url = url or os.environ.get(query.url_env)
    if not url:
        raise ConfigError(
            f"query {query.name!r} needs a database URL: set the environment variable {query.url_env} (a SQLAlchemy "
            "URL such as postgresql+psycopg2://user:password@host:5432/db) or pass --source-url; in Airflow the DAG "
            f"builds it from the connection {query.connection!r}")
    return url


def location(url: str) -> str:
    """Where ``url`` connects, for a message: ``host:port/database``, never the user or password."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # not a URL at all: say nothing of it
        return "(the configured URL)"
    return f"{parsed.host or 'localhost'}{f':{parsed.port}' if parsed.port else ''}/{parsed.database or ''}"


def _scrub(text: str, url: str) -> str:
    """``text`` without the URL or its password (a driver may quote either in its message)."""
    from sqlalchemy.engine import make_url

    secrets = [url]
    try:
        password = make_url(url).password
    except Exception:
        password = None
    if password:
        secrets.append(str(password))
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _value_text(value: object) -> str:
    """One cell in the fingerprint's canonical text: its type and value (1 and 1.0 and '1' differ)."""
    if value is None:
        return "N"
    if isinstance(value, bool):
        return f"b{int(value)}"
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"f{value.hex()}" if value == value else "fnan"
    if isinstance(value, decimal.Decimal):
        return f"d{value.normalize()}" if value.is_finite() else f"d{value}"
    if isinstance(value, str):
        return f"s{len(value)}:{value}"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"x{bytes(value).hex()}"
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return f"t{value.isoformat()}"
    text = repr(value)
    return f"o{len(text)}:{text}"


class RowFingerprint:
    """The fingerprint of a set of rows that does not depend on their order: the sha256 of the column
    names, the row count and the sum (modulo 2**256) of each row's sha256. A duplicated row counts
    twice; a changed, added or removed row changes it."""

    def __init__(self, columns: Sequence[str]):
        self.columns = [str(c) for c in columns]
        self.rows = 0
        self._sum = 0

    def add(self, rows: Iterable[Sequence[object]]) -> None:
        """Count ``rows`` (tuples of cell values, in column order)."""
        total = self._sum
        for row in rows:
            text = "\x1f".join(_value_text(value) for value in row)
            total += int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), "big")
            self.rows += 1
        self._sum = total % FINGERPRINT_MODULUS

    def hexdigest(self) -> str:
        head = "\x1f".join(f"{len(c)}:{c}" for c in self.columns)
        return hashlib.sha256(f"rows-v1\n{head}\n{self.rows}\n{self._sum:064x}".encode()).hexdigest()


@dataclass(frozen=True)
class QueryRead:
    """What a query returned: the Parquet file written, its rows, columns and order-free fingerprint."""

    path: str
    rows: int
    columns: list[str]
    sha256: str


def _is_transient(exc: BaseException) -> bool:
    """A lost or refused connection (retry) rather than a wrong query (fix it)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError
                      | sa_exc.TimeoutError)


def _database_message(exc: BaseException, url: str) -> str:
    """The database's own message (the driver's, without SQLAlchemy's SQL and parameters echo), on
    one bounded line with the URL and password scrubbed."""
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    # PostgreSQL's "LINE 1: ..." and caret lines echo the cursor's SQL, not the problem
    kept = [line for line in lines if not line.startswith("LINE ") and set(line) - {"^", " "}]
    return _scrub(" | ".join(kept[:3]) or type(original).__name__, url)[:400]


def _arrow_table(columns: list[str], rows: list[Sequence[object]]) -> pa.Table:
    """One chunk as an Arrow table, typed from its values: decimals become float64 (a NUMERIC column is a
    number to the model), dates midnight timestamps, times text."""
    import pyarrow as pa

    arrays = []
    for position, name in enumerate(columns):
        values = [row[position] for row in rows]
        try:
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as error:
            raise BatchReadError(
                f"column {name!r} of the query's rows mixes types or holds a value Parquet cannot store "
                f"({parser_message(error)}); cast it in the query (e.g. CAST({name} AS text))") from error
        if pa.types.is_decimal(array.type):
            array = array.cast(pa.float64())
        elif pa.types.is_date(array.type):
            array = array.cast(pa.timestamp("s"))
        elif pa.types.is_time(array.type):
            array = pa.array([None if v is None else v.isoformat() for v in values], pa.string())
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=columns)


def read_query(url: str, query: SqlQuery, ds: str, out: Path) -> QueryRead:
    """Run ``query`` for logical date ``ds`` (bound as ``:ds`` and ``:ds_nodash``, never pasted into the
    SQL) through ``url`` with a server-side cursor, ``query.chunk_rows`` rows at a time, and write the
    rows to ``out`` (Parquet, renamed into place when complete). Memory holds one chunk.

    Raises :class:`SourceUnavailableError` (retried) when the database refuses or drops the connection,
    :class:`SourceQueryError` (not retried) when it rejects the query, with its message and the query's
    name, :class:`ConfigError` for a URL SQLAlchemy cannot use, and :class:`BatchNotFoundError`
    (retried: the day's rows may not be loaded yet) when the query returns no rows."""
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.pool import NullPool

    named = f"query {query.name!r}"
    try:
        engine = create_engine(url, poolclass=NullPool)
    except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError, ValueError) as error:
        raise ConfigError(
            f"{named}: the database URL cannot be used ({_scrub(parser_message(error), url)}); give a SQLAlchemy URL "
            f"such as postgresql+psycopg2://user:password@host:5432/db in {query.url_env} or the connection "
            f"{query.connection!r}") from None
    try:
        with storage.scratch_folder(out) as parts:
            fingerprint, schema, written = _stream(engine, url, query, ds, parts)
            if fingerprint.rows == 0:
                raise BatchNotFoundError(
                    f"{named} returned no rows for {ds}: the day's rows are not in the database yet (or the query "
                    "selects none); the task is retried, and the date can be rerun once they are loaded")
            with storage.atomic_path(out, durable=False) as tmp, pq.ParquetWriter(tmp, schema) as writer:
                for part in written:
                    writer.write_table(pq.read_table(part).cast(schema))
    finally:
        engine.dispose()
    return QueryRead(path=str(out), rows=fingerprint.rows, columns=fingerprint.columns, sha256=fingerprint.hexdigest())


def _stream(engine, url: str, query: SqlQuery, ds: str, parts: Path) -> tuple[RowFingerprint, pa.Schema, list[Path]]:
    """Fetch the rows chunk by chunk through a server-side cursor, fingerprinting them and writing each
    chunk to its own Parquet file in ``parts``; the chunks' schema is their types unified (an all-null
    first chunk takes a later chunk's type)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    named = f"query {query.name!r}"
    try:
        connection = engine.connect()
    except sa_exc.SQLAlchemyError as error:
        raise SourceUnavailableError(
            f"{named}: cannot connect to the database ({_database_message(error, url)}); the task is retried. Check "
            f"that the database at {location(url)} is up and reachable") from None
    schema, written = None, []
    with connection:
        try:
            result = connection.execution_options(stream_results=True, max_row_buffer=query.chunk_rows).execute(
                text(query.query), query_parameters(ds))
            fingerprint = RowFingerprint(list(result.keys()))
            for rows in result.partitions(query.chunk_rows):
                fingerprint.add(rows)
                table = _arrow_table(fingerprint.columns, rows)
                schema = table.schema if schema is None else pa.unify_schemas(
                    [schema, table.schema], promote_options="permissive")
                written.append(parts / f"part-{len(written):05d}.parquet")
                pq.write_table(table, written[-1])
        except sa_exc.SQLAlchemyError as error:
            if _is_transient(error):
                raise SourceUnavailableError(
                    f"{named}: the database connection failed while reading ({_database_message(error, url)}); the "
                    "task is retried") from None
            raise SourceQueryError(
                f"{named} failed in the database: {_database_message(error, url)}. Fix the query (source.query or "
                "scoring.query in the pipeline config) or the table it reads; retrying will not help") from None
    return fingerprint, schema, written


def read_query_batch(url: str, query: SqlQuery, ds: str, folder: Path, max_bytes: int) -> tuple[Path, pd.DataFrame]:
    """The training batch of ``ds`` from ``query``: its rows written to ``folder/<query file>`` by
    :func:`read_query`, then read back like a delivered file (:func:`include.ml.extract.read_batch`), the
    frame's ``attrs["delivery"]["sha256"]`` being the rows' order-free fingerprint (what reruns key on)."""
    from include.ml.extract import read_batch

    path = Path(folder) / query.file_name
    read = read_query(url, query, ds, path)
    frame = read_batch(path, "parquet", max_bytes)
    frame.attrs["delivery"] = {**frame.attrs["delivery"], "sha256": read.sha256}
    return path, frame
