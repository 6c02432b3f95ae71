"""Every write, append, read and hash of the data root goes through here.

Writes land under a temporary name beside their target, are fsynced, then renamed into place, so
a killed task never leaves a half-written file that looks complete. Histories are JSON lines:
each append is one ``write`` of one line, fsynced, and readers skip a torn last line (a writer
killed mid-append) instead of failing. A later object-storage data root changes this module only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name (Parquet, joblib); on a
    clean exit it is fsynced (when ``durable``) and renamed over ``path``, on an error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, payload: bytes, durable: bool = True) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path, durable) as tmp:
        tmp.write_bytes(payload)


def write_text(path: Path, text: str, durable: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes(path, text.encode(), durable)


def write_json(path: Path, data: Any, durable: bool = True) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically (values JSON lacks go through ``str``)."""
    write_text(path, json.dumps(data, indent=2, default=str), durable)


def write_with(path: Path, writer: Callable[[Path], object], durable: bool = True) -> None:
    """Let ``writer(tmp_path)`` write the file (``frame.to_parquet``, ``joblib.dump``), then rename it
    over ``path``."""
    with atomic_path(path, durable) as tmp:
        writer(tmp)


def copy_file(source: Path, target: Path, durable: bool = True) -> None:
    """Copy ``source`` to ``target`` atomically (the bytes only, not permissions)."""
    with atomic_path(target, durable) as tmp:
        shutil.copyfile(source, tmp)


def read_json(path: Path) -> Any:
    """The JSON in ``path`` (``FileNotFoundError`` when missing, ``ValueError`` when not JSON)."""
    return json.loads(Path(path).read_text())


def read_json_or_none(path: Path) -> Any | None:
    """The JSON in ``path``, or None when it is missing, unreadable or not JSON."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def append_jsonl(path: Path, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` and fsync it (an audit or history line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file, oldest first; empty when it is missing. A line that is not a
    JSON object (a torn last line of a killed writer) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            records.append(entry)
    return records


def read_jsonl_latest(path: Path, key: tuple[str, ...]) -> list[dict]:
    """:func:`read_jsonl`, keeping only the last line of each ``key`` (a rerun replaces its earlier
    line, in the place of the rerun)."""
    latest: dict[tuple, dict] = {}
    for entry in read_jsonl(path):
        identity = tuple(entry.get(k) for k in key)
        latest.pop(identity, None)
        latest[identity] = entry
    return list(latest.values())


def sha256_bytes(payload: bytes) -> str:
    """Hex sha256 of ``payload``."""
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
