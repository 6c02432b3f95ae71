"""The shared Airflow settings of the production shape (`deploy/airflow.env`), read the way Compose
reads an `env_file` of single-quoted values: literally. Airflow expands the `${VARIABLES}` inside
them itself, from each process's environment."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "deploy" / "airflow.env"

_LINE = re.compile(r"^(?P<key>[A-Z][A-Z0-9_]*)='(?P<value>[^']*)'$")
_VARIABLE = re.compile(r"\$\{(\w+)\}")


class SettingsFileError(ValueError):
    """A line of the shared settings file that is not ``KEY='value'``."""


def read_settings(path: Path = SETTINGS_FILE) -> dict[str, str]:
    """Each ``KEY='value'`` of the file, in order; comments and blank lines skipped.

    Only single-quoted values are allowed: Compose passes them through without interpolation and
    without escape processing, so what this function returns is exactly what a container gets.
    """
    settings: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise SettingsFileError(f"{path}:{number}: expected KEY='value' (single quotes, no quote inside), "
                                    f"got {line!r}")
        if match["key"] in settings:
            raise SettingsFileError(f"{path}:{number}: {match['key']} is set twice")
        settings[match["key"]] = match["value"]
    return settings


def referenced_variables(settings: dict[str, str]) -> set[str]:
    """The ``${NAME}`` variables the values expect each process's environment to provide."""
    return {name for value in settings.values() for name in _VARIABLE.findall(value)}
