"""`make demo` tells the story the README promises: a first promotion, then a drift hold."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e


def test_make_demo_promotes_first_then_holds_on_drift_and_delivers_the_emails(tmp_path):
    env = {**os.environ, "ML_HOME": str(tmp_path / "ml-home"), "AIRFLOW_HOME": str(tmp_path / "airflow-home")}
    env.pop("AIRFLOW_CONN_SMTP_DEFAULT")  # the demo starts its own SMTP server and points smtp_default at it
    result = subprocess.run(["make", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    runs = re.findall(r"^(2026-01-0\d)\s+(v\d{4})\s+([\d.]+)\s+(\S+)\s+(promote|hold|reject)\s+(v\d{4})",
                      result.stdout, flags=re.MULTILINE)
    assert [r[0] for r in runs] == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    first, last = runs[0], runs[-1]
    assert (first[1], first[4], first[5]) == ("v0001", "promote", "v0001")
    assert last[3] == "drift" and last[4] == "hold"
    assert last[5] == runs[-2][5], "the drift hold must leave production where it was"
    assert "PROMOTED: v0001 is now in production" in result.stdout
    assert f"HOLD (drift): {last[1]} not promoted, production stays {last[5]}" in result.stdout
    assert (tmp_path / "ml-home" / "registry" / "credit_default" / "production.json").exists()
