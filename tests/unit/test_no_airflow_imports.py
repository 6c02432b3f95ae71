"""The library stays free of Airflow, and the modules a DAG file imports while parsing stay cheap:
no pandas, no scikit-learn, no Airflow (the scheduler parses DAG files often)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from include.ml.paths import REPO_ROOT

LIBRARY = REPO_ROOT / "include" / "ml"
HEAVY = ("airflow", "pandas", "sklearn")


def airflow_imports(source: str) -> list[str]:
    """Every ``import airflow...`` / ``from airflow... import`` in ``source``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "airflow"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "airflow":
            found.append(node.module)
    return found


def loaded_after_import(module: str) -> list[str]:
    """Top-level packages among HEAVY that importing ``module`` in a fresh interpreter loads."""
    probe = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.py")), ids=lambda p: p.name)
def test_no_library_module_imports_airflow(path: Path):
    assert airflow_imports(path.read_text()) == []


def test_the_import_check_finds_airflow_imports_wherever_they_are():
    source = "import os\nimport airflow.sdk as sdk\ndef f():\n    from airflow.sdk import task\n"

    assert airflow_imports(source) == ["airflow.sdk", "airflow.sdk"]


def test_the_library_has_modules_to_check():
    assert {"config.py", "steps.py", "registry.py"} <= {p.name for p in LIBRARY.glob("*.py")}


@pytest.mark.parametrize("module", ["include.ml.config", "include.ml.steps"])
def test_modules_a_dag_file_imports_load_no_heavy_packages(module: str):
    assert loaded_after_import(module) == []


def test_the_import_probe_sees_a_heavy_import():
    assert loaded_after_import("include.ml.validate") == ["pandas"]
