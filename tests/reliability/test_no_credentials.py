"""No credential in the repository, the logs, the run files or the emails.

The repository is scanned for private keys, cloud and chat tokens and literal passwords or secrets.
Then a real training run sends its alert through an SMTP server that requires a login, with a canary
password in ``smtp_default``: the password must reach the mail server (the email arrives) and
nowhere else: not the task logs, not Airflow's log folder, not the data root, not the email.
"""

from __future__ import annotations

import datetime as dt
import email
import json
import os
import re
import socket
import subprocess

import pytest

from include.ml.config import get_pipeline
from include.ml.simulate import write_batches
from tests.conftest import ROOT

pytestmark = pytest.mark.reliability

PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    # NAME = literal (not a variable, a call or a placeholder) for a secret-looking NAME
    "literal secret": re.compile(
        r"(?i)\b[\w.]*(?:password|passwd|secret|api_key|fernet_key|private_key)\w*\s*[:=]\s*['\"]?"
        r"(?!CHANGE_ME)([A-Za-z0-9+/=_\-]{12,})['\"]?\s*$", re.MULTILINE),
}
CANARY = "canary-Pw-7f3a9c2e51d84b06"


def _leaks(text: str) -> list[str]:
    return [f"{name}: {m.group(0)[:80]}" for name, pattern in PATTERNS.items() for m in pattern.finditer(text)]


def test_no_tracked_file_holds_a_credential():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    found = []
    for name in filter(None, (f.decode() for f in files)):
        path = ROOT / name
        if name == "requirements.lock" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}: {leak}" for leak in _leaks(text)]
    assert found == [], "\n".join(found)
    assert _leaks("DB_PASSWORD = 'hunter2hunter2hunter2'\n"), "the scan must catch a literal password"


class _AuthInbox:
    """An SMTP server that requires a login (AUTH PLAIN/LOGIN over a plain connection, localhost only)."""

    def __init__(self, port: int, login: str, password: str):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[email.message.Message] = []
        self.logins: list[str] = []

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == login and auth_data.password.decode() == password
            if ok:
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=ok)

        self.controller = Controller(self, hostname="127.0.0.1", port=port, authenticator=authenticate,
                                     auth_require_tls=False, auth_required=True)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def test_a_run_alerting_through_an_authenticated_smtp_server_leaks_its_password_nowhere(
        airflow_db, ml_home, monkeypatch, capfd, caplog):
    from airflow.dag_processing.dagbag import BundleDagBag

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _AuthInbox(port, "ml-alerts", CANARY)
    inbox.controller.start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port, "login": "ml-alerts", "password": CANARY,
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1}}))
    try:
        config = get_pipeline("credit_default")
        write_batches(config, dt.date(2026, 1, 1), 1, rows=1000)
        bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT, bundle_name="ml_pipeline")
        dag_run = bag.dags[config.dag_id].test(logical_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    finally:
        inbox.controller.stop()

    assert str(dag_run.state) == "success"
    assert inbox.logins and any("PROMOTED" in str(m["subject"]) for m in inbox.messages), \
        "the alert must go through the authenticated server, so the password was really used"
    captured = capfd.readouterr()
    places = {"task output": captured.out + captured.err, "log records": caplog.text,
              "emails": "\n".join(m.as_string() for m in inbox.messages)}
    for folder in (airflow_db / "logs", ml_home):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix not in {".parquet", ".joblib"}:
                places[str(path)] = path.read_text(errors="replace")
    assert len(places) > 10
    leaked = [where for where, text in places.items() if CANARY in text]
    assert leaked == [], f"the SMTP password appears in: {leaked}"
    secrets = [v for k, v in os.environ.items() if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", k) and len(v) >= 12]
    assert not [where for where, text in places.items() for s in secrets if s in text]


def test_a_run_reading_its_batch_through_a_database_connection_leaks_the_password_nowhere(
        airflow_db, ml_home, monkeypatch, capfd, caplog, smtp_inbox):
    """The SQL source (issue 18): the connection's password reaches PostgreSQL (the rows are read) and
    nothing else: not the task output or logs, the data root's files, XCom or the emails, also when the
    query fails (its error goes to the failure email and the run history)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from tests.sql_source_support import (
        CANARY_PASSWORD,
        START,
        connect,
        deliver,
        run,
        source_database,
        sql_pipeline,
        training_dag,
    )

    connect(monkeypatch)
    smtp_inbox.clear()
    with source_database() as database:
        deliver(database, START, seed=1)
        good = sql_pipeline(database)
        read, _ = run(training_dag(good), START)
        broken = sql_pipeline(database, query=f"SELECT * FROM {database.schema}.missing WHERE day = :ds")
        failed, _ = run(training_dag(broken), START + dt.timedelta(days=1))

    assert str(read.state) == "success" and str(failed.state) == "failed"
    smtp_inbox.wait_for("PROMOTED: v0001")
    smtp_inbox.wait_for("FAILED task extract")
    captured = capfd.readouterr()
    places = {"task output": captured.out + captured.err, "log records": caplog.text,
              "emails": "\n".join(m.as_string() for m in smtp_inbox.messages)}
    for folder in (airflow_db / "logs", ml_home):
        for path in folder.rglob("*"):
            if path.is_file():
                places[str(path)] = path.read_bytes().decode(errors="replace")  # Parquet files too
    with create_session() as session:
        for xcom in session.query(XComModel).filter(XComModel.run_id.in_([read.run_id, failed.run_id])):
            places[f"XCom {xcom.task_id}/{xcom.key}"] = json.dumps(xcom.value, default=str)
    assert any(where.startswith("XCom extract") for where in places) and len(places) > 10
    leaked = [where for where, text in places.items() if CANARY_PASSWORD in text]
    assert leaked == [], f"the database password appears in: {leaked}"
    assert not [where for where, text in places.items() if "postgresql+psycopg2://" in text]
