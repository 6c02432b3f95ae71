"""Airflow in its production shape as real local processes: scheduler, DAG processor, triggerer,
API server and a Celery worker on PostgreSQL and Redis, configured from `deploy/airflow.env` (the
file docker-compose.yaml uses) plus where things are on this machine."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.settings import ROOT, read_settings

AIRFLOW = Path(sys.executable).with_name("airflow")
ADMIN = "admin"

#: the long-running components, as docker-compose.yaml runs them (command after `airflow`)
COMPONENTS = {
    "api-server": ["api-server", "--port", "{api_port}", "--host", "127.0.0.1"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer"],
    "celery-worker": ["celery", "worker", "--queues", "{queue}", "--concurrency", "4",
                      "--celery-hostname", "{queue}@%h"],
}

#: speed for a 2-core machine and isolation from other runs on it: tuning, not the shape
LOCAL_TUNING = {
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
    "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "5",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
    "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Location:
    """Where this run's services and files are: the values deploy/airflow.env's variables take."""

    airflow_home: Path
    ml_home: Path
    database: str
    redis_db: int
    smtp_port: int
    queue: str
    api_port: int = field(default_factory=free_port)
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def variables(self) -> dict[str, str]:
        """Values for every ``${NAME}`` in deploy/airflow.env (compose takes them from .env)."""
        return {
            "POSTGRES_USER": "postgres", "POSTGRES_PASSWORD": "", "POSTGRES_HOST": self.postgres_host,
            "POSTGRES_PORT": str(self.postgres_port), "POSTGRES_DB": self.database,
            "REDIS_PASSWORD": "", "REDIS_HOST": self.redis_host, "REDIS_PORT": str(self.redis_port),
            "REDIS_DB": str(self.redis_db),
            "AIRFLOW_API_URL": self.api_url, "AIRFLOW_ADMIN_USERNAME": ADMIN,
            "AIRFLOW_HOME": str(self.airflow_home), "ML_HOME": str(self.ml_home), "ML_BUNDLE_PATH": str(ROOT),
        }


def airflow_environment(location: Location, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process of the run.

    deploy/airflow.env value for value (the shape); this run's locations, fresh secrets (compose:
    from .env), the SMTP connection (compose: mailpit), then local tuning. The test session's own
    Airflow settings (SQLite, bin/airflow-env's bundle) are dropped so nothing leaks in.
    """
    base = dict(os.environ if base is None else base)
    env = {key: value for key, value in base.items()
           if not key.startswith(("AIRFLOW", "COV_CORE", "COVERAGE_PROCESS"))}
    env.update(read_settings())
    env.update(location.variables())
    env.update({
        "PATH": f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        # compose: from .env, required; the test reads the registry the cluster writes, so with the test's key
        "ML_SIGNING_KEY": base.get("ML_SIGNING_KEY") or secrets.token_hex(32),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": location.smtp_port,
            "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1}}),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": location.queue,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        **LOCAL_TUNING,
    })
    return env


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class ClusterError(AssertionError):
    """The cluster did not do what was expected; carries the processes' log tails."""


class AirflowCluster:
    """The Airflow components as process groups of their own, logs under ``log_dir``."""

    def __init__(self, location: Location, log_dir: Path, deadline: float):
        self.location = location
        self.env = airflow_environment(location)
        self.log_dir = log_dir
        self.deadline = deadline
        self.processes: dict[str, subprocess.Popen] = {}
        self._token: str | None = None

    # -- processes -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Migrate the fresh metadata database and write the admin's password (compose: airflow-init)."""
        auth = self.location.airflow_home / "auth"
        auth.mkdir(parents=True, exist_ok=True)
        self.password = secrets.token_urlsafe(16)
        (auth / "simple_auth_manager_passwords.json").write_text(json.dumps({ADMIN: self.password}))
        self.location.ml_home.mkdir(parents=True, exist_ok=True)
        migrate = subprocess.run([str(AIRFLOW), "db", "migrate"], env=self.env, capture_output=True, text=True,
                                 timeout=max(30.0, self.deadline - time.monotonic()))
        (self.log_dir / "db-migrate.log").write_text(migrate.stdout + migrate.stderr)
        if migrate.returncode != 0:
            raise ClusterError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-4000:]}")

    def start(self) -> None:
        values = {"api_port": str(self.location.api_port), "queue": self.location.queue}
        for name, arguments in COMPONENTS.items():
            log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 (closed by the child's exit)
            command = [str(AIRFLOW), *(a.format(**values) for a in arguments)]
            self.processes[name] = subprocess.Popen(command, env=self.env, cwd=self.location.airflow_home,
                                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()

    def stop(self, grace: float = 30.0) -> dict[str, int | None]:
        """SIGTERM to every process group, wait up to ``grace`` seconds, then SIGKILL; exit codes."""
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        until = time.monotonic() + grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, until - time.monotonic()))
        for process in self.processes.values():
            # the group too: task processes and parsing children left behind by a killed parent
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        return {name: process.returncode for name, process in self.processes.items()}

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ClusterError(f"airflow {name} exited with {process.returncode}\n{self.log_tails()}")

    def log_tails(self, lines: int = 40) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"----- {path.name} (last {len(tail)} lines) -----\n" + "\n".join(tail))
        return "\n".join(parts)

    def task_log_tails(self, dag_id: str, run_id: str, task_ids: set[str], lines: int = 30) -> str:
        """The end of each attempt's log of ``task_ids`` in a run (Airflow's default log layout)."""
        parts = []
        for path in sorted((self.location.airflow_home / "logs" / f"dag_id={dag_id}").glob("*/task_id=*/**/*.log")):
            if f"run_id={run_id}" in str(path) and any(f"task_id={t}" in str(path) for t in task_ids):
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"----- {path.relative_to(self.location.airflow_home)} -----\n" + "\n".join(tail))
        return "\n".join(parts)

    def wait_until(self, what: str, probe, interval: float = 2.0):
        """Call ``probe`` until it returns something truthy; fail with the log tails at the deadline."""
        while True:
            self.assert_running()
            try:
                result = probe()
            except (OSError, urllib.error.URLError, ValueError, KeyError):
                result = None
            if result:
                return result
            if time.monotonic() > self.deadline:
                raise ClusterError(f"timed out waiting for {what}\n{self.log_tails()}")
            time.sleep(interval)

    # -- the REST API ----------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            self._token = self.request("POST", "/auth/token", {"username": ADMIN, "password": self.password},
                                       authenticated=False)["access_token"]
        return self._token

    def request(self, method: str, path: str, body: dict | None = None, authenticated: bool = True) -> dict:
        headers = {"Content-Type": "application/json"}
        if authenticated:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(self.location.api_url + path, method=method, headers=headers,
                                         data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def dag_runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        quoted = urllib.request.quote(run_id, safe="")
        return self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")[
            "task_instances"]
