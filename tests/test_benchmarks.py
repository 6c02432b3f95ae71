"""The benchmark keeps running: a small run prints every step with its goal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_drift_benchmark_prints_every_step_with_a_verdict_and_meets_its_goals_at_small_size():
    result = subprocess.run([sys.executable, "benchmarks/drift_bench.py", "--rows", "20000", "--no-evidently"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    assert "none" in lines["drift report, no drift"] and "PASS" in lines["drift report, no drift"]
    assert "drift" in lines["drift report, severe drift"].split("20,000 x 20")[1]
    assert "passed" in lines["validation (config + training ranges)"]
