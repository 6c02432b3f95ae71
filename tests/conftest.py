"""Test environment: the same Airflow settings as `bin/airflow` (read from bin/airflow-env), with an
Airflow home, data root and SMTP port of the test session's own. Set before Airflow is imported."""

from __future__ import annotations

import asyncio
import email
import html
import os
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="ml-pipeline-tests-"))
# The model signing key of every test (include/ml/signing.py); subprocesses inherit it from os.environ.
TEST_SIGNING_KEY = "7e57" * 16
SIGNING_VARIABLES = ("ML_SIGNING_KEY", "ML_SIGNING_KEY_FILE", "ML_SIGNING_KEY_ID", "ML_SIGNING_PREVIOUS_KEYS",
                     "ML_SIGNING_PREVIOUS_KEYS_FILE")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _airflow_env() -> dict[str, str]:
    """The environment bin/airflow-env produces for this session's home, data root and SMTP port."""
    base = {
        **os.environ,
        "AIRFLOW_HOME": str(SESSION_DIR / "airflow-home"),
        "ML_HOME": str(SESSION_DIR / "ml-home"),
        "ML_SMTP_PORT": str(_free_port()),
    }
    for key in ("AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
                *SIGNING_VARIABLES):
        base.pop(key, None)
    base["ML_SIGNING_KEY"] = TEST_SIGNING_KEY  # so bin/airflow-env creates no key file
    out = subprocess.run(["bash", "-c", f"source '{ROOT}/bin/airflow-env' && env -0"], env=base,
                         capture_output=True, check=True).stdout.decode()
    return dict(item.split("=", 1) for item in out.split("\0") if "=" in item)


os.environ.update(_airflow_env())
# HistGradientBoosting starts one OpenMP thread per core and busy-waits; with Airflow's processes on
# a 2-core machine a sub-second fit was seen to take 100 s. One thread keeps the tests steady.
os.environ.setdefault("OMP_NUM_THREADS", "1")
SMTP_PORT = int(os.environ["ML_SMTP_PORT"])


@pytest.fixture(scope="session", autouse=True)
def _test_signing_key():
    """Every test signs and verifies with :data:`TEST_SIGNING_KEY` (set at import too, for DAG parsing);
    a test that needs another key or none changes it with ``monkeypatch``."""
    for key in SIGNING_VARIABLES:
        os.environ.pop(key, None)
    os.environ["ML_SIGNING_KEY"] = TEST_SIGNING_KEY
    yield


class SmtpInbox:
    """A real SMTP server on localhost (aiosmtpd) that keeps every message it receives."""

    def __init__(self, port: int):
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        with self._lock:
            self.messages.append(message)
        await asyncio.sleep(0)
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["subject"]) for m in self.messages]

    def wait_for(self, text: str, timeout: float = 15.0) -> Message:
        """The first message whose subject contains ``text``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.messages:
                    if text in str(message["subject"]):
                        return message
            time.sleep(0.1)
        raise AssertionError(f"no email with {text!r} in its subject; got {self.subjects()}")

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


def body_of(message: Message) -> str:
    """The decoded text of an email (all parts), HTML entities unescaped."""
    parts = message.walk() if message.is_multipart() else [message]
    return html.unescape("".join(
        part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for part in parts
        if part.get_content_maintype() == "text"
    ))


@pytest.fixture(scope="session")
def smtp_inbox():
    inbox = SmtpInbox(SMTP_PORT)
    inbox.controller.start()
    yield inbox
    inbox.controller.stop()


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata database in the session's Airflow home."""
    result = subprocess.run([str(ROOT / "bin" / "airflow"), "db", "migrate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture
def ml_home(tmp_path, monkeypatch) -> Path:
    """A fresh data root (landing, registry, runs, quarantine) for one test."""
    home = tmp_path / "ml-home"
    monkeypatch.setenv("ML_HOME", str(home))
    return home


# -- one `make demo` per test session, in a data root and Airflow home of its own: the demo test
# checks its story, the runbook test runs the runbook's commands against what it left behind.


@dataclass(frozen=True)
class Demo:
    result: subprocess.CompletedProcess
    ml_home: Path
    airflow_home: Path

    @property
    def env(self) -> dict[str, str]:
        """The session's environment pointed at the demo's data root and Airflow home."""
        return {**os.environ, "ML_HOME": str(self.ml_home), "AIRFLOW_HOME": str(self.airflow_home)}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo")
    ml_home, airflow_home = root / "ml-home", root / "airflow-home"
    env = {**os.environ, "ML_HOME": str(ml_home), "AIRFLOW_HOME": str(airflow_home)}
    env.pop("AIRFLOW_CONN_SMTP_DEFAULT", None)  # the demo starts its own SMTP server and points smtp_default at it
    result = subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    return Demo(result, ml_home, airflow_home)
