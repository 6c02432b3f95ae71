"""deploy/check-secrets.sh, the first thing airflow-init runs, tested natively with bash (no Docker
engine here): it refuses while any CHANGE_ME value of .env.example remains, naming each variable and
never printing a value, and passes once every one is set."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.settings import ROOT

SCRIPT = ROOT / "deploy" / "check-secrets.sh"


def _run(environment: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env={"PATH": "/usr/bin:/bin", **environment},
                          capture_output=True, text=True)


def _example_values() -> dict[str, str]:
    text = (ROOT / ".env.example").read_text()
    return dict(re.findall(r"^(\w+)=(.*)$", text, re.MULTILINE))


def test_an_unchanged_copy_of_env_example_is_refused_naming_each_placeholder_variable():
    example = _example_values()
    placeholders = sorted(name for name, value in example.items() if value == "CHANGE_ME")

    result = _run(example)

    assert result.returncode == 1
    assert len(placeholders) >= 5
    named = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert named == placeholders
    assert f"{len(placeholders)} variable(s) still set to the CHANGE_ME placeholder" in result.stderr


def test_a_placeholder_inside_a_longer_value_is_refused_and_no_value_is_printed():
    result = _run({"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:CHANGE_ME@db/airflow",
                   "GOOD_SECRET": "s3cr3t-value"})

    assert result.returncode == 1
    assert "  AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" in result.stderr
    assert "GOOD_SECRET" not in result.stderr and "s3cr3t-value" not in result.stderr + result.stdout
    assert "postgresql://" not in result.stderr


def test_it_passes_once_every_placeholder_is_set():
    example = {name: ("set-" + name.lower() if value == "CHANGE_ME" else value)
               for name, value in _example_values().items()}

    result = _run(example)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
