"""Read a landing batch (CSV or Parquet) and fingerprint it."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from include.ml.errors import BatchNotFoundError, BatchReadError
from include.ml.storage import sha256_file

# Read errors of a flaky disk or network share that may pass on the next try (retried, not refused).
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EAGAIN, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET,
                              errno.ECONNABORTED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EBUSY})

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


def read_batch(path: Path, file_format: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, as delivered (no type coercion beyond the parser's).

    Raises :class:`BatchNotFoundError` when the file is missing and :class:`BatchReadError`
    when it cannot be parsed or has no rows.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise BatchNotFoundError(
            f"batch file {path} does not exist. Check that the upstream delivery for this date arrived "
            f"(ls {path.parent}); the run can be retried once it is there."
        )
    file_format = file_format or ("parquet" if path.suffix in {".parquet", ".pq"} else "csv")
    try:
        frame = pd.read_parquet(path) if file_format == "parquet" else pd.read_csv(path, low_memory=False)
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
            f"batch file {path} cannot be read as {file_format}: {exc}. "
            "Ask the upstream owner for a complete re-delivery; the file is kept as is."
        ) from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError) as exc:
        raise BatchReadError(
            f"batch file {path} cannot be read as {file_format}: {exc}. "
            "Ask the upstream owner for a complete re-delivery; the file is kept as is."
        ) from exc
    if frame.empty:
        raise BatchReadError(
            f"batch file {path} has no data rows (columns: {list(frame.columns)}). "
            "Ask the upstream owner for a complete re-delivery; the file is kept as is."
        )
    if file_format == "csv":
        _check_csv_shape(path, frame)
    return frame


def _check_csv_shape(path: Path, frame: pd.DataFrame) -> None:
    """Refuse a CSV read as one column with another separator in its header, or cut off mid-row:
    both parse "successfully" into something validation would describe misleadingly."""
    import csv

    header = str(frame.columns[0])
    if frame.shape[1] == 1:
        for separator in (";", "\t", "|"):
            if separator in header:
                raise BatchReadError(
                    f"batch file {path} reads as a single column {header[:60]!r}…: its fields look separated by "
                    f"{separator!r}, not ','. Ask the upstream owner for a re-delivery separated by commas; the "
                    "file is kept as is."
                )
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
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
    return Fingerprint(
        path=str(path),
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        rows=len(frame),
        columns=frame.shape[1],
    )
