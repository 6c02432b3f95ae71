"""RUNBOOK.md's commands work: every shell block marked ```` ```bash runnable ```` runs, in the order
of the document, against the environment `make demo` leaves behind (its own data root and Airflow
home), after `source bin/airflow-env` as the runbook tells the operator to do. A command that
fails, or whose output no longer says what the runbook says it shows, breaks the build."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.runnable_docs import run_blocks

pytestmark = pytest.mark.e2e


def test_the_runbook_has_runnable_commands_for_every_alert_and_procedure():
    from include.ml.alerts import EVENTS
    from tests.test_docs import _sections

    sections = _sections((ROOT / "RUNBOOK.md").read_text())
    for _, anchor, _ in EVENTS.values():
        assert "```bash runnable" in sections[anchor], f"runbook section #{anchor} has no tested command"
    for procedure in ("rollback", "backfill-and-rerun", "maintenance", "quick-start"):
        assert "```bash runnable" in "".join(body for name, body in sections.items() if name.startswith(procedure)), \
            f"runbook section #{procedure} has no tested command"


def test_every_runnable_runbook_command_works_on_the_demo_environment(demo, smtp_inbox):
    assert demo.result.returncode == 0, demo.result.stdout[-3000:]
    assert run_blocks(ROOT / "RUNBOOK.md", demo.env) >= 15
