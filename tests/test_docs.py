"""The docs tell the truth: the front-door commands and a runbook section for every alert."""

from __future__ import annotations

import re
from pathlib import Path

from include.ml.alerts import EVENTS

ROOT = Path(__file__).resolve().parents[1]


def _sections(markdown: str) -> dict[str, str]:
    """Each heading's GitHub-style anchor and the text under it (up to the next heading)."""
    parts = re.split(r"^#+\s+(.+)$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-"): body
            for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_readme_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_every_alert_email_links_to_a_runbook_section_that_names_its_subject():
    sections = _sections((ROOT / "RUNBOOK.md").read_text())
    for event, (tag, anchor, _) in EVENTS.items():
        assert anchor in sections, f"alert {event!r} links to #{anchor}, which RUNBOOK.md lacks"
        assert tag in sections[anchor], f"runbook section #{anchor} does not name the subject tag {tag!r}"


def test_ci_entry_point_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
