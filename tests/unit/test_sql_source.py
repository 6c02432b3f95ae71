"""The SQL source (include/ml/sql_source.py): an order-free fingerprint of the rows, the date bound as a
parameter, chunks through a server-side cursor, errors that say what to do, and a URL that never shows.

Against the machine's real PostgreSQL (tests/sql_source_support.py: a schema per test, dropped after)."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from include.ml import steps
from include.ml.config import PipelineConfig, SqlQuery, SqlSource
from include.ml.errors import (
    BatchNotFoundError,
    ConfigError,
    InputDataError,
    SourceQueryError,
    SourceUnavailableError,
)
from include.ml.records import ExtractRecord, RunWorkspace
from include.ml.sql_source import RowFingerprint, read_query
from tests.sql_source_support import CANARY_PASSWORD, closed_port, source_database, url_for

ROWS = [(1, "a", 0.5, dt.date(2026, 1, 1)), (2, "b", None, dt.date(2026, 1, 1)), (3, None, 2.25, None)]


@pytest.fixture
def database():
    with source_database() as db:
        yield db


def days(rows_per_day: int = 30) -> pd.DataFrame:
    """Rows of two days: an id, a number, a text and the day."""
    return pd.DataFrame({
        "id": range(2 * rows_per_day),
        "amount": [i * 1.5 for i in range(2 * rows_per_day)],
        "segment": [f"s{i % 3}" for i in range(2 * rows_per_day)],
        "day": [dt.date(2026, 1, 1 + i // rows_per_day) for i in range(2 * rows_per_day)],
    })


def query(db, sql: str = "SELECT id, amount, segment FROM {table} WHERE day = CAST(:ds AS date)",
          chunk_rows: int = 7) -> SqlQuery:
    return SqlQuery(name="daily", connection="ml_source", query=sql.format(table=db.table), chunk_rows=chunk_rows)


def fingerprint_of(rows, columns=("id", "name", "score", "day")) -> str:
    found = RowFingerprint(list(columns))
    found.add(rows)
    return found.hexdigest()


# -- the fingerprint ----------------------------------------------------------------------------


def test_the_fingerprint_does_not_depend_on_the_order_of_the_rows_or_of_the_chunks():
    chunked = RowFingerprint(["id", "name", "score", "day"])
    chunked.add(ROWS[2:])
    chunked.add(ROWS[:2])

    assert fingerprint_of(ROWS) == fingerprint_of(list(reversed(ROWS))) == chunked.hexdigest()


def test_the_fingerprint_changes_with_a_cell_a_row_more_or_less_a_duplicate_or_a_column_name():
    same = fingerprint_of(ROWS)
    changed = [ROWS[0], (2, "b", 0.0, dt.date(2026, 1, 1)), ROWS[2]]

    assert fingerprint_of(changed) != same
    assert fingerprint_of(ROWS[:2]) != same
    assert fingerprint_of([*ROWS, ROWS[0]]) != same  # a duplicated row counts (a sum, not a xor)
    assert fingerprint_of(ROWS, ("id", "name", "score", "when")) != same


def test_the_fingerprint_tells_a_number_from_its_text_and_an_integer_from_a_float():
    assert len({fingerprint_of([(1,)], ["x"]), fingerprint_of([(1.0,)], ["x"]), fingerprint_of([("1",)], ["x"]),
                fingerprint_of([(None,)], ["x"]), fingerprint_of([(True,)], ["x"])}) == 5
    # the same NUMERIC value written with another scale is the same number
    assert fingerprint_of([(decimal.Decimal("1.50"),)], ["x"]) == fingerprint_of([(decimal.Decimal("1.5"),)], ["x"])


def test_rows_returned_in_another_order_and_other_chunks_are_the_same_batch_and_a_changed_row_is_not(
        database, tmp_path):
    database.load(days())
    first = read_query(database.url, query(database, "SELECT id, amount, segment FROM {table} WHERE day = "
                                                     "CAST(:ds AS date) ORDER BY id"), "2026-01-01",
                       tmp_path / "a.parquet")
    again = read_query(database.url, query(database, "SELECT id, amount, segment FROM {table} WHERE day = "
                                                     "CAST(:ds AS date) ORDER BY id DESC", chunk_rows=4),
                       "2026-01-01", tmp_path / "b.parquet")

    assert (first.rows, again.rows) == (30, 30)
    assert first.sha256 == again.sha256
    database.execute(f"UPDATE {database.table} SET amount = amount + 1 WHERE id = 3")
    changed = read_query(database.url, query(database), "2026-01-01", tmp_path / "c.parquet")
    assert changed.sha256 != first.sha256
    other_day = read_query(database.url, query(database), "2026-01-02", tmp_path / "d.parquet")
    assert other_day.rows == 30 and other_day.sha256 != first.sha256


# -- reading ------------------------------------------------------------------------------------


def test_the_rows_are_fetched_and_written_a_chunk_at_a_time_into_one_parquet_file(database, tmp_path):
    database.load(days(rows_per_day=25))

    read = read_query(database.url, query(database, chunk_rows=10), "2026-01-02", tmp_path / "day.parquet")

    parquet = pq.ParquetFile(read.path)
    assert parquet.metadata.num_row_groups == 3  # 25 rows in chunks of 10: 10, 10, 5
    frame = parquet.read().to_pandas()
    assert sorted(frame["id"]) == list(range(25, 50))
    assert list(frame.columns) == read.columns == ["id", "amount", "segment"]
    assert [p.name for p in tmp_path.iterdir()] == ["day.parquet"]  # no chunk files left behind


def test_the_query_runs_in_a_server_side_cursor(database, tmp_path):
    database.load(days())
    # pg_cursors lists the session's open cursors: the query's own named cursor while it is fetched
    sql = "SELECT id, (SELECT count(*) FROM pg_cursors) AS open_cursors FROM {table} WHERE day = CAST(:ds AS date)"

    read = read_query(database.url, query(database, sql), "2026-01-01", tmp_path / "day.parquet")

    assert set(pd.read_parquet(read.path)["open_cursors"]) == {1}


def test_a_column_null_in_the_first_chunk_takes_its_type_from_a_later_one(database, tmp_path):
    frame = days(rows_per_day=20)
    frame["note"] = [None] * 10 + ["late"] * 30
    database.load(frame)

    read = read_query(database.url, query(database, "SELECT id, note FROM {table} WHERE day = CAST(:ds AS date) "
                                                    "ORDER BY id", chunk_rows=10), "2026-01-01",
                      tmp_path / "day.parquet")

    notes = pd.read_parquet(read.path)["note"]
    assert notes.isna().sum() == 10 and set(notes.dropna()) == {"late"}


def test_numeric_and_date_columns_arrive_as_numbers_and_timestamps(database, tmp_path):
    database.load(days(rows_per_day=5))
    sql = "SELECT CAST(amount AS numeric(8, 2)) AS amount, day FROM {table} WHERE day = CAST(:ds AS date)"

    frame = pd.read_parquet(read_query(database.url, query(database, sql), "2026-01-01", tmp_path / "d.parquet").path)

    assert pd.api.types.is_float_dtype(frame["amount"]) and pd.api.types.is_datetime64_any_dtype(frame["day"])


# -- the date is bound, never pasted ------------------------------------------------------------


@pytest.mark.parametrize("ds", ["2026-01-01' OR '1'='1", "2026-01-01'; DROP TABLE {table}; --"])
def test_sql_in_the_date_is_a_value_that_matches_no_row_and_runs_nothing(database, tmp_path, ds):
    database.load(days())
    as_text = query(database, "SELECT id FROM {table} WHERE CAST(day AS text) = :ds")

    with pytest.raises(BatchNotFoundError, match="returned no rows"):
        read_query(database.url, as_text, ds.format(table=database.table), tmp_path / "x.parquet")

    assert database.count() == 60  # the table is there, every row in it


def test_a_query_that_pastes_the_date_or_binds_an_unknown_name_is_refused_by_the_config():
    with pytest.raises(ValueError, match="must select by :ds or :ds_nodash"):
        SqlQuery(name="daily", connection="c", query="SELECT * FROM t WHERE day = '{ds}'")
    with pytest.raises(ValueError, match="the query binds :day; only :ds and :ds_nodash"):
        SqlQuery(name="daily", connection="c", query="SELECT * FROM t WHERE day = :day")
    with pytest.raises(ValueError, match=r"write CAST\(:ds AS ...\) instead of :ds::"):
        SqlQuery(name="daily", connection="c", query="SELECT * FROM t WHERE day = :ds::date")
    # a PostgreSQL cast of a column is not a parameter
    assert SqlQuery(name="daily", connection="c", query="SELECT * FROM t WHERE day::text = :ds").query


# -- errors -------------------------------------------------------------------------------------


def test_a_refused_connection_is_retried_and_its_message_names_the_query_and_place_not_the_password(tmp_path):
    refusing = url_for(port=closed_port())

    with pytest.raises(SourceUnavailableError) as raised:
        read_query(refusing, SqlQuery(name="daily", connection="c", query="SELECT 1 WHERE :ds = :ds"),
                   "2026-01-01", tmp_path / "x.parquet")

    message = str(raised.value)
    assert not isinstance(raised.value, InputDataError | ConfigError)  # the DAG's retries get another try
    assert "query 'daily'" in message and "Connection refused" in message and "127.0.0.1" in message
    assert CANARY_PASSWORD not in message and refusing not in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__  # the driver's error is not chained


def test_a_wrong_query_fails_at_once_with_the_database_message_and_the_query_name(database, tmp_path):
    database.load(days())

    with pytest.raises(SourceQueryError) as raised:
        read_query(database.url, query(database, "SELECT no_such_column FROM {table} WHERE day = :ds"),
                   "2026-01-01", tmp_path / "x.parquet")

    message = str(raised.value)
    assert isinstance(raised.value, ConfigError)  # fail_without_retry: no retries
    assert message.startswith("query 'daily' failed in the database: column \"no_such_column\" does not exist")
    assert CANARY_PASSWORD not in message
    assert not (tmp_path / "x.parquet").exists()


def test_without_a_url_the_error_says_which_variable_to_set(monkeypatch):
    from include.ml.sql_source import database_url

    monkeypatch.delenv("ML_SOURCE_URL", raising=False)
    with pytest.raises(ConfigError, match=r"set the environment variable ML_SOURCE_URL .* or pass --source-url"):
        database_url(SqlQuery(name="daily", connection="c", query="SELECT :ds"))


# -- the training step --------------------------------------------------------------------------


def sql_config(config: PipelineConfig, db) -> PipelineConfig:
    """credit_default reading its batches from ``db``'s table instead of the landing folder."""
    source = SqlSource(kind="sql", name="credit_daily", connection="ml_source",
                       query=f"SELECT * FROM {db.table} WHERE day = CAST(:ds AS date)", chunk_rows=200)
    return config.model_copy(update={"source": source})


