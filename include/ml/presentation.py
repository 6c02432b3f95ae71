"""How the pipeline's records look to a person: the one Jinja environment over
``include/ml/templates`` (autoescaped: every value from a file is text, never markup), the one
value formatter, and the colours shared by the pages, the report file and the alert emails.

Templates are found next to this file, so they load wherever the DAG bundle is deployed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"
NOTHING = "–"  # what a missing number or value prints as, everywhere (pages, emails, command line)
LINK_SCHEMES = ("", "http", "https", "mailto")  # "" is a relative link; anything else (javascript:) is dropped

OUTCOME_COLOURS = {"promote": "#2e7d32", "hold": "#b7791f", "reject": "#c62828", "failed": "#6a1b9a",
                   "running": "#1565c0", "waiting": "#607d8b"}
OUTCOME_LABELS = {"waiting": "waiting for its batch"}  # how an outcome reads where its id is not plain words
LEVEL_COLOURS = {"severe": "#e4572e", "drifted": "#f3a712", "none": "#cfe8cf", "ok": "#cfe8cf",
                 "insufficient_data": "#d8d8d8"}  # the drift heatmap's cells
DRIFT_ROW_COLOURS = {"severe": "#f4b6b6", "drifted": "#fde2a8", "none": "#dcefdc",
                     "insufficient_data": "#e8e8e8"}  # the drift table's rows

#: what an Airflow run id's prefix says about who started the run (``scheduled__2026-01-02T00:00:00+00:00``)
RUN_KINDS = {"scheduled": "scheduled run", "manual": "manual run", "backfill": "backfill run",
             "asset_triggered": "asset-triggered run", "dataset_triggered": "asset-triggered run"}
_RUN_ID = re.compile(r"^(?P<kind>[a-z_]+?)__(?P<date>\d{4}-\d{2}-\d{2})?")

__all__ = ["NOTHING", "RUN_KINDS", "Markup", "actor", "environment", "escape", "href", "number", "render", "when"]


def number(value: object, digits: int = 4, sign: bool = False) -> str:
    """A value as shown: floats with ``digits`` decimals (``sign``: always a + or -), integers with
    thousands separators, booleans as yes/no, None and NaN as :data:`NOTHING`, text as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:+,}" if sign else f"{value:,}"
    return value if isinstance(value, str) else str(value)


def when(value: object) -> str:
    """An ISO time as a person reads it, in UTC and saying so (``2026-01-03 14:05 UTC``); a bare date
    stays a date; anything else (missing, not a time) as :func:`number` shows it."""
    if not isinstance(value, str) or len(value) < 10:
        return number(value)
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if len(value) == 10:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def actor(value: object) -> str:
    """Who changed something, as a person reads it: ``alice via manual__…`` is ``alice (manual run)``,
    a bare run id is the kind of run (``scheduled run of 2026-01-02``), ``cli:bob`` is ``bob (command
    line)``; anything else as it is."""
    text = number(value)
    if not isinstance(value, str) or not value.strip():
        return text
    person, _, run = value.partition(" via ")
    if run:
        kind = _RUN_ID.match(run)
        return f"{person} ({RUN_KINDS.get(kind['kind'], 'run ' + run) if kind else 'run ' + run})"
    if value.startswith("cli:"):
        return f"{value.removeprefix('cli:')} (command line)"
    kind = _RUN_ID.match(value)
    if kind and kind["kind"] in RUN_KINDS:
        return RUN_KINDS[kind["kind"]] + (f" of {kind['date']}" if kind["date"] else "")
    return text


def href(url: object) -> str:
    """``url`` when it is a web, mail or relative link; ``#`` for anything that could run script
    (``javascript:``, ``data:``, ``vbscript:``)."""
    text = "" if url is None else str(url).strip()
    try:
        scheme = urlsplit(text).scheme.lower()
    except ValueError:
        return "#"
    return text if scheme in LINK_SCHEMES else "#"


@cache
def environment() -> jinja2.Environment:
    """The Jinja environment of every page and email: autoescaping on, undefined names an error."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["number"] = number
    env.filters["href"] = href
    env.filters["when"] = when
    env.filters["actor"] = actor
    env.globals.update(NOTHING=NOTHING, OUTCOME_COLOURS=OUTCOME_COLOURS, OUTCOME_LABELS=OUTCOME_LABELS,
                       DRIFT_ROW_COLOURS=DRIFT_ROW_COLOURS)
    return env


def render(template: str, **context: object) -> Markup:
    """``template`` (a file name under ``templates/``) rendered with ``context``."""
    return Markup(environment().get_template(template).render(**context))
