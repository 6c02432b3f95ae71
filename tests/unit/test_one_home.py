"""One home for each fact: every workspace and registry file name is stated by the module that owns
it, and everything else asks that module (a string literal elsewhere would drift from it)."""

from __future__ import annotations

import ast
from pathlib import Path

from include.ml import records, scoring
from include.ml.paths import RegistryLayout
from tests.conftest import ROOT

CODE_FOLDERS = ("include", "dags", "plugins")
OWNERS = {
    "include/ml/records.py": "workspace files",
    "include/ml/paths.py": "registry files",
    "include/ml/scoring.py": "a scoring date's summary file",
}


def _owned_names() -> set[str]:
    workspace = {cls.FILE for cls in vars(records).values()
                 if isinstance(cls, type) and issubclass(cls, records.StepRecord) and hasattr(cls, "FILE")}
    workspace |= {value for name, value in vars(records.RunWorkspace).items() if name.isupper()}
    layout = RegistryLayout(Path("/registry"))
    registry = {p.name for p in vars(layout).values() if isinstance(p, Path) and "." in p.name.strip(".")}
    registry |= {RegistryLayout.ARTIFACT, RegistryLayout.METADATA, RegistryLayout.PROFILE}
    return workspace | registry | {scoring.SUMMARY_FILE}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constants that are docstrings (documentation may name files)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _literals_naming(names: set[str]) -> list[str]:
    hits = []
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in OWNERS:
                continue
            tree = ast.parse(path.read_text())
            skip = _docstrings(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
                    hits += [f"{relative}:{node.lineno}: {name}" for name in names if name in node.value]
    return hits


def test_the_owned_file_names_are_the_ones_the_pipeline_writes():
    names = _owned_names()
    assert {"extract.json", "decision.json", "outcome.json", "summary.json", "candidate.joblib",
            "history.jsonl", "audit.jsonl", "production.json", "model.joblib", "feature_spec.json",
            "scoring.jsonl", "performance.jsonl", "_summary.json"} <= names


def test_no_workspace_or_registry_file_name_is_written_outside_its_owner():
    assert _literals_naming(_owned_names()) == []


def test_the_check_finds_a_file_name_written_by_hand(tmp_path, monkeypatch):
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "stray.py").write_text('"""Reads ``decision.json``."""\nNAME = "decision.json"\n')
    monkeypatch.setattr("tests.unit.test_one_home.ROOT", tmp_path)
    assert _literals_naming({"decision.json"}) == ["include/stray.py:2: decision.json"]