def test_extract_reads_the_query_like_a_delivery_and_keys_the_batch_on_its_rows(
        database, credit_config, credit_frame, ml_home, monkeypatch):
    database.load(credit_frame.assign(day=dt.date(2026, 1, 1)))
    config = sql_config(credit_config, database)
    monkeypatch.setenv("ML_SOURCE_URL", database.url)

    first = steps.extract(config, ml_home / "run1", "2026-01-01")
    again = steps.extract(config, ml_home / "run2", "2026-01-01")

    assert first["rows"] == len(credit_frame) and first["sha256"] == again["sha256"]
    assert first["path"].endswith("run1/query-credit_daily.parquet")
    steps.validate(config, ml_home / "run1", run_id="run1", save_features=False)  # validated like a file
    written = "".join(p.read_text(errors="replace") for p in (ml_home / "run1").rglob("*") if p.is_file())
    assert CANARY_PASSWORD not in written and "postgresql" not in written
    assert RunWorkspace(ml_home / "run1").read(ExtractRecord).sha256 == first["sha256"]


def test_bad_rows_from_the_database_fail_validation_and_are_quarantined_like_a_bad_file(
        database, credit_config, credit_frame, ml_home, monkeypatch):
    from include.ml.errors import BatchValidationError

    database.load(credit_frame.assign(day=dt.date(2026, 1, 1), utilization=7.5))  # the config allows 0..1
    config = sql_config(credit_config, database)

    steps.extract(config, ml_home / "run", "2026-01-01", source_url=database.url)
    with pytest.raises(BatchValidationError, match="utilization") as raised:
        steps.validate(config, ml_home / "run", run_id="run")

    reasons = json.loads((ml_home / "quarantine" / "credit_default" / raised.value.quarantined_to.rpartition("/")[2]
                          / "reasons.json").read_text())
    assert reasons["ds"] == "2026-01-01"


