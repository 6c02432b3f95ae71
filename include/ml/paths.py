"""Where things live on disk: one data root, from ``ML_HOME`` or ``<repo>/var`` by default."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINES_DIR = REPO_ROOT / "include" / "pipelines"


PARQUET_SUFFIXES = (".parquet", ".pq")  # every other data file is read as CSV


def format_of(path: str | Path) -> str:
    """``parquet`` for a file named ``*.parquet`` or ``*.pq``, else ``csv``."""
    return "parquet" if str(path).endswith(PARQUET_SUFFIXES) else "csv"


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


def quarantined_batch_dir(pipeline: str, ds: str, run_id: str) -> Path:
    """Where one run's refused batch is copied with its reasons."""
    return quarantine_dir(pipeline) / f"{ds}__{safe_name(run_id)}"


def scoring_inbox(config, ds: str) -> Path:
    """The folder of a scoring date's partitions (``scoring.input_dir``)."""
    return resolve(config.scoring.input_dir.format(pipeline=config.name, ds=ds))


def predictions_dir(config, ds: str) -> Path:
    """The folder of a scoring date's predictions, rejects and summary (``scoring.output_dir``)."""
    return resolve(config.scoring.output_dir.format(pipeline=config.name, ds=ds))


def labels_dir(config) -> Path:
    """The folder delivered labels land in (``performance.labels_dir``)."""
    return resolve(config.performance.labels_dir.format(pipeline=config.name))


def run_workspace(pipeline: str, run_id: str):
    """The :class:`~include.ml.records.RunWorkspace` of a training run."""
    from include.ml.records import RunWorkspace

    return RunWorkspace(workspace_dir(pipeline, run_id))


class RegistryLayout:
    """Every file of one pipeline's registry folder (see docs/layout.md)::

        versions/v0001/model.joblib            the fitted model
        versions/v0001/metadata.json           metrics, decision, fingerprint, config, sha256
        versions/v0001/reference_profile.json  the training data's profile (drift reference)
        production.json                        the production pointer, replaced atomically
        audit.jsonl                            one line per production switch
        history.jsonl                          one line per training run (finished or failed)
        scoring.jsonl                          one line per scoring date
        performance.jsonl                      realised performance per version and scoring date
        feature_spec.json                      features inferred from the first batch, then fixed
        batches/<ds>.parquet                   a date's validated rows, archived for later training windows
        batches/<ds>.json                      their ExtractRecord (the delivery's fingerprint)
        .lock                                  serialises version ids and pointer switches
    """

    ARTIFACT = "model.joblib"
    METADATA = "metadata.json"
    PROFILE = "reference_profile.json"
    BATCH_ROWS_SUFFIX = ".parquet"  # batches/<ds>.parquet
    BATCH_RECORD_SUFFIX = ".json"  # batches/<ds>.json

    def __init__(self, root: Path):
        self.root = Path(root)
        self.versions = self.root / "versions"
        self.pointer = self.root / "production.json"
        self.audit = self.root / "audit.jsonl"
        self.run_history = self.root / "history.jsonl"
        self.scoring_history = self.root / "scoring.jsonl"
        self.performance_history = self.root / "performance.jsonl"
        self.feature_spec = self.root / "feature_spec.json"
        self.batches = self.root / "batches"
        self.lock = self.root / ".lock"

    def version(self, version: str) -> Path:
        return self.versions / version

    def artifact(self, version: str) -> Path:
        return self.version(version) / self.ARTIFACT

    def metadata(self, version: str) -> Path:
        return self.version(version) / self.METADATA

    def profile(self, version: str) -> Path:
        return self.version(version) / self.PROFILE

    def batch_rows(self, ds: str) -> Path:
        """The validated rows of logical date ``ds``, archived when the batch passed validation."""
        return self.batches / f"{safe_name(ds)}{self.BATCH_ROWS_SUFFIX}"

    def batch_record(self, ds: str) -> Path:
        """The fingerprint (ExtractRecord) of the archived batch of ``ds``."""
        return self.batches / f"{safe_name(ds)}{self.BATCH_RECORD_SUFFIX}"

    def archived_batch_records(self) -> list[Path]:
        """Every archived batch's fingerprint file (in no particular order)."""
        return sorted(self.batches.glob(f"*{self.BATCH_RECORD_SUFFIX}"))
