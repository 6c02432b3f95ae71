"""Reading a landing batch: a missing file is retryable, an unreadable one is bad input, and the
fingerprint identifies the exact bytes read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from include.ml.errors import BatchNotFoundError, BatchReadError, InputDataError, UnsafeDeliveryError, excerpt
from include.ml.extract import fingerprint, read_batch
from include.ml.storage import sha256_file


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"id": [f"r{i}" for i in range(50)], "x": range(50), "level": ["a", "b"] * 25})


def test_csv_batch_is_read_as_delivered(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "2026-01-01.csv"
    frame.to_csv(path, index=False)

    read = read_batch(path)

    assert read.shape == (50, 3)
    assert read["x"].tolist() == list(range(50))


def test_parquet_batch_is_read_by_its_suffix(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "2026-01-01.parquet"
    frame.to_parquet(path, index=False)

    pd.testing.assert_frame_equal(read_batch(path), frame, check_dtype=False)


def test_an_explicit_format_overrides_the_suffix(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "2026-01-01.dat"
    frame.to_parquet(path, index=False)

    assert len(read_batch(path, "parquet")) == 50


def test_a_missing_batch_says_where_it_was_expected_and_can_be_retried(tmp_path: Path):
    path = tmp_path / "landing" / "2026-01-01.csv"

    with pytest.raises(BatchNotFoundError) as caught:
        read_batch(path)

    assert f"batch file {path} does not exist" in str(caught.value)
    assert "retried" in str(caught.value)
    # late deliveries are retried by the DAG; only InputDataError fails without retries
    assert not isinstance(caught.value, InputDataError)


def test_a_folder_in_place_of_the_batch_is_refused_unread_and_not_retried(tmp_path: Path):
    folder = tmp_path / "2026-01-01.csv"
    folder.mkdir()

    with pytest.raises(UnsafeDeliveryError) as caught:
        read_batch(folder)

    assert f"delivery {folder} refused: it is a folder, not a regular file" in str(caught.value)
    assert isinstance(caught.value, InputDataError)
    assert folder.is_dir()


def _parquet_bytes(frame: pd.DataFrame, tmp_path: Path) -> bytes:
    frame.to_parquet(tmp_path / "whole.parquet", index=False)
    return (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", lambda _: b"", "cannot be read as csv"),
        ("header_only.csv", lambda _: b"id,x,level\n", "has no data rows (columns: ['id', 'x', 'level'])"),
        ("ragged.csv", lambda _: b"id,x\n1,2\n3,4,5,6\n", "cannot be read as csv"),
        ("binary.csv", lambda _: b"\xff\xfe\xfa\x00" * 64, "cannot be read as csv"),
        ("empty.parquet", lambda _: b"", "cannot be read as parquet"),
        ("garbage.parquet", lambda _: b"this is not parquet" * 20, "cannot be read as parquet"),
        ("truncated.parquet", lambda whole: whole[: len(whole) // 2], "cannot be read as parquet"),
        ("no_footer.parquet", lambda whole: whole[:-8], "cannot be read as parquet"),
    ],
)
def test_an_unreadable_batch_is_bad_input_that_names_the_file(
    tmp_path: Path, frame: pd.DataFrame, name: str, content, expected: str
):
    path = tmp_path / name
    path.write_bytes(content(_parquet_bytes(frame, tmp_path)))

    with pytest.raises(BatchReadError) as caught:
        read_batch(path)

    message = str(caught.value)
    assert str(path) in message
    assert expected in message
    assert "re-delivery" in message
    assert isinstance(caught.value, InputDataError)  # retrying will not help
    assert path.exists()  # kept for the upstream owner


def test_header_only_parquet_is_bad_input(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "header_only.parquet"
    frame.head(0).to_parquet(path, index=False)

    with pytest.raises(BatchReadError, match="has no data rows"):
        read_batch(path)


def test_fingeridentityrecords_the_sha256_size_and_shape_of_the_file(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "2026-01-01.csv"
    frame.to_csv(path, index=False)

    identity = fingerprint(path, read_batch(path))

    assert identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert identity.bytes == path.stat().st_size
    assert (identity.rows, identity.columns) == (50, 3)
    assert identity.to_dict() == {"path": str(path), "sha256": identity.sha256, "bytes": identity.bytes,
                                "rows": 50, "columns": 3}


def test_a_one_byte_change_changes_the_fingerprint(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    before = sha256_file(path)

    path.write_bytes(path.read_bytes().replace(b"r49", b"r48"))

    assert sha256_file(path) != before


def test_sha256_of_a_file_larger_than_one_chunk_matches_hashlib(tmp_path: Path):
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * 5000  # 1.28 MB: more than the 1 MiB default chunk
    path.write_bytes(data)

    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(path, chunk=1000) == hashlib.sha256(data).hexdigest()


def test_a_batch_read_through_the_safe_opener_keeps_its_sha256_from_the_same_descriptor(
        tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "2026-01-01.parquet"
    frame.to_parquet(path, index=False)

    read = read_batch(path)

    assert read.attrs["delivery"] == {"sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                      "bytes": path.stat().st_size}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"id,default,x,default\n1,0,2,1\n", "duplicate column names: 'default'"),
        (b"id,x\n1,1e200\n2,3\n", "column 'x' has 1 value(s) beyond \u00b11e+100 (first rows: 0; value: 1e+200)"),
        (b"id,note\n1," + b"a" * 10_001 + b"\n", "column 'note' row 0 holds text of 10,001 characters"),
        (b"id," + b"n" * 300 + b"\n1,2\n", "has a column name of 300 characters"),
    ],
)
def test_a_csv_with_a_shape_no_step_should_see_is_refused_naming_the_column(tmp_path: Path, content: bytes,
                                                                           expected: str):
    path = tmp_path / "2026-01-01.csv"
    path.write_bytes(content)

    with pytest.raises(BatchReadError) as caught:
        read_batch(path)

    assert expected in str(caught.value)
    assert len(str(caught.value)) < 600  # never the whole cell or header
    assert path.read_bytes() == content


def test_infinities_are_left_to_validation_which_reports_them(tmp_path: Path):
    path = tmp_path / "2026-01-01.csv"
    path.write_bytes(b"id,x\n1,inf\n2,3\n")

    assert read_batch(path)["x"].tolist()[1] == 3


@pytest.mark.parametrize(("value", "shown"), [("short", "'short'"), ("a\nb", "'a\\nb'"),
                                              ("x" * 100, "'" + "x" * 38 + "\u2026")])
def test_an_excerpt_is_escaped_and_at_most_40_characters(value: str, shown: str):
    assert excerpt(value) == shown
    assert len(excerpt(value)) <= 40
