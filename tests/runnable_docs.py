"""Running a document's commands: every shell block marked ```` ```bash runnable ```` runs in the order of
the document, from the repository root after `source bin/airflow-env` (as the docs tell a person to do);
each must exit 0, and each ``# expect: <regex>`` line in it must match its output. RUNBOOK.md and
docs/notebook-to-pipeline.md are run this way (tests/e2e/test_runbook.py, tests/e2e/test_user_code_dag.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import ROOT

BLOCK = re.compile(r"^```bash runnable\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPECT = re.compile(r"^# expect: (.+)$", re.MULTILINE)


def runnable_blocks(document: Path) -> list[str]:
    """The runnable shell blocks of ``document``, in order."""
    return BLOCK.findall(document.read_text())


def run_blocks(document: Path, env: dict[str, str], timeout: int = 600) -> int:
    """Run every runnable block of ``document`` with ``env``, asserting its exit status and its
    ``# expect:`` lines; return how many ran."""
    blocks = runnable_blocks(document)
    for number, block in enumerate(blocks, 1):
        script = f"set -euo pipefail\ncd '{ROOT}'\nsource bin/airflow-env\n{block}"
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=timeout)
        output = done.stdout + done.stderr
        where = (f"{document.name} block {number}:\n{block}\n--- output (exit {done.returncode}) ---\n"
                 f"{output[-3000:]}")
        assert done.returncode == 0, where
        for expected in EXPECT.findall(block):
            assert re.search(expected, output), f"expected /{expected}/ in the output of {where}"
    return len(blocks)
