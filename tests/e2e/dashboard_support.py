"""What the dashboard tests share: a pipeline history made by the real training DAG (built once per
test session, with Airflow's StatsD metrics caught by a UDP listener), and a real `airflow api-server`
process with the plugins folder loaded."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, SESSION_DIR, _free_port

START = dt.date(2026, 1, 1)
PIPELINE = "credit_default"


class StatsdListener:
    """A UDP server on localhost that keeps every StatsD line it receives."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self.socket.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(packet.decode().splitlines())

    def close(self) -> None:
        time.sleep(0.5)  # packets in flight
        self._stop.set()
        self._thread.join()
        self.socket.close()


@dataclass
class History:
    home: Path
    run_ids: dict[str, str]  # logical date -> run id
    statsd: list[str] = field(default_factory=list)


_HISTORY: dict[str, History] = {}


def _initialise_stats() -> None:
    """What a worker's task process does at start: set Airflow's stats up from [metrics]."""
    from airflow.sdk._shared.observability.metrics import stats
    from airflow.sdk.observability.metrics import stats_utils

    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)


def trained_history() -> History:
    """Three logical dates of credit_default through the training DAG (``dag.test()``): the first
    promotes v0001, the second (drift switched on) is held, the third gets a 20-row batch and fails.
    Built once per session in its own data root; needs the ``airflow_db`` and ``smtp_inbox`` fixtures."""
    if PIPELINE in _HISTORY:
        return _HISTORY[PIPELINE]
    from airflow.dag_processing.dagbag import BundleDagBag

    from include.ml.config import get_pipeline
    from include.ml.simulate import write_batches

    home = SESSION_DIR / "dashboard-ml-home"
    listener = StatsdListener()
    run_ids = {}
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ML_HOME", str(home))
            patch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
            patch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
            patch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.port))
            _initialise_stats()
            config = get_pipeline(PIPELINE)
            batches = write_batches(config, START, 3, drift_from=START + dt.timedelta(days=1), rows=1500)
            # the third day's delivery is cut short: validation fails it at once (no retries)
            batches[2].write_text("".join(batches[2].read_text().splitlines(keepends=True)[:21]))
            bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT, bundle_name="ml_pipeline")
            assert not bag.import_errors
            dag = bag.dags[config.dag_id]
            for offset, expected in ((0, "success"), (1, "success"), (2, "failed")):
                day = START + dt.timedelta(days=offset)
                dag_run = dag.test(logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC))
                assert str(dag_run.state) == expected, (day, dag_run.state)
                run_ids[day.isoformat()] = dag_run.run_id
    finally:
        listener.close()
        _initialise_stats()  # metrics off again for the rest of the session
    _HISTORY[PIPELINE] = History(home=home, run_ids=run_ids, statsd=listener.lines)
    return _HISTORY[PIPELINE]


@dataclass
class ApiServer:
    base: str
    password: str
    log: Path

    def token(self, username: str = "admin", password: str | None = None) -> str:
        body = json.dumps({"username": username, "password": password or self.password}).encode()
        request = urllib.request.Request(self.base + "/auth/token", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as response:
            return json.load(response)["access_token"]

    def get(self, path: str, token: str | None = None, cookie: str | None = None) -> tuple[int, str]:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if cookie:
            headers["Cookie"] = f"_token={cookie}"
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base + path, headers=headers),
                                        timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@contextlib.contextmanager
def api_server(ml_home: Path, tmp: Path) -> Iterator[ApiServer]:
    """``airflow api-server`` (one worker) on a free port with this bundle's plugins, serving ``ml_home``."""
    port = _free_port()
    base = f"http://localhost:{port}"
    env = {**os.environ, "ML_HOME": str(ml_home), "AIRFLOW__API__BASE_URL": base}
    log_path = tmp / "api-server.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen([str(ROOT / "bin" / "airflow"), "api-server", "--port", str(port), "--workers", "1"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "api-server did not answer:\n" + log_path.read_text()[-3000:]
            try:
                with urllib.request.urlopen(base + "/api/v2/monitor/health", timeout=5):
                    break
            except (OSError, urllib.error.URLError):
                time.sleep(1)
        passwords = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        yield ApiServer(base, json.loads(passwords.read_text())["admin"], log_path)
    finally:
        stop_group(server, grace=30)
        log.close()


def stop_group(process: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process group ``process`` leads (started with ``start_new_session``), SIGKILL after
    ``grace`` seconds if it is still there."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
