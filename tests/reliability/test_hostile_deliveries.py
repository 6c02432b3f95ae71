"""Hostile deliveries (issue 17, items 2 and 4; docs/reliability.md, rows 37-52): what an upstream that
writes the landing, scoring or labels folder can put there to make the pipeline read something else
(a link of each kind, a pipe, a device, a folder, an oversized or compressed file) or something no
step should see (duplicate headers, nested columns, overflowing numbers, megabyte cells).

Each case runs the training steps on day 2 as a library call (``steps.run_steps``) over a data root
where day 1 is in production, and asserts what a user would notice: the dedicated error (bad input,
so the DAG fails the task without retries), a message naming the file and the rule, a canary secret
that appears nowhere (message, run workspace, quarantine), the delivery still where it was, and the
registry byte for byte unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.ml import paths, performance, scoring, steps
from include.ml.config import PipelineConfig, SourceConfig, get_pipeline
from include.ml.errors import BatchReadError, InputDataError, UnsafeDeliveryError
from include.ml.simulate import credit_default, write_batches

pytestmark = pytest.mark.reliability

DAY1 = dt.date(2026, 1, 1)
DAY2 = "2026-01-02"
ROWS = 800  # above credit_default's min_rows (500); enough for day 1 to pass the gates
CANARY = "CANARY-7f3a9c-not-for-any-log"  # stands for a secret the worker can read (its environment)


@pytest.fixture(scope="module")
def production_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root where day 1 was trained and promoted."""
    home = tmp_path_factory.mktemp("hostile-production")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        write_batches(config, DAY1, 1, rows=ROWS)
        steps.run_steps(config, "scheduled__2026-01-01", DAY1.isoformat())
        assert steps.registry_for(config).production() is not None
    return home


