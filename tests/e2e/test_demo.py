"""`make demo` tells the story the README promises: a first promotion, a drift hold, scoring with
rejects and prediction drift, and the realised AUC once labels arrive."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.e2e


def test_make_demo_promotes_first_then_holds_on_drift_and_delivers_the_emails(demo):
    result, tmp_path = demo.result, demo.ml_home.parent
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
    # scoring of two dates, bad rows rejected with their reason, prediction drift on the drifted day
    scored = re.findall(r"^(2026-01-0\d)\s+(v\d{4})\s+2\s+2000\s+1997\s+3\s+(none|drift) \(wasserstein",
                        result.stdout, flags=re.MULTILINE)
    assert [(d, verdict) for d, _, verdict in scored] == [("2026-01-02", "none"), ("2026-01-04", "drift")]
    assert "rejected 3 row(s): age: not a number" in result.stdout
    # the realised-performance figure, once the labels arrived two days later
    realised = re.findall(r"^(2026-01-0\d)\s+(2026-01-0\d)\s+(v\d{4})\s+1997\s+(0\.\d{4})\s+(0\.\d{4})\s+(\w+)$",
                          result.stdout, flags=re.MULTILINE)
    assert [(labels, scored_on) for labels, scored_on, *_ in realised] == [
        ("2026-01-04", "2026-01-02"), ("2026-01-06", "2026-01-04")]
    assert all(0.7 < float(value) < 0.9 for *_, value, _, _ in realised)
    assert "PREDICTION DRIFT: " in result.stdout
    predictions = tmp_path / "ml-home" / "predictions" / "credit_default" / "2026-01-02"
    assert (predictions / "part-000.rejects.parquet").exists() and (predictions / "part-001.parquet").exists()
