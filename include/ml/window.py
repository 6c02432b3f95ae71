"""The training window: each validated batch archived in the registry when it passes, and the
batches a candidate trains on (the run's own and the most recent earlier ones) with their
combined fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pandas as pd

from include.ml import storage
from include.ml.config import PipelineConfig
from include.ml.records import ExtractRecord, WindowBatch


def archive_batch(config: PipelineConfig, extracted: ExtractRecord, rows: pd.DataFrame) -> None:
    """Keep a date's validated ``rows`` and its fingerprint in the registry for later windows; a rerun
    of the date replaces them (rows first, then the fingerprint that names them)."""
    layout = config.registry_layout
    storage.write_with(layout.batch_rows(extracted.ds), lambda tmp: rows.to_parquet(tmp, index=False))
    storage.write_json(layout.batch_record(extracted.ds), {**extracted.to_dict(), "validated_rows": len(rows)})


def window_sha256(batches: list[WindowBatch]) -> str:
    """The fingerprint of a window: a single batch's own sha256 (so a window of one keys reruns as
    before), else the sha256 of the dates and batch sha256s in order."""
    if len(batches) == 1:
        return batches[0].sha256
    return hashlib.sha256("\n".join(f"{b.ds} {b.sha256}" for b in batches).encode()).hexdigest()


@dataclass
class TrainingWindow:
    """The rows a candidate trains and is judged on, and the batches they came from (oldest first)."""

    rows: pd.DataFrame
    batches: list[WindowBatch]
    skipped: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return window_sha256(self.batches)


def training_window(config: PipelineConfig, extracted: ExtractRecord, own: pd.DataFrame) -> TrainingWindow:
    """The run's own validated rows ``own`` and the archived batches of the ``model.window_batches - 1``
    most recent earlier dates (by date, only those archived; their columns cut to ``own``'s). An
    archived batch without one of those columns (the features changed since) is skipped, and said."""
    own_batch = WindowBatch(ds=extracted.ds, sha256=extracted.sha256, rows=len(own))
    wanted = config.model.window_batches - 1
    if wanted == 0:
        return TrainingWindow(own, [own_batch])
    layout = config.registry_layout
    records = [storage.read_json_or_none(path) for path in layout.archived_batch_records()]
    earlier = sorted((r for r in records if r and r.get("ds", "") < extracted.ds), key=lambda r: r["ds"])
    frames, batches, skipped = [], [], []
    for record in reversed(earlier):
        if len(batches) == wanted:
            break
        try:
            rows = pd.read_parquet(layout.batch_rows(record["ds"]))
        except (OSError, ValueError) as error:
            skipped.append(f"{record['ds']}: archived rows unreadable ({error})")
            continue
        missing = sorted(set(own.columns) - set(rows.columns))
        if missing:
            skipped.append(f"{record['ds']}: archived rows lack columns {missing}")
            continue
        frames.insert(0, rows[list(own.columns)])
        batches.insert(0, WindowBatch(ds=record["ds"], sha256=record["sha256"], rows=len(rows)))
    rows = pd.concat([*frames, own], ignore_index=True) if frames else own
    return TrainingWindow(rows, [*batches, own_batch], skipped)
