"""`make airflow` serves the Airflow UI with this bundle's DAGs and no import errors."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from include.ml.config import load_all
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
BASE = "http://localhost:8080"


def _get(path: str, token: str | None = None) -> dict:
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _token(password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(BASE + "/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["access_token"]


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.skipif(not _port_free(8080), reason="port 8080 is taken on this machine")
def test_make_airflow_lists_every_pipeline_dag_with_no_import_errors(tmp_path):
    home = tmp_path / "airflow-home"
    env = {**os.environ, "AIRFLOW_HOME": str(home)}
    log = open(tmp_path / "standalone.log", "w")  # noqa: SIM115
    server = subprocess.Popen(["make", "airflow"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        expected = {c.dag_id for c in load_all()}
        deadline, listed, token = time.monotonic() + 240, set(), None
        while time.monotonic() < deadline and listed != expected:
            assert server.poll() is None, (tmp_path / "standalone.log").read_text()[-3000:]
            time.sleep(3)
            try:
                if token is None:
                    passwords = home / "simple_auth_manager_passwords.json.generated"
                    token = _token(json.loads(passwords.read_text())["admin"])
                listed = {d["dag_id"] for d in _get("/api/v2/dags", token)["dags"]} & expected
            except (OSError, urllib.error.URLError, KeyError, ValueError):
                continue
        assert listed == expected, (tmp_path / "standalone.log").read_text()[-3000:]
        assert _get("/api/v2/importErrors", token)["total_entries"] == 0
        with urllib.request.urlopen(BASE + "/", timeout=10) as page:
            assert page.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get("/api/v2/dags")
        assert refused.value.code in (401, 403)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=30)
        time.sleep(5)  # let the standalone's children finish their own shutdown, then make sure
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
