"""Where things live on disk: one data root, from ``ML_HOME`` or ``<repo>/var`` by default."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINES_DIR = REPO_ROOT / "include" / "pipelines"


def data_root() -> Path:
    """Root of landing folders, registries, run workspaces and quarantine (``$ML_HOME``)."""
    return Path(os.environ.get("ML_HOME") or REPO_ROOT / "var").resolve()


def resolve(path: str | Path) -> Path:
    """An absolute path as is; a relative one under :func:`data_root`."""
    path = Path(path)
    return path if path.is_absolute() else data_root() / path


def safe_name(text: str) -> str:
    """A string usable as one path component (run ids contain ``:`` and ``+``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def workspace_dir(pipeline: str, run_id: str) -> Path:
    """The run-scoped folder where a run's data, candidate model and reports go."""
    return data_root() / "runs" / pipeline / safe_name(run_id)


def quarantine_dir(pipeline: str) -> Path:
    """Where rejected batches are copied, never deleted."""
    return data_root() / "quarantine" / pipeline
