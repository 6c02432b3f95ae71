"""The docs tell the truth: the front-door commands and a runbook section for every alert."""

from __future__ import annotations

import re
from pathlib import Path

from include.ml.alerts import EVENTS

ROOT = Path(__file__).resolve().parents[1]


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_every_alert_email_links_to_a_runbook_section_that_names_its_subject():
    runbook = (ROOT / "RUNBOOK.md").read_text()
    anchors = _anchors(runbook)
    for event, (tag, anchor, _) in EVENTS.items():
        assert anchor in anchors, f"alert {event!r} links to #{anchor}, which RUNBOOK.md lacks"
        section = runbook.split(f"### Alert: {anchor.removeprefix('alert-').replace('-', ' ')}", 1)[1]
        section = section.split("\n### ", 1)[0]
        assert tag in section, f"runbook section #{anchor} does not name the subject tag {tag!r}"


def test_ci_entry_point_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
