"""How the pipeline's records look to a person: the one Jinja environment over
``include/ml/templates`` (autoescaped: every value from a file is text, never markup), the one
value formatter, and the colours shared by the pages, the report file and the alert emails.

Templates are found next to this file, so they load wherever the DAG bundle is deployed.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup, escape

TEMPLATES = Path(__file__).parent / "templates"
NOTHING = "–"  # what a missing number or value prints as, everywhere (pages, emails, command line)
LINK_SCHEMES = ("", "http", "https", "mailto")  # "" is a relative link; anything else (javascript:) is dropped

OUTCOME_COLOURS = {"promote": "#2e7d32", "hold": "#f3a712", "reject": "#c62828", "failed": "#6a1b9a",
                   "running": "#1565c0"}
LEVEL_COLOURS = {"severe": "#e4572e", "drifted": "#f3a712", "none": "#cfe8cf", "ok": "#cfe8cf",
                 "insufficient_data": "#d8d8d8"}  # the drift heatmap's cells
DRIFT_ROW_COLOURS = {"severe": "#f4b6b6", "drifted": "#fde2a8", "none": "#ffffff",
                     "insufficient_data": "#e8e8e8"}  # the drift table's rows

__all__ = ["NOTHING", "Markup", "environment", "escape", "href", "number", "render"]


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
    env.globals.update(NOTHING=NOTHING, OUTCOME_COLOURS=OUTCOME_COLOURS, DRIFT_ROW_COLOURS=DRIFT_ROW_COLOURS)
    return env


def render(template: str, **context: object) -> Markup:
    """``template`` (a file name under ``templates/``) rendered with ``context``."""
    return Markup(environment().get_template(template).render(**context))