def test_the_config_shown_in_docs_sql_source_md_is_valid(credit_config):
    import re

    import yaml

    from include.ml.paths import REPO_ROOT

    [block] = re.findall(r"```yaml\n(.*?)```", (REPO_ROOT / "docs" / "sql-source.md").read_text(), re.DOTALL)
    shown = yaml.safe_load(block)
    raw = credit_config.model_dump(mode="json")
    raw["source"], raw["scoring"]["query"] = shown["source"], shown["scoring"]["query"]

    config = PipelineConfig.model_validate(raw)

    assert isinstance(config.source, SqlSource) and config.source.file_name == "query-credit_daily.parquet"
    assert config.scoring.query.name == "credit_to_score"


# -- the DAGs' URL, from the Airflow connection -------------------------------------------------


def airflow_connection(monkeypatch, conn_id: str, **fields) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def test_the_dags_build_the_url_from_the_connection_fields_and_read_through_it(monkeypatch, database, tmp_path):
    from include.airflow_tasks import source_url

    database.load(days())
    airflow_connection(monkeypatch, "ml_source", conn_type="postgres", host="127.0.0.1", port=5432, schema="test",
                       login="postgres", password="p@ss:w/rd " + CANARY_PASSWORD, extra={"connect_timeout": 5})

    url = source_url(query(database))

    assert url.startswith("postgresql+psycopg2://postgres:p%40ss%3Aw%2Frd") and url.endswith("connect_timeout=5")
    assert read_query(url, query(database), "2026-01-02", tmp_path / "d.parquet").rows == 30