@pytest.fixture
def home(production_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = tmp_path / "ml_home"
    shutil.copytree(production_home, copy, symlinks=True)
    monkeypatch.setenv("ML_HOME", str(copy))
    return copy


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file outside the data root the worker can read, whose content must never be read or shown."""
    path = tmp_path / "worker.env"
    path.write_text(f"API_SECRET,value\n{CANARY},1\n{CANARY},2\n")
    return path


def _day2() -> pd.DataFrame:
    frame = credit_default(dt.date.fromisoformat(DAY2), ROWS, seed=3, drifted=False)
    frame.loc[len(frame) - 1, "region"] = f"{'north ' * 20}{CANARY}"  # beyond any excerpt
    return frame


def _parquet(config: PipelineConfig) -> PipelineConfig:
    return config.model_copy(update={"source": SourceConfig(path="landing/credit_default/{ds}.parquet")})


def _small(config: PipelineConfig) -> PipelineConfig:
    return config.model_copy(update={"source": config.source.model_copy(update={"max_bytes": 10_000})})


# -- how each hostile delivery is made: deliver(landing file, secret file) ------------------------

def symlink_to_secret(path: Path, secret: Path) -> None:
    path.symlink_to(secret)


def hard_link_to_secret(path: Path, secret: Path) -> None:
    os.link(secret, path)


def symlinked_landing_folder(path: Path, secret: Path) -> None:
    elsewhere = secret.parent / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(secret, elsewhere / path.name)
    shutil.rmtree(path.parent)
    path.parent.symlink_to(elsewhere, target_is_directory=True)


def fifo(path: Path, secret: Path) -> None:
    os.mkfifo(path)


def folder(path: Path, secret: Path) -> None:
    path.mkdir()
    (path / "part.csv").write_text(secret.read_text())


def symlink_to_device(path: Path, secret: Path) -> None:
    path.symlink_to("/dev/zero")


def plain(path: Path, secret: Path) -> None:
    _day2().to_csv(path, index=False)


def gzip_named_csv(path: Path, secret: Path) -> None:
    path.write_bytes(gzip.compress(_day2().to_csv(index=False).encode()))


def duplicate_header_csv(path: Path, secret: Path) -> None:
    frame = _day2()
    flipped = (1 - frame["default"]).rename("default")
    pd.concat([frame, flipped], axis=1).to_csv(path, index=False)


def duplicate_header_parquet(path: Path, secret: Path) -> None:
    table = pa.Table.from_pandas(_day2(), preserve_index=False)
    pq.write_table(table.append_column("default", pa.array(1 - _day2()["default"].to_numpy())), path)


def nested_parquet(path: Path, secret: Path) -> None:
    table = pa.Table.from_pandas(_day2(), preserve_index=False)
    nested = pa.array([{"a": i, "b": [CANARY]} for i in range(table.num_rows)])
    pq.write_table(table.append_column("profile", nested), path)


def huge_number(path: Path, secret: Path) -> None:
    frame = _day2()
    frame.loc[3, "income"] = 1e308
    frame.to_csv(path, index=False)


def megabyte_cell(path: Path, secret: Path) -> None:
    frame = _day2()
    frame.loc[5, "region"] = "x" * 100 + CANARY + "y" * 1_000_000
    frame.to_csv(path, index=False)


@dataclass(frozen=True)
class Case:
    name: str
    deliver: Callable[[Path, Path], None]
    error: type[InputDataError]
    rule: tuple[str, ...]  # pieces of the message, beside the file's path
    config: Callable[[PipelineConfig], PipelineConfig] | None = None
    suffix: str = ".csv"


CASES = [
    Case("symlink to a secret", symlink_to_secret, UnsafeDeliveryError,
         ("refused: it is a symbolic link", "never what a link points to", "kept as is")),
    Case("symlinked landing folder", symlinked_landing_folder, UnsafeDeliveryError,
         ("refused: its folder", "is a symbolic link", "never through a link")),
    Case("hard link to a secret", hard_link_to_secret, UnsafeDeliveryError,
         ("refused: it has 2 hard links", "deliver a file of its own")),
    Case("FIFO", fifo, UnsafeDeliveryError, ("refused: it is a named pipe (FIFO), not a regular file",)),
    Case("folder named like the batch", folder, UnsafeDeliveryError, ("refused: it is a folder, not a regular file",)),
    Case("symlink to a device", symlink_to_device, UnsafeDeliveryError, ("refused: it is a symbolic link",)),
    Case("oversized file", plain, UnsafeDeliveryError,
         ("bytes, over the limit of 10,000 (source.max_bytes)", "raise source.max_bytes"), config=_small),
    Case("gzip named .csv", gzip_named_csv, UnsafeDeliveryError,
         ("is compressed (gzip) but named and configured as csv", "deliver it uncompressed")),
    Case("duplicate header in CSV", duplicate_header_csv, BatchReadError,
         ("has duplicate column names: 'default'", "unique column names")),
    Case("duplicate header in Parquet", duplicate_header_parquet, BatchReadError,
         ("has duplicate column names: 'default'",), config=_parquet, suffix=".parquet"),
    Case("nested Parquet column", nested_parquet, BatchReadError,
         ("column 'profile' has type 'struct<a: int64, b: list<", "which is nested or binary"),
         config=_parquet, suffix=".parquet"),
    Case("1e308 value", huge_number, BatchReadError,
         ("column 'income' has 1 value(s) beyond ±1e+100 (first rows: 3; value: 1e+308)", "overflow in training")),
    Case("1 MB text cell", megabyte_cell, BatchReadError,
         ("column 'region' row 5 holds text of 1,000,129 characters", "cells longer than 10,000 are refused")),
]


def _registry_bytes(config: PipelineConfig) -> dict[str, bytes]:
    root = config.registry_path
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def _deadline(seconds: int):
    """Fail instead of hanging (a FIFO opened without O_NONBLOCK blocks until a writer comes)."""
    def expired(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_hostile_delivery_is_refused_unread_naming_file_and_rule_and_nothing_leaks_or_changes(
        home: Path, secret: Path, case: Case):
    config = get_pipeline("credit_default")
    config = case.config(config) if case.config else config
    landing = paths.data_root() / f"landing/credit_default/{DAY2}{case.suffix}"
    case.deliver(landing, secret)
    before = _registry_bytes(config)

    with _deadline(20), pytest.raises(InputDataError) as caught:
        steps.run_steps(config, f"scheduled__{DAY2}", DAY2)

    message = str(caught.value)
    assert type(caught.value) is case.error  # bad input: the DAG fails the task without retries
    assert str(landing) in message
    for piece in case.rule:
        assert piece in message
    assert len(message) < 800
    assert CANARY not in message
    assert os.path.lexists(landing)  # kept as delivered
    assert secret.read_text().count(CANARY) == 2
    assert _registry_bytes(config) == before  # production untouched
    leaked = [p for p in home.rglob("*") if p.is_file() and not p.is_symlink() and "landing" not in p.parts
              and CANARY.encode() in p.read_bytes()]
    assert leaked == []


def test_a_batch_swapped_for_a_link_between_extract_and_validate_is_not_copied_into_quarantine(
        home: Path, secret: Path):
    config = get_pipeline("credit_default")
    landing = paths.data_root() / f"landing/credit_default/{DAY2}.csv"
    _day2().drop(columns=["default"]).to_csv(landing, index=False)  # fails validation: quarantined
    workspace = paths.workspace_dir(config.name, "swap")
    steps.extract(config, workspace, DAY2)
    landing.rename(landing.with_name("kept.csv"))
    landing.symlink_to(secret)

    with pytest.raises(UnsafeDeliveryError, match="refused: it is a symbolic link"):
        steps.validate(config, workspace, run_id="swap")

    quarantined = [p for p in (home / "quarantine").rglob("*") if p.is_file()]
    assert not any(CANARY.encode() in p.read_bytes() for p in quarantined)
    assert landing.with_name("kept.csv").exists() and landing.is_symlink()


def test_a_device_given_as_the_source_is_refused_as_a_device(home: Path):
    config = get_pipeline("credit_default")

    with _deadline(20), pytest.raises(UnsafeDeliveryError, match="/dev/zero refused: it is a character device"):
        steps.run_steps(config, f"scheduled__{DAY2}", DAY2, until="extract", source=Path("/dev/zero"))


def test_a_symlinked_scoring_input_is_refused_by_name_and_the_other_inputs_are_listed(
        ml_home: Path, secret: Path):
    config = get_pipeline("credit_default")
    inbox = paths.data_root() / f"scoring/credit_default/{DAY2}"
    inbox.mkdir(parents=True)
    _day2().to_parquet(inbox / "part-000.parquet", index=False)
    (inbox / "part-001.csv").symlink_to(secret)
    os.mkfifo(inbox / "part-002.csv")

    listed = scoring.partitions(config, DAY2)

    assert listed == [str(inbox / n) for n in ("part-000.parquet", "part-001.csv", "part-002.csv")]
    assert sum(len(c) for c in scoring.iter_chunks(inbox / "part-000.parquet", 100)) == ROWS
    for name, rule in (("part-001.csv", "it is a symbolic link"), ("part-002.csv", "it is a named pipe")):
        with _deadline(20), pytest.raises(UnsafeDeliveryError) as caught:
            next(scoring.iter_chunks(inbox / name, 100))
        assert f"{inbox / name} refused: {rule}" in str(caught.value)
        assert CANARY not in str(caught.value)


def test_a_hard_linked_labels_file_is_refused_by_name(ml_home: Path, secret: Path):
    config = get_pipeline("credit_default")
    folder = paths.data_root() / "labels/credit_default"
    folder.mkdir(parents=True)
    os.link(secret, folder / f"{DAY2}.csv")

    files = performance.label_files(config, DAY2)
    with pytest.raises(UnsafeDeliveryError) as caught:
        performance.read_labels(config, files)

    assert files == [folder / f"{DAY2}.csv"]
    assert f"{folder / DAY2}.csv refused: it has 2 hard links" in str(caught.value)
    assert CANARY not in str(caught.value)


@pytest.fixture
def ml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ml_home"
    monkeypatch.setenv("ML_HOME", str(home))
    return home
