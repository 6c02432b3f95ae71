"""Shared fixtures of the unit tests: an isolated data root per test, the shipped configs, small
simulated batches, and a helper that runs one logical date through every training step.

Every test runs with ``ML_HOME`` pointed at its own ``tmp_path`` (autouse), so nothing is ever
written under ``<repo>/var``.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from include.ml import simulate, steps
from include.ml.config import PipelineConfig, get_pipeline

# tests/conftest.py sets OMP_NUM_THREADS=1 (see there); this fixture also holds when a library
# initialised OpenMP before the variable was read.

DAY1 = dt.date(2026, 1, 1)
ROWS = 800  # above credit_default's min_rows (500) and house_prices' (200), small enough to fit fast


@pytest.fixture(scope="session", autouse=True)
def _one_openmp_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]), user_api="openmp"):
        yield


@pytest.fixture(autouse=True)
def ml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data root of this test (``$ML_HOME``): landing, registry, runs and quarantine go here."""
    home = tmp_path / "ml_home"
    monkeypatch.setenv("ML_HOME", str(home))
    return home


@pytest.fixture
def credit_config() -> PipelineConfig:
    return get_pipeline("credit_default")


@pytest.fixture
def house_config() -> PipelineConfig:
    return get_pipeline("house_prices")


@pytest.fixture(scope="session")
def _credit_day1() -> pd.DataFrame:
    return simulate.credit_default(DAY1, ROWS, seed=7, drifted=False)


@pytest.fixture
def credit_frame(_credit_day1: pd.DataFrame) -> pd.DataFrame:
    """One clean day of credit_default rows (a fresh copy: tests may break it as they like)."""
    return _credit_day1.copy()


@pytest.fixture(scope="session")
def _house_day1() -> pd.DataFrame:
    return simulate.house_prices(DAY1, ROWS, seed=11, drifted=False)


@pytest.fixture
def house_frame(_house_day1: pd.DataFrame) -> pd.DataFrame:
    """One clean day of house_prices rows (a fresh copy)."""
    return _house_day1.copy()


def run_training_day(config: PipelineConfig, ds: str, run_id: str | None = None) -> dict:
    """Run every step of ``steps.STEPS`` for ``ds`` as the DAG does, in the run's workspace under the
    current ``$ML_HOME``; return the run summary."""
    run_id = run_id or f"scheduled__{ds}T00:00:00+00:00"
    return steps.run_steps(config, run_id, ds)["report"]


@pytest.fixture(scope="session")
def run_day():
    """``run_day(config, ds, run_id=None) -> summary``: one full training run of a logical date."""
    return run_training_day


@dataclass(frozen=True)
class CreditHistory:
    """Three scheduled runs of credit_default at its simulation's ``rows_per_day``: two normal days,
    then a drifted one. At that size day 2's hash holdout (912 rows, 110 defaults) decides with a
    90% interval 0.05 wide; at 800 rows (235 rows, 29 defaults) it was 0.18 wide and day 2's
    candidate, drawn from the same distribution, was rejected as too uncertain to promote."""

    home: Path
    config: PipelineConfig
    summaries: list[dict]
    landing: list[Path]

    @property
    def rows(self) -> int:
        """Rows of each day's batch."""
        return self.config.simulation.rows_per_day


@pytest.fixture(scope="session")
def credit_history(tmp_path_factory: pytest.TempPathFactory) -> CreditHistory:
    """Built once and shared read-only: tests that change the registry build their own."""
    home = tmp_path_factory.mktemp("credit_history")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        landing = simulate.write_batches(config, DAY1, 3, drift_from=DAY1 + dt.timedelta(days=2))
        summaries = [run_training_day(config, (DAY1 + dt.timedelta(days=i)).isoformat()) for i in range(3)]
    return CreditHistory(home=home, config=config, summaries=summaries, landing=landing)


@pytest.fixture
def in_credit_history(credit_history: CreditHistory, monkeypatch: pytest.MonkeyPatch) -> CreditHistory:
    """Point ``$ML_HOME`` at the shared three-run history (read it, do not change it)."""
    monkeypatch.setenv("ML_HOME", str(credit_history.home))
    return credit_history
