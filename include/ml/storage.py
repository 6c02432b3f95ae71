"""Every write, append, read and hash of the data root goes through here.

Writes land under a temporary name beside their target, are fsynced, then renamed into place, so
a killed task never leaves a half-written file that looks complete. Histories are JSON lines:
each append is one ``write`` of one line, fsynced, and readers skip a torn last line (a writer
killed mid-append) instead of failing. A later object-storage data root changes this module only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from include.ml.errors import UnsafeDeliveryError


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


@contextlib.contextmanager
def scratch_folder(path: Path) -> Iterator[Path]:
    """A new hidden folder beside ``path`` for the pieces of a file being assembled (the chunks of a
    query's rows); removed with whatever is in it when the block ends, cleanly or not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = _temporary(path).with_suffix(".parts")
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def _symlinked_component(path: Path, anchor: Path) -> str | None:
    """The first folder of ``path``'s parent, below ``anchor``, that is a symbolic link (None when none
    is): the folder as resolved must be the folder as named."""
    parent = Path(os.path.abspath(path.parent))
    try:
        below = parent.relative_to(anchor)
    except ValueError:
        anchor, below = Path(parent.anchor), parent.relative_to(parent.anchor)
    current = Path(os.path.realpath(anchor))
    for part in below.parts:
        current = current / part
        if os.path.islink(current):
            return str(current)
    return None


def open_delivery(path: Path, max_bytes: int, anchor: Path | None = None) -> BinaryIO:
    """Open an upstream's file for reading, only if it is a regular file inside its folder; the open
    file (binary, at offset 0) is what the caller parses, so the checked file is the file read.

    Opened with ``O_NOFOLLOW`` (a symbolic link is refused, not followed) and ``O_NONBLOCK`` (a pipe
    cannot hang the open; cleared afterwards), then checked on the descriptor: a regular file (not a
    folder, device or pipe), one link (not a hard link to a file elsewhere), at most ``max_bytes``.
    No folder between ``anchor`` (the data root: the operator's; default: the file system root) and
    the file may be a symbolic link. Raises :class:`FileNotFoundError` when nothing is there and
    :class:`UnsafeDeliveryError` (the file is never read, changed or removed) otherwise.
    """
    path = Path(path)
    anchor = Path(os.path.abspath(anchor or path.anchor or "/"))
    linked = _symlinked_component(path, anchor)
    if linked is not None:
        raise UnsafeDeliveryError(_refusal(path, f"its folder {linked} is a symbolic link; deliveries are read only "
                                                 "from the real folder, never through a link"))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeDeliveryError(_refusal(path, "it is a symbolic link; only regular files are read, never "
                                                     "what a link points to")) from None
        if exc.errno == errno.ENOTDIR:
            raise FileNotFoundError(errno.ENOENT, "a folder on the way is not a folder", str(path)) from None
        raise
    try:
        info = os.fstat(fd)
        problem = _unsafe(info, max_bytes)
        if problem:
            raise UnsafeDeliveryError(_refusal(path, problem))
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _unsafe(info: os.stat_result, max_bytes: int) -> str | None:
    """Why an open file with status ``info`` is not a delivery to read (None when it is one)."""
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}
    if not stat.S_ISREG(info.st_mode):
        kind = next((name for test, name in kinds.items() if test(info.st_mode)), "not a regular file")
        return f"it is {kind}, not a regular file"
    if info.st_nlink != 1:
        return (f"it has {info.st_nlink} hard links (the same file is reachable under another name, possibly "
                "outside the folder); deliver a file of its own, not a link")
    if info.st_size > max_bytes:
        return (f"it is {info.st_size:,} bytes, over the limit of {max_bytes:,} (source.max_bytes); deliver it "
                "in smaller files, or raise source.max_bytes in the pipeline config if that size is expected")
    return None


def _refusal(path: Path, reason: str) -> str:
    return (f"delivery {path} refused: {reason}. It was not read and is kept as is; ask the upstream owner to "
            "deliver a regular file in its place.")


def copy_delivery(source: Path, target: Path, max_bytes: int, anchor: Path | None = None) -> str:
    """Copy an upstream's file to ``target`` atomically, reading it through :func:`open_delivery` (so a
    link or device swapped in since it was read is refused, not copied); the sha256 of the bytes copied."""
    digest = hashlib.sha256()
    with open_delivery(source, max_bytes, anchor) as handle, atomic_path(target) as tmp, open(tmp, "wb") as out:
        while block := handle.read(1 << 20):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def sha256_handle(handle: BinaryIO, chunk: int = 1 << 20) -> str:
    """Hex sha256 of an open binary file from its current offset to the end (the offset is left there)."""
    digest = hashlib.sha256()
    while block := handle.read(chunk):
        digest.update(block)
    return digest.hexdigest()


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
