"""The SQL source end to end (issue 18 item 4): the training and scoring DAGs (dag.test) read their rows from
the machine's real PostgreSQL through an Airflow connection, in a schema of the test's own.

A table with a day column holds two dates; the second date rerun on the same rows reuses its version,
rerun after rows changed is a new batch and a new version. A database that refuses the connection is
retried; a query the database rejects fails at once with its message and the query's name."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

from include.ml import simulate
from include.ml.steps import registry_for, run_history
from tests.sql_source_support import (
    CANARY_PASSWORD,
    ROWS,
    START,
    closed_port,
    connect,
    deliver,
    run,
    serialized,
    source_database,
    sql_pipeline,
    training_dag,
)

pytestmark = pytest.mark.e2e

@pytest.fixture
def database():
    with source_database() as db:
        yield db


def test_two_dates_from_a_table_and_a_rerun_on_changed_rows_is_a_new_batch_and_a_new_version(
        airflow_db, ml_home, database, monkeypatch):
    connect(monkeypatch)
    deliver(database, START, seed=1)
    day2 = START + dt.timedelta(days=1)
    deliver(database, day2, seed=2)
    config = sql_pipeline(database)
    dag, registry = training_dag(config), registry_for(config)

    first, tasks = run(dag, START)
    assert str(first.state) == "success", {t: str(ti.state) for t, ti in tasks.items()}
    assert registry.production() == "v0001"
    extracted = tasks["extract"].xcom_pull(task_ids="extract")
    assert extracted["rows"] == ROWS and extracted["path"].endswith("query-credit_daily.parquet")

    second, _ = run(dag, day2)
    assert str(second.state) == "success" and registry.versions() == ["v0001", "v0002"]
    fingerprint = registry.metadata("v0002")["data"]["sha256"]

    # The same rows in another order (an update that changes nothing moves rows to the end of the table,
    # where a scan now meets them last): the same batch, so the date's version is reused.
    order = database.ids_of(day2)
    database.execute(f"UPDATE {database.table} SET income = income WHERE day = :day AND age < 40", day=day2)
    assert database.ids_of(day2) != order and sorted(database.ids_of(day2)) == sorted(order)
    same, tasks = run(dag, day2)
    assert str(same.state) == "success"
    assert tasks["extract"].xcom_pull(task_ids="extract")["sha256"] == fingerprint
    assert registry.versions() == ["v0001", "v0002"]
    assert run_history(config)[-1]["reused_from_earlier_run"] is True

    # Rows of the date corrected upstream: a different batch, so a new version.
    changed = database.execute(f"UPDATE {database.table} SET income = income * 1.05 WHERE day = :day AND "
                               "age < 40", day=day2)
    assert changed > 0
    rerun, tasks = run(dag, day2)
    assert str(rerun.state) == "success"
    assert tasks["extract"].xcom_pull(task_ids="extract")["sha256"] != fingerprint
    assert registry.versions() == ["v0001", "v0002", "v0003"]
    assert registry.metadata("v0003")["logical_date"] == day2.isoformat()


def test_the_scoring_dag_scores_the_rows_its_query_returns_for_the_date(airflow_db, ml_home, database, monkeypatch):
    from dags.ml_batch_scoring import build_scoring_dag

    connect(monkeypatch)
    deliver(database, START, seed=1)
    to_score = simulate.credit_default(START, 700, seed=9, drifted=False).drop(columns=["default"])
    to_score.assign(day=START).to_sql("to_score", database.engine(), schema=database.schema, index=False)
    config = sql_pipeline(database)
    run(training_dag(config), START)
    assert registry_for(config).production() == "v0001"

    scored, tasks = run(serialized(build_scoring_dag(config)), START)

    assert str(scored.state) == "success", {t: str(ti.state) for t, ti in tasks.items()}
    summary = tasks["summarise"].xcom_pull(task_ids="summarise")
    assert (summary["partitions"], summary["rows"], summary["versions"]) == (1, 700, ["v0001"])
    predictions = pd.read_parquet(ml_home / "predictions" / "credit_sql" / START.isoformat() /
                                  "query-credit_to_score.parquet")
    assert len(predictions) == summary["scored"] and sorted(predictions["customer_id"]) == sorted(
        to_score["customer_id"][to_score.index.isin(predictions["row"])])


def test_a_database_that_refuses_the_connection_is_retried_then_fails(airflow_db, ml_home, database, monkeypatch):
    connect(monkeypatch, port=closed_port())
    config = sql_pipeline(database, retries=2)

    dag_run, tasks = run(training_dag(config), START)

    assert str(dag_run.state) == "failed"
    extract = tasks["extract"]
    assert str(extract.state) == "failed" and extract.try_number == 3  # the first try and both retries
    failed = run_history(config)[-1]
    assert failed["step"] == "extract" and failed["error_type"] == "SourceUnavailableError"
    assert failed["error"].startswith("query 'credit_daily': cannot connect to the database (connection to "
                                      "server at \"127.0.0.1\"")
    assert CANARY_PASSWORD not in json.dumps(failed)


def test_a_query_the_database_rejects_fails_at_once_with_its_message(airflow_db, ml_home, database, monkeypatch):
    connect(monkeypatch)
    deliver(database, START, seed=1)
    config = sql_pipeline(database, query=f"SELECT * FROM {database.schema}.no_such_table WHERE day = :ds")

    dag_run, tasks = run(training_dag(config), START)

    assert str(dag_run.state) == "failed"
    assert str(tasks["extract"].state) == "failed" and tasks["extract"].try_number == 1  # not retried
    failed = run_history(config)[-1]
    assert failed["error_type"] == "SourceQueryError"
    assert failed["error"].startswith(f"query 'credit_daily' failed in the database: relation "
                                      f"\"{database.schema}.no_such_table\" does not exist")