def test_a_file_source_needs_no_url(credit_config):
    from include.airflow_tasks import source_url

    assert source_url(credit_config.source) is None and source_url(credit_config.scoring.query) is None


def test_a_connection_missing_or_of_a_type_without_a_driver_says_how_to_create_it(monkeypatch):
    from include.airflow_tasks import source_url

    missing = SqlQuery(name="daily", connection="ml_nowhere", query="SELECT :ds")
    with pytest.raises(ConfigError, match=r"'ml_nowhere', which does not exist: create it .* add ml_nowhere"):
        source_url(missing)
    # `connections add --conn-type postgres` without the postgres provider stores the type as generic
    airflow_connection(monkeypatch, "ml_generic", conn_type="generic", host="db", password=CANARY_PASSWORD)
    with pytest.raises(ConfigError, match="has type 'generic', which names no database driver") as raised:
        source_url(SqlQuery(name="daily", connection="ml_generic", query="SELECT :ds"))
    assert CANARY_PASSWORD not in str(raised.value)
    airflow_connection(monkeypatch, "ml_generic", conn_type="generic", host="db", extra={
        "sqlalchemy_scheme": "postgresql+psycopg2"})
    assert source_url(SqlQuery(name="daily", connection="ml_generic", query="SELECT :ds")) == \
        "postgresql+psycopg2://db"


def test_simulation_refuses_a_pipeline_whose_source_is_a_query(credit_config, database):
    from include.ml.simulate import write_batches

    with pytest.raises(ConfigError, match=r"reads its batches with a query .* load the generated rows into the query"):
        write_batches(sql_config(credit_config, database), dt.date(2026, 1, 1), 1)
