"""Read a landing batch (CSV or Parquet) and fingerprint it."""

from __future__ import annotations

import errno
import io
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from include.ml import paths
from include.ml.errors import BatchNotFoundError, BatchReadError, UnsafeDeliveryError, excerpt, excerpts
from include.ml.paths import data_root
from include.ml.storage import open_delivery, sha256_handle

# Read errors of a flaky disk or network share that may pass on the next try (retried, not refused).
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET,
                              errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EBUSY})

DEFAULT_MAX_BYTES = 2 * 1024**3  # source.max_bytes: a delivery larger than this is refused unread
MAX_MAGNITUDE = 1e100  # finite numbers beyond this are refused: squared and summed in training they overflow
MAX_TEXT_CHARS = 10_000  # a longer text cell is refused (it would be copied into profiles and emails)
MAX_NAME_CHARS = 200  # a longer column name is refused (names are quoted in messages)
# how compressed data begins; such a file named .csv or .parquet is refused with what it is
COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip",
                    b"(\xb5/\xfd": "zstd"}

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Fingerprint:
    """Identity of a batch: the file's sha256, its size and row count."""

    path: str
    sha256: str
    bytes: int
    rows: int
    columns: int

    def to_dict(self) -> dict:
        return asdict(self)


def read_batch(path: Path, file_format: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, as delivered (no type coercion beyond the parser's).

    The file is opened once, by :func:`include.ml.storage.open_delivery` (a regular file of at most
    ``max_bytes`` inside its folder, never through a link), and hashed and parsed from that open file;
    the frame's ``attrs["delivery"]`` holds the sha256 and size :func:`fingerprint` reports.
    Raises :class:`BatchNotFoundError` when the file is missing, :class:`UnsafeDeliveryError` when
    the path is not a plain file (link, folder, device, pipe, too large, compressed) and
    :class:`BatchReadError` when it cannot be parsed, has no rows or a shape no step should see
    (duplicate or overlong column names, nested or binary Parquet columns, numbers beyond
    :data:`MAX_MAGNITUDE`, text cells over :data:`MAX_TEXT_CHARS`).
    """
    path = Path(path)
    file_format = file_format or paths.format_of(path)
    try:
        handle = open_delivered(path, file_format, max_bytes, f"batch file {path}")
    except FileNotFoundError:
        raise BatchNotFoundError(
            f"batch file {path} does not exist. Check that the upstream delivery for this date arrived "
            f"(ls {path.parent}); the run can be retried once it is there."
        ) from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        sha256 = sha256_handle(handle)
        handle.seek(0)
        frame = _parse(path, handle, file_format)
        if file_format == "csv":
            check_csv_header(handle, f"batch file {path}")
            _check_csv_shape(path, handle, frame)
    check_shape(frame, f"batch file {path}")
    if frame.empty:
        raise BatchReadError(
            f"batch file {path} has no data rows (columns: [{excerpts(frame.columns)}]). "
            "Ask the upstream owner for a complete re-delivery; the file is kept as is."
        )
    frame.attrs["delivery"] = {"sha256": sha256, "bytes": size}
    return frame


def open_delivered(path: Path, file_format: str, max_bytes: int, where: str) -> BinaryIO:
    """The open file of an upstream delivery (training batch, scoring input, labels), at offset 0: a
    regular file inside its folder (:func:`include.ml.storage.open_delivery`) that is not compressed
    data under a plain name. ``where`` names it in messages (``"scoring input <path>"``)."""
    handle = open_delivery(path, max_bytes, anchor=delivery_anchor(path))
    try:
        _refuse_compressed(handle, file_format, where)
    except BaseException:
        handle.close()
        raise
    return handle


def open_listed_delivery(path: Path, max_bytes: int, where: str) -> tuple[BinaryIO, str]:
    """:func:`open_delivered` for a file found by listing its folder (a scoring input, a labels
    file), with its format from its name; one removed since the listing is a :class:`BatchReadError`
    (rerun the date)."""
    file_format = paths.format_of(path)
    try:
        return open_delivered(path, file_format, max_bytes, where), file_format
    except FileNotFoundError:
        raise BatchReadError(f"{where} does not exist (it was removed while being read); rerun this date") from None


def delivery_anchor(path: Path) -> Path | None:
    """The folder from which no component of a delivery's path may be a symbolic link: the data root
    for a path inside it (the operator's, possibly itself a link to a volume), else none (every folder)."""
    root = data_root()
    return root if Path(os.path.abspath(path)).is_relative_to(root) else None


def _parse(path: Path, handle: BinaryIO, file_format: str) -> pd.DataFrame:
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        if file_format == "parquet":
            check_parquet_schema(pq.ParquetFile(handle).schema_arrow, f"batch file {path}")
            handle.seek(0)
            return pd.read_parquet(handle)
        return pd.read_csv(handle, low_memory=False)
    except UnicodeDecodeError as exc:
        raise BatchReadError(
            f"batch file {path} cannot be read as {file_format}: it is not UTF-8 text (byte "
            f"0x{exc.object[exc.start]:02x} is not valid there). Ask the upstream owner for a complete re-delivery "
            "encoded as UTF-8; the file is kept as is."
        ) from exc
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise  # a storage hiccup, not bad data: the task's retries with backoff get another try
        raise BatchReadError(
            f"batch file {path} cannot be read as {file_format}: {parser_message(exc)}. "
            "Ask the upstream owner for a complete re-delivery; the file is kept as is."
        ) from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError) as exc:
        raise BatchReadError(
            f"batch file {path} cannot be read as {file_format}: {parser_message(exc)}. "
            "Ask the upstream owner for a complete re-delivery; the file is kept as is."
        ) from exc


def parser_message(exc: BaseException) -> str:
    """A parser's error as one bounded line (a parser may echo part of the file)."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return lines[0] if len(lines[0]) <= 200 else f"{lines[0][:199]}…"


def _refuse_compressed(handle: BinaryIO, file_format: str, where: str) -> None:
    """Compressed data is refused with its name: it is never decompressed here (sizes would lie)."""
    head = handle.read(8)
    handle.seek(0)
    kind = next((name for magic, name in COMPRESSED_MAGIC.items() if head.startswith(magic)), None)
    if kind is not None:
        raise UnsafeDeliveryError(
            f"{where} is compressed ({kind}) but named and configured as {file_format}: deliver it "
            f"uncompressed as {file_format}; the file is kept as is."
        )


def check_csv_header(handle: BinaryIO, where: str) -> None:
    """Refuse duplicate column names, read from the header line itself: pandas renames a second
    ``default`` to ``default.1``, and a model would silently train on the wrong copy."""
    import csv

    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="replace", newline="")
    try:
        header = next(csv.reader(text), [])
    except csv.Error as exc:
        raise BatchReadError(f"{where} has a header that cannot be read ({parser_message(exc)}). "
                             "Ask the upstream owner for a re-delivery; the file is kept as is.") from exc
    finally:
        text.detach()
    _refuse_duplicates(header, where)
    handle.seek(0)


def _refuse_duplicates(names: list, where: str) -> None:
    counts = Counter(str(n) for n in names)
    repeated = [name for name, count in counts.items() if count > 1]
    if repeated:
        raise BatchReadError(
            f"{where} has duplicate column names: {excerpts(repeated)} (each appears more than once in the header); "
            "a step would pick one copy silently. Ask the upstream owner for a re-delivery with unique column "
            "names; the file is kept as is."
        )


def check_parquet_schema(schema, where: str) -> None:
    """Refuse a Parquet schema with duplicate names, or a nested (struct, list, map) or binary column:
    none of them is a feature, and pandas would hand the next steps Python objects or bytes."""
    import pyarrow as pa

    _refuse_duplicates(schema.names, where)
    for field in schema:
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind) \
                or pa.types.is_fixed_size_binary(kind):
            raise BatchReadError(
                f"{where}: column {excerpt(field.name)} has type {excerpt(str(kind))}, which is nested or binary; "
                "only numbers, text, booleans and dates are read. Ask the upstream owner to flatten it or leave "
                "it out; the file is kept as is."
            )


def check_shape(frame: pd.DataFrame, where: str, first_row: int = 0, magnitudes: bool = True) -> None:
    """Refuse what parses but no step should see: column names over :data:`MAX_NAME_CHARS`, finite
    numbers beyond :data:`MAX_MAGNITUDE` (they overflow to infinity in training's sums of squares) and
    text cells over :data:`MAX_TEXT_CHARS` (they would be copied into profiles, reports and emails).
    ``first_row`` is the position of the frame's first row in its file (scoring reads in chunks);
    ``magnitudes=False`` skips the number rule (a model only predicts from them). Infinities are left
    to validation, which reports them as such."""
    import numpy as np
    import pandas as pd

    for name in frame.columns:
        if len(str(name)) > MAX_NAME_CHARS:
            raise BatchReadError(
                f"{where} has a column name of {len(str(name)):,} characters (starting {excerpt(name)}); "
                f"names longer than {MAX_NAME_CHARS} are refused. Ask the upstream owner for a re-delivery with "
                "short column names; the file is kept as is."
            )
    for position, name in enumerate(frame.columns):
        column = frame.iloc[:, position]
        if pd.api.types.is_float_dtype(column.dtype) and magnitudes:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            huge = np.isfinite(values) & (np.abs(values) > MAX_MAGNITUDE)
            if huge.any():
                rows = np.flatnonzero(huge)
                raise BatchReadError(
                    f"{where}: column {excerpt(name)} has {len(rows)} value(s) beyond ±{MAX_MAGNITUDE:g} (first "
                    f"rows: {', '.join(str(first_row + r) for r in rows[:5])}; value: {values[rows[0]]:g}), which "
                    "overflow in training; no real measurement is that large. Ask the upstream owner for a "
                    "corrected delivery; the file is kept as is."
                )
        elif column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            lengths = column.map(lambda v: len(v) if isinstance(v, str) else 0).to_numpy()
            if len(lengths) and lengths.max() > MAX_TEXT_CHARS:
                row = int(np.argmax(lengths > MAX_TEXT_CHARS))
                raise BatchReadError(
                    f"{where}: column {excerpt(name)} row {first_row + row} holds text of {int(lengths[row]):,} "
                    f"characters (starting {excerpt(column.iloc[row])}); cells longer than {MAX_TEXT_CHARS:,} are "
                    "refused. Ask the upstream owner for a corrected delivery; the file is kept as is."
                )


def _check_csv_shape(path: Path, handle: BinaryIO, frame: pd.DataFrame) -> None:
    """Refuse a CSV read as one column with another separator in its header, or cut off mid-row:
    both parse "successfully" into something validation would describe misleadingly."""
    import csv

    header = str(frame.columns[0])
    if frame.shape[1] == 1:
        for separator in (";", "\t", "|"):
            if separator in header:
                raise BatchReadError(
                    f"batch file {path} reads as a single column {excerpt(header)}: its fields look separated by "
                    f"{separator!r}, not ','. Ask the upstream owner for a re-delivery separated by commas; the "
                    "file is kept as is."
                )
    handle.seek(max(0, os.fstat(handle.fileno()).st_size - 65536))
    tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return
    last_line = tail.rsplit(b"\n", 1)[-1].decode("utf-8", errors="replace")
    fields = len(next(csv.reader([last_line]), []))
    if fields < frame.shape[1]:
        raise BatchReadError(
            f"batch file {path} looks truncated: its last line (data row {len(frame)}) has {fields} of "
            f"{frame.shape[1]} fields and the file does not end with a line break. Ask the upstream owner for a "
            "complete re-delivery; the file is kept as is."
        )


def fingerprint(path: Path, frame: pd.DataFrame) -> Fingerprint:
    """The :class:`Fingerprint` of a batch file and the frame read from it."""
    path = Path(path)
    delivery = frame.attrs.get("delivery")
    if delivery is None:  # a frame not read by read_batch: hash the file through the same safe opener
        with open_delivery(path, DEFAULT_MAX_BYTES, anchor=delivery_anchor(path)) as handle:
            delivery = {"sha256": sha256_handle(handle), "bytes": os.fstat(handle.fileno()).st_size}
    return Fingerprint(
        path=str(path),
        sha256=delivery["sha256"],
        bytes=delivery["bytes"],
        rows=len(frame),
        columns=frame.shape[1],
    )
