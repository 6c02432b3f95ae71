"""`make airflow` is a complete local Airflow: it serves this bundle's DAGs with no import errors, a
run whose batch is missing waits deferred (no worker slot) and then sends one "batch late" email to
the local mailbox, and one SIGTERM stops every process it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from bin.local_airflow import mail_subjects
from include.ml.config import get_pipeline, load_all
from tests.conftest import ROOT, _free_port

pytestmark = pytest.mark.e2e
LATE_DAY = "2026-03-01"  # no batch lands for this date


class Api:
    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, path: str, body: dict | None = None, method: str | None = None, auth: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=json.dumps(body).encode() if body is not None else None,
                                         headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def login(self, home: Path) -> None:
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        self.token = self.call("/auth/token", {"username": "admin", "password": password}, auth=False)["access_token"]


def _processes_of(home: Path) -> list[psutil.Process]:
    """Every process whose environment names this Airflow home (whatever its process group)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("AIRFLOW_HOME") == str(home) and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def _until(what: str, check, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, urllib.error.URLError, KeyError, ValueError, StopIteration):
            result = check()
            if result:
                return result
        time.sleep(2)
    raise AssertionError(f"{what} within {timeout:.0f} s; make airflow's output:\n{log.read_text()[-4000:]}")


def test_make_airflow_serves_the_dags_mails_a_late_batch_and_stops_every_process_on_sigterm(tmp_path, monkeypatch):
    home, ml_home, log_path = tmp_path / "airflow-home", tmp_path / "ml-home", tmp_path / "make-airflow.log"
    monkeypatch.setenv("ML_HOME", str(ml_home))
    port = _free_port()
    env = {**os.environ, "AIRFLOW_HOME": str(home), "ML_HOME": str(ml_home), "AIRFLOW__API__PORT": str(port),
           "ML_SMTP_PORT": str(_free_port())}
    env.pop("AIRFLOW__API__BASE_URL", None)
    api = Api(f"http://localhost:{port}")
    config = get_pipeline("credit_default")
    with open(log_path, "w") as log:
        server = subprocess.Popen(["make", "airflow"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        _until("Airflow healthy", lambda: all(
            part["status"] == "healthy" for part in api.call("/api/v2/monitor/health", auth=False).values()
            if isinstance(part, dict) and "status" in part), 300, log_path)
        api.login(home)
        expected = {c.dag_id for c in load_all()}
        _until("every pipeline DAG listed", lambda: expected <= {
            d["dag_id"] for d in api.call("/api/v2/dags?limit=100")["dags"]}, 240, log_path)
        assert api.call("/api/v2/importErrors")["total_entries"] == 0
        with pytest.raises(urllib.error.HTTPError) as refused:
            api.call("/api/v2/dags", auth=False)
        assert refused.value.code in (401, 403)
        output = log_path.read_text()
        assert f"Maildir {ml_home / 'mail'}" in output and f"http://localhost:{port}" in output

        # a run for a date whose batch never lands: it waits deferred, holding no worker slot, then fails
        api.call(f"/api/v2/dags/{config.dag_id}", {"is_paused": False}, method="PATCH")
        run = api.call(f"/api/v2/dags/{config.dag_id}/dagRuns", {
            "dag_run_id": f"late__{LATE_DAY}", "logical_date": f"{LATE_DAY}T00:00:00Z",
            "conf": {"batch_wait_minutes": 0.5}})
        wait_task = f"/api/v2/dags/{config.dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/wait_for_batch"
        _until("wait_for_batch deferred", lambda: api.call(wait_task)["state"] == "deferred", 180, log_path)
        pool = api.call("/api/v2/pools/default_pool")
        assert pool["deferred_slots"] >= 1 and pool["running_slots"] == 0, pool
        rendered = api.call(wait_task)["rendered_fields"]["filepath"]
        assert rendered == str(config.source.path_for(LATE_DAY)), "the run shows which date's file it reads"
        _until("the late run failed", lambda: api.call(
            f"/api/v2/dags/{config.dag_id}/dagRuns/{run['dag_run_id']}")["state"] == "failed", 240, log_path)
        subject = f"[ml:credit_default] BATCH LATE wait_for_batch in {config.dag_id} ({LATE_DAY})"
        subjects = _until("the batch-late email in the mailbox", lambda: mail_subjects(ml_home / "mail")
                          if subject in mail_subjects(ml_home / "mail") else None, 60, log_path)
        assert subjects.count(subject) == 1, subjects
        assert api.call(wait_task)["state"] == "failed"
        assert _processes_of(home), "the test must see Airflow's processes to check they stop"
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # what a service manager or `kill` sends
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=120)
    deadline = time.monotonic() + 120
    while _processes_of(home) and time.monotonic() < deadline:
        time.sleep(1)
    left = [(p.pid, " ".join(p.cmdline())[:120]) for p in _processes_of(home)]
    for process in _processes_of(home):  # never leave them to the next test
        with contextlib.suppress(psutil.Error):
            process.kill()
    assert not left, f"processes left after SIGTERM: {left}"
    assert "stopped: no process of this Airflow is left" in log_path.read_text()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://localhost:{port}/api/v2/monitor/health", timeout=5)
