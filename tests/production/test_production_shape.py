"""The production shape for real: CeleryExecutor on PostgreSQL and Redis, every Airflow component a
process of its own, configured from deploy/airflow.env like docker-compose.yaml. A run triggered
through the authenticated REST API trains and promotes v0001 and emails it; the production-model
Asset then starts the batch-scoring DAG, whose mapped partitions run on the Celery worker."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
import urllib.parse

import pytest

from include.ml.config import get_pipeline
from include.ml.simulate import credit_default, write_batches
from include.ml.steps import registry_for
from tests.conftest import SMTP_PORT
from tests.production.cluster import AirflowCluster, ClusterError, Location

pytestmark = pytest.mark.production

POSTGRES = {"host": os.environ.get("ML_PROD_POSTGRES_HOST", "127.0.0.1"),
            "port": int(os.environ.get("ML_PROD_POSTGRES_PORT", "5432")), "user": "postgres"}
REDIS_HOST = os.environ.get("ML_PROD_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("ML_PROD_REDIS_PORT", "6379"))
#: a Redis database of the production-shape runs' own; each run also has a Celery queue of its own
REDIS_DB = int(os.environ.get("ML_PROD_REDIS_DB", "7"))
TIMEOUT_SECONDS = float(os.environ.get("ML_PROD_TIMEOUT", "720"))  # 2-4 min here; room for a loaded machine
PARTITIONS, PARTITION_ROWS = 3, 400

START_HINT = {
    "PostgreSQL": f"start one on {POSTGRES['host']}:{POSTGRES['port']} accepting user postgres without a "
                  "password, e.g. `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`",
    "Redis": f"start one on {REDIS_HOST}:{REDIS_PORT}, e.g. `docker run -d -p 6379:6379 redis:7`",
}


def _unavailable(service: str, error: Exception) -> None:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    message = f"{service} is not reachable ({reason}); {START_HINT[service]}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: the production-shape test needs its services. {message}")
    pytest.skip(message)


@pytest.fixture
def database():
    """A fresh PostgreSQL database for the run, dropped afterwards (connections forced off)."""
    import psycopg2

    try:
        admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **POSTGRES)
    except psycopg2.OperationalError as error:
        _unavailable("PostgreSQL", error)
    admin.autocommit = True
    name = f"ml_prod_{secrets.token_hex(4)}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def celery_queue():
    """A Celery queue of the run's own in the Redis database; its keys are deleted afterwards.

    Only this run's keys are removed (not FLUSHDB): another session's run may share the database.
    """
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as error:
        _unavailable("Redis", error)
    queue = f"ml_prod_{secrets.token_hex(4)}"

    def forget() -> None:
        keys = [queue, f"_kombu.binding.{queue}", *client.scan_iter(match=f"*{queue}*")]
        client.delete(*keys)

    forget()
    yield queue
    forget()
    client.close()


@pytest.fixture
def cluster(tmp_path, database, celery_queue, smtp_inbox, monkeypatch):
    location = Location(airflow_home=tmp_path / "airflow-home", ml_home=tmp_path / "ml-home", database=database,
                        redis_db=REDIS_DB, smtp_port=SMTP_PORT, queue=celery_queue,
                        postgres_host=POSTGRES["host"], postgres_port=POSTGRES["port"],
                        redis_host=REDIS_HOST, redis_port=REDIS_PORT)
    monkeypatch.setenv("ML_HOME", str(location.ml_home))  # the test writes batches and reads the registry
    logs = tmp_path / "process-logs"
    logs.mkdir()
    cluster = AirflowCluster(location, logs, deadline=time.monotonic() + TIMEOUT_SECONDS)
    started = time.monotonic()
    try:
        cluster.prepare()
        cluster.start()
        yield cluster
    finally:
        exit_codes = cluster.stop()
        print(f"production shape: {time.monotonic() - started:.0f} s; exit codes {exit_codes}; logs in {logs}")


def _run_state(cluster: AirflowCluster, dag_id: str, run_id: str) -> str | None:
    run = next((r for r in cluster.dag_runs(dag_id) if r["dag_run_id"] == run_id), None)
    if run and run["state"] == "failed":
        states = {(t["task_id"], t["map_index"]): t["state"] for t in cluster.task_instances(dag_id, run_id)}
        failed = {task for (task, _), state in states.items() if state in ("failed", "upstream_failed")}
        raise ClusterError(f"{dag_id} run {run_id} failed: {states}\n"
                           f"{cluster.task_log_tails(dag_id, run_id, failed)}\n{cluster.log_tails()}")
    return run["state"] if run and run["state"] == "success" else None


def _no_scheduled_run_pending(cluster: AirflowCluster, dag_id: str) -> bool:
    """True once the scheduled run due at unpausing (if any) has finished and none is running."""
    runs = cluster.dag_runs(dag_id)
    if any(r["state"] not in ("success", "failed") for r in runs):
        return False
    if any(r["run_type"] == "scheduled" for r in runs):
        return True
    next_run = cluster.request("GET", f"/api/v2/dags/{dag_id}")["next_dagrun_run_after"]
    return next_run is not None and dt.datetime.fromisoformat(next_run) > dt.datetime.now(dt.UTC)


def _write_scoring_partitions(ml_home, days: list[dt.date]) -> list:
    frames = [credit_default(dt.date(2026, 2, 1 + i), PARTITION_ROWS, seed=11, drifted=False).drop(columns="default")
              for i in range(PARTITIONS)]
    for day in days:
        inbox = ml_home / "scoring" / "credit_default" / day.isoformat()
        inbox.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(frames):
            frame.to_parquet(inbox / f"part-{i}.parquet", index=False)
    return frames


def test_rest_triggered_training_promotes_and_the_model_asset_fans_scoring_out_on_the_celery_worker(
    cluster, smtp_inbox
):
    config = get_pipeline("credit_default")
    training, scoring = config.dag_id, f"ml_batch_scoring__{config.name}"
    ml_home = cluster.location.ml_home
    # The run's logical date is today's: the date the @daily schedule would pick on unpausing, so
    # the scheduler sees the triggered run and creates no second one for a batch that isn't there.
    today = dt.datetime.now(dt.UTC).date()
    write_batches(config, today, 1, rows=1000)
    smtp_inbox.clear()

    for dag_id in (training, scoring):
        cluster.wait_until(f"{dag_id} parsed and served by the API",
                           lambda d=dag_id: cluster.request("GET", f"/api/v2/dags/{d}")["dag_id"])

    # Scoring first: Asset events only queue runs of unpaused DAGs. Unpausing also starts the
    # catch-up-free daily run of the latest 06:00; it finds no partitions yet and succeeds empty.
    cluster.request("PATCH", f"/api/v2/dags/{scoring}", {"is_paused": False})
    cluster.wait_until("the scheduled scoring run to finish", lambda: _no_scheduled_run_pending(cluster, scoring))
    # An Asset-triggered run scores the day it was created on (dags/ml_batch_scoring.py _date):
    # today, or tomorrow if midnight UTC passes meanwhile.
    frames = _write_scoring_partitions(ml_home, [today, today + dt.timedelta(days=1)])

    run = cluster.request("POST", f"/api/v2/dags/{training}/dagRuns",
                          {"logical_date": f"{today.isoformat()}T00:00:00Z", "conf": {}})
    cluster.request("PATCH", f"/api/v2/dags/{training}", {"is_paused": False})
    cluster.wait_until(f"training run {run['dag_run_id']}", lambda: _run_state(cluster, training, run["dag_run_id"]))

    registry = registry_for(config)
    assert registry.production() == "v0001"
    promoted = smtp_inbox.wait_for("PROMOTED: v0001", timeout=60)
    assert promoted["X-Envelope-To"] == "ml-oncall@example.com"
    training_tis = cluster.task_instances(training, run["dag_run_id"])
    assert {t["task_id"]: t["state"] for t in training_tis}["promote"] == "success"

    asset_run = cluster.wait_until("the Asset-triggered scoring run", lambda: next(
        (r for r in cluster.dag_runs(scoring) if r["run_type"] == "asset_triggered"), None))
    cluster.wait_until(f"scoring run {asset_run['dag_run_id']}",
                       lambda: _run_state(cluster, scoring, asset_run["dag_run_id"]))
    quoted = urllib.parse.quote(asset_run["dag_run_id"], safe="")
    (event,) = cluster.request("GET", f"/api/v2/dags/{scoring}/dagRuns/{quoted}/upstreamAssetEvents")["asset_events"]
    assert (event["name"], event["source_dag_id"], event["source_run_id"], event["source_task_id"]) == (
        f"ml_production_model__{config.name}", training, run["dag_run_id"], "promote")
    assert event["extra"]["version"] == "v0001"

    mapped = sorted((t for t in cluster.task_instances(scoring, asset_run["dag_run_id"])
                     if t["task_id"] == "score_partition"), key=lambda t: t["map_index"])
    assert [(t["map_index"], t["state"]) for t in mapped] == [(i, "success") for i in range(PARTITIONS)]
    # Ran through this run's Celery queue, by the worker: its hostname on each, its log naming each.
    ran = [t for t in mapped + training_tis if t["state"] == "success"]
    assert {t["queue"] for t in ran} == {cluster.location.queue}
    assert all(t["hostname"] for t in ran)
    assert {t["executor"] for t in ran} <= {None, "CeleryExecutor"}  # none pinned to another executor
    worker_log = (cluster.log_dir / "celery-worker.log").read_text(errors="replace")
    executed = [line for line in worker_log.splitlines() if "Executing workload in Celery" in line]
    assert sum("score_partition" in line for line in executed) >= PARTITIONS, worker_log[-3000:]
    assert _celery_results(cluster.location.database) >= len(ran)

    day = dt.date.fromisoformat(asset_run["run_after"][:10]).isoformat()
    predictions = ml_home / "predictions" / "credit_default" / day
    summary = json.loads((predictions / "_summary.json").read_text())
    assert (summary["partitions"], summary["rows"], summary["versions"]) == (
        PARTITIONS, PARTITIONS * PARTITION_ROWS, ["v0001"])
    assert sorted(p.name for p in predictions.glob("part-*.parquet")) == [
        f"part-{i}.parquet" for i in range(len(frames))]


def _celery_results(database: str) -> int:
    """Tasks whose result the Celery workers stored in the metadata database (the result backend)."""
    import psycopg2

    connection = psycopg2.connect(dbname=database, connect_timeout=5, **POSTGRES)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            return cursor.fetchone()[0]
    finally:
        connection.close()
