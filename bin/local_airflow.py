"""`make airflow`: this bundle in a complete local Airflow, stopped by one Ctrl-C or SIGTERM.

    .venv/bin/python bin/local_airflow.py         # serve until Ctrl-C / SIGTERM
    .venv/bin/python bin/local_airflow.py mail    # the subjects of the emails the local mail server kept

It starts a local SMTP server that keeps every alert email in a Maildir (``$ML_HOME/mail``, a
person reads it with any Maildir reader, or with ``mail`` above), points ``smtp_default`` at it, and
runs ``airflow standalone`` (API server and UI, scheduler, DAG processor, triggerer; LocalExecutor
on SQLite) in a process group of its own. Task processes put themselves in groups of their own, so
this process is their "subreaper" (Linux): whatever Airflow leaves behind comes back to it, and a stop
ends every process started, in order: SIGINT (standalone's own shutdown), SIGTERM, then SIGKILL.

Ports: the UI on ``$AIRFLOW__API__PORT`` (8080), mail on ``$ML_SMTP_PORT`` (8025; a free one when
taken). :class:`LocalAirflow` is also what ``make demo`` runs its scheduled runs on.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from email.header import decode_header, make_header
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36  # linux/prctl.h
STOP_SECONDS = 30  # how long each stop signal is given before the next, harder one


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens there, else a free port the system picks."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]


def mail_subjects(maildir: Path) -> list[str]:
    """The subjects of the emails in ``maildir``, oldest first (none when it does not exist yet)."""
    if not maildir.is_dir():
        return []
    box = mailbox.Maildir(maildir, create=False)
    messages = sorted((message.get_date(), str(make_header(decode_header(message["subject"] or ""))))
                      for message in box)
    return [subject for _, subject in messages]


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: no subreaper, the process group still stops
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


class LocalAirflow:
    """``airflow standalone`` with this bundle and a local mail server; :meth:`stop` ends every process
    it started. ``env`` is the environment to start from (default: this process's)."""

    def __init__(self, env: dict[str, str] | None = None, log: Path | None = None):
        env = dict(os.environ if env is None else env)
        env.setdefault("ML_HOME", str(ROOT / "var"))
        env.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))
        self.port = int(env.get("AIRFLOW__API__PORT") or 8080)
        env["AIRFLOW__API__PORT"] = str(self.port)
        env["AIRFLOW__API__BASE_URL"] = f"http://localhost:{self.port}"  # workers reach the API server here
        self.smtp_port = free_port(int(env.get("ML_SMTP_PORT") or 8025))
        env["ML_SMTP_PORT"] = str(self.smtp_port)
        env.pop("AIRFLOW_CONN_SMTP_DEFAULT", None)  # bin/airflow-env points smtp_default at ML_SMTP_PORT
        self.env = env
        self.maildir = Path(env["ML_HOME"]) / "mail"
        self.home = Path(env["AIRFLOW_HOME"])
        self.url = f"http://localhost:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None
        self._smtp = None
        self._token: str | None = None

    def start(self) -> LocalAirflow:
        """Migrate the metadata database, start the mail server and ``airflow standalone``."""
        from aiosmtpd.controller import Controller
        from aiosmtpd.handlers import Mailbox

        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        for part in ("tmp", "new", "cur"):  # a Maildir; aiosmtpd makes none in a folder that exists already
            (self.maildir / part).mkdir(parents=True, exist_ok=True)
        self._smtp = Controller(Mailbox(self.maildir), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        airflow = str(ROOT / "bin" / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=self.env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        out = open(self.log, "a") if self.log else None  # noqa: SIM115 (the child writes it until stop)
        self.process = subprocess.Popen([airflow, "standalone"], env=self.env, cwd=ROOT, stdout=out,
                                        stderr=subprocess.STDOUT if out else None, start_new_session=True)
        if out:
            out.close()
        return self

    def healthy(self) -> bool:
        """Whether the API answers and the scheduler, DAG processor and triggerer report healthy."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                health = json.load(response)
        except (OSError, ValueError):
            return False
        return all((health.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"))

    def wait_until_ready(self, timeout: float = 300) -> None:
        """Block until :meth:`healthy`; RuntimeError when standalone exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"airflow standalone exited with {self.process.returncode}"
                                   + (f"; see {self.log}" if self.log else ""))
            if self.healthy():
                return
            time.sleep(2)
        raise RuntimeError(f"Airflow was not ready within {timeout:.0f} s" + (f"; see {self.log}" if self.log else ""))

    def token(self, user: str = "admin") -> str:
        """An API token for ``user`` (the password standalone generated)."""
        passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        body = json.dumps({"username": user, "password": passwords[user]}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["access_token"]

    def api(self, path: str, body: dict | None = None, method: str | None = None) -> dict:
        """Call Airflow's REST API (``/api/v2/...``) as ``admin``; returns the JSON answer."""
        if self._token is None:
            self._token = self.token()
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode() if body is not None else None, method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
        return json.loads(answer) if answer else {}

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 240) -> None:
        """Block until the DAG processor has parsed every DAG of ``dag_ids``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                if dag_ids <= {d["dag_id"] for d in self.api("/api/v2/dags?limit=1000")["dags"]}:
                    return
            time.sleep(2)
        raise RuntimeError(f"DAGs {sorted(dag_ids)} not parsed within {timeout:.0f} s"
                           + (f"; see {self.log}" if self.log else ""))

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.api(f"/api/v2/dags/{dag_id}", {"is_paused": paused}, method="PATCH")

    def run_date(self, dag_id: str, ds: str, run_id: str, note: str, timeout: float = 600) -> dict:
        """Trigger ``dag_id`` for logical date ``ds`` as run ``run_id`` (an earlier run of that id is
        deleted first) and wait until it ends; returns the run."""
        with contextlib.suppress(urllib.error.HTTPError):  # 404: there was none
            self.api(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", method="DELETE")
        self.api(f"/api/v2/dags/{dag_id}/dagRuns",
                 {"dag_run_id": run_id, "logical_date": f"{ds}T00:00:00Z", "note": note})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.api(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise RuntimeError(f"run {run_id} of {dag_id} did not end within {timeout:.0f} s")

    def stop(self) -> None:
        """End every process started: standalone's group by SIGINT (its own shutdown), then whatever is
        left (task processes run in groups of their own) by SIGTERM and at last SIGKILL; then the mail
        server."""
        import psutil

        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_SECONDS)
        me = psutil.Process()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = me.children(recursive=True)
            if self.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, sig)
            for child in left:
                with contextlib.suppress(psutil.Error):
                    child.send_signal(sig)
            psutil.wait_procs(left, timeout=STOP_SECONDS if sig == signal.SIGTERM else 5)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None

    def __enter__(self) -> LocalAirflow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve() -> int:
    """Run until Ctrl-C or SIGTERM (or until standalone exits), then stop everything."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # make (our parent) killed: stop too
    stopping = []

    def request_stop(signum, _frame) -> None:
        stopping.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)
    local = LocalAirflow()
    print(f"Alert emails go to a local mail server on 127.0.0.1:{local.smtp_port} (smtp_default); they are kept in "
          f"the Maildir {local.maildir}\n  read them: .venv/bin/python bin/local_airflow.py mail", flush=True)
    print(f"Airflow UI: {local.url}  (user 'admin', password in "
          f"{local.home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops everything", flush=True)
    local.start()
    try:
        while not stopping and local.process.poll() is None:
            time.sleep(0.5)
    finally:
        print("stopping Airflow and the mail server ...", flush=True)
        local.stop()
    print("stopped: no process of this Airflow is left", flush=True)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["mail"]:
        maildir = Path(os.environ.get("ML_HOME") or ROOT / "var") / "mail"
        subjects = mail_subjects(maildir)
        print(f"{len(subjects)} email(s) in {maildir}:")
        for subject in subjects:
            print("  ", subject)
        return 0
    if argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    return serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
