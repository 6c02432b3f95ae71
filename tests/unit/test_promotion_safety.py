"""Promotion safety: the production pointer survives racing promoters and killed tasks, a changed
artifact is never loaded, the champion/challenger gate judges real models by a paired-bootstrap
interval, and reruns of a logical date do not promote twice."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from include.ml import paths, simulate, steps
from include.ml.config import PipelineConfig, get_pipeline
from include.ml.errors import ArtifactIntegrityError, RegistryError
from include.ml.evaluate import _auc_rows, metric_inputs, metric_value, paired_bootstrap, quality_gates
from include.ml.fitting import fit, split
from include.ml.records import RunWorkspace
from include.ml.registry import ModelRegistry
from include.ml.storage import sha256_file
from include.ml.validate import infer_features, validate_frame

FORK = multiprocessing.get_context("fork")
KILLED = -signal.SIGKILL
DAY1 = dt.date(2026, 1, 1)
ROWS = 800
DS0, DS1 = DAY1.isoformat(), (DAY1 + dt.timedelta(days=1)).isoformat()
CONTENDERS = [f"v{i:04d}" for i in range(2, 22)]  # 20 versions racing to replace v0001


def run_in_child(target, *args, timeout: float = 30) -> int:
    """Run ``target(*args)`` in a forked process; its exit code (negative: killed by that signal)."""
    process = FORK.Process(target=target, args=args)
    process.start()
    process.join(timeout)
    if process.is_alive():  # e.g. blocked on a lock a killed process never gave back
        process.kill()
        process.join()
        pytest.fail(f"{target.__name__} was still running after {timeout} s")
    return process.exitcode


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def with_gates(config: PipelineConfig, **changes) -> PipelineConfig:
    return config.model_copy(update={"gates": config.gates.model_copy(update=changes)})


def flip_one_byte(path: Path, at: int | None = None) -> bytes:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if at is None else at] ^= 0x01
    path.write_bytes(bytes(data))
    return bytes(data)


def assert_registry_is_consistent(registry: ModelRegistry) -> None:
    """Every listed version is complete and loads; the pointer names one; the audit ends at it."""
    for version in registry.versions():
        recorded = registry.metadata(version)["artifact"]["sha256"]
        assert sha256_file(registry.versions_dir / version / "model.joblib") == recorded
        registry.load(version)
    pointer = json.loads(registry.pointer_path.read_text())
    assert pointer["version"] in registry.versions()
    assert registry.audit()[-1]["to"] == pointer["version"]


# -- 1. racing promoters --------------------------------------------------------------------


@pytest.fixture
def contested(tmp_path: Path) -> ModelRegistry:
    """A registry with v0001 in production and 20 more versions, each wanted by one process."""
    registry = ModelRegistry(tmp_path / "registry")
    artifact = tmp_path / "model.joblib"
    joblib.dump({"weights": [1, 2, 3]}, artifact)
    for i in range(1, 22):
        registry.register(artifact, {"run_id": f"run-{i}"}, {})
    registry.set_production("v0001", expected=None, actor="run-1", reason="first model")
    return registry


def _promote_once(root: str, version: str, barrier, results) -> None:
    registry = ModelRegistry(Path(root))
    barrier.wait(timeout=30)
    try:
        registry.set_production(version, expected="v0001", actor=version, reason="race")
    except RegistryError as error:
        results.put((version, "lost", str(error)))
    else:
        results.put((version, "won", ""))


def _promote_until_it_succeeds(root: str, version: str, barrier, results) -> None:
    registry = ModelRegistry(Path(root))
    barrier.wait(timeout=30)
    for _ in range(1000):
        try:
            registry.set_production(version, expected=registry.production(), actor=version, reason="retry")
        except RegistryError:
            continue
        results.put((version, "won", ""))
        return
    results.put((version, "gave up", ""))


def race(registry: ModelRegistry, promoter) -> dict[str, tuple[str, str]]:
    """Start one process per contender, release them together, return {version: (outcome, message)}."""
    barrier, results = FORK.Barrier(len(CONTENDERS)), FORK.Queue()
    processes = [FORK.Process(target=promoter, args=(str(registry.root), v, barrier, results)) for v in CONTENDERS]
    for process in processes:
        process.start()
    deadline = time.monotonic() + 60
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
    assert [p.exitcode for p in processes] == [0] * len(processes)  # none crashed or hung
    outcomes = {}
    for _ in processes:
        version, outcome, message = results.get(timeout=5)
        outcomes[version] = (outcome, message)
    return outcomes


def test_twenty_processes_switching_from_the_same_version_let_exactly_one_win(contested: ModelRegistry):
    outcomes = race(contested, _promote_once)

    winners = [v for v, (outcome, _) in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    losers = {v: message for v, (outcome, message) in outcomes.items() if outcome == "lost"}
    assert len(losers) == 19
    assert all("another change won" in message for message in losers.values())
    pointer = json.loads(contested.pointer_path.read_text())
    assert pointer["version"] == winners[0]
    new = contested.audit()[1:]
    assert [(e["from"], e["to"]) for e in new] == [("v0001", winners[0])]
    assert contested.audit()[-1]["to"] == contested.production()


def test_twenty_processes_retrying_with_the_current_version_all_switch_in_one_unbroken_chain(
    contested: ModelRegistry,
):
    outcomes = race(contested, _promote_until_it_succeeds)

    assert {outcome for outcome, _ in outcomes.values()} == {"won"}
    new = contested.audit()[1:]
    assert len(new) == 20
    assert sorted(e["to"] for e in new) == CONTENDERS
    assert new[0]["from"] == "v0001"
    assert all(later["from"] == earlier["to"] for earlier, later in itertools.pairwise(new))
    assert json.loads(contested.pointer_path.read_text())["version"] == new[-1]["to"]


# -- 2. killed tasks ------------------------------------------------------------------------


@pytest.fixture
def big_artifact(tmp_path: Path) -> Path:
    path = tmp_path / "big_model.joblib"
    joblib.dump({"weights": np.arange(500_000, dtype=np.float64)}, path)  # about 4 MB
    return path


@pytest.fixture
def in_production(tmp_path: Path, big_artifact: Path) -> ModelRegistry:
    """v0001 registered from the big artifact and in production."""
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(big_artifact, {"run_id": "run-1"}, {"bins": 10})
    registry.set_production("v0001", expected=None, actor="run-1", reason="first model")
    return registry


def _register(root: str, artifact: str) -> None:
    ModelRegistry(Path(root)).register(Path(artifact), {"run_id": "run-2"}, {"bins": 10})


def _register_but_die_halfway_through_the_copy(root: str, artifact: str) -> None:
    from include.ml import storage

    def write_half_then_die(destination, data, *args, **kwargs):  # the registry writes the bytes it verified
        Path(destination).write_bytes(data[: len(data) // 2])
        die()

    storage.write_bytes = write_half_then_die
    _register(root, artifact)


def _register_but_die_holding_the_lock_before_the_rename(root: str, artifact: str) -> None:
    os.rename = lambda *args, **kwargs: die()
    _register(root, artifact)


@pytest.mark.parametrize(
    "killed_register",
    [_register_but_die_halfway_through_the_copy, _register_but_die_holding_the_lock_before_the_rename],
    ids=["mid-copy", "holding-the-lock-before-the-rename"],
)
def test_a_registration_killed_midway_leaves_no_version_and_registering_again_works(
    in_production: ModelRegistry, big_artifact: Path, killed_register
):
    registry = in_production

    assert run_in_child(killed_register, str(registry.root), str(big_artifact)) == KILLED

    leftovers = [p for p in registry.versions_dir.iterdir() if p.name.startswith(".staging-")]
    assert len(leftovers) == 1  # the half-assembled version is on disk...
    assert registry.versions() == ["v0001"]  # ...but is not a version
    if killed_register is _register_but_die_halfway_through_the_copy:
        assert (leftovers[0] / "model.joblib").stat().st_size == big_artifact.stat().st_size // 2
    assert_registry_is_consistent(registry)
    assert registry.production() == "v0001"
    assert len(registry.audit()) == 1

    assert run_in_child(_register, str(registry.root), str(big_artifact)) == 0  # no lock left held

    assert registry.versions() == ["v0001", "v0002"]
    assert registry.metadata("v0002")["run_id"] == "run-2"
    np.testing.assert_array_equal(registry.load("v0002")["weights"], np.arange(500_000, dtype=np.float64))
    assert_registry_is_consistent(registry)


def _switch(root: str, version: str, expected: str) -> None:
    ModelRegistry(Path(root)).set_production(version, expected=expected, actor="rerun", reason="switch again")


def _kill_at_the_pointer(root: str, *, after_replacing: bool) -> None:
    registry = ModelRegistry(Path(root))
    replace = os.replace

    def replace_then_maybe_die(source, destination):
        if Path(destination) == registry.pointer_path and not after_replacing:
            die()
        replace(source, destination)
        if Path(destination) == registry.pointer_path:
            die()

    os.replace = replace_then_maybe_die
    registry.set_production("v0002", expected="v0001", actor="killed", reason="killed mid-switch")


def _switch_but_die_before_the_pointer_is_replaced(root: str) -> None:
    _kill_at_the_pointer(root, after_replacing=False)


def _switch_but_die_right_after_the_pointer_is_replaced(root: str) -> None:
    _kill_at_the_pointer(root, after_replacing=True)


def test_a_switch_killed_before_the_pointer_is_replaced_changes_nothing_and_switching_again_works(
    in_production: ModelRegistry, big_artifact: Path
):
    registry = in_production
    registry.register(big_artifact, {"run_id": "run-2"}, {})

    assert run_in_child(_switch_but_die_before_the_pointer_is_replaced, str(registry.root)) == KILLED

    written = list(registry.root.glob(".production.json.*.tmp"))
    assert [json.loads(p.read_text())["version"] for p in written] == ["v0002"]  # killed after writing it
    assert registry.production() == "v0001"
    assert [e["actor"] for e in registry.audit()] == ["run-1"]
    assert registry.versions() == ["v0001", "v0002"]
    assert_registry_is_consistent(registry)

    assert run_in_child(_switch, str(registry.root), "v0002", "v0001") == 0

    assert registry.production() == "v0002"
    assert [(e["from"], e["to"], e["actor"]) for e in registry.audit()] == [
        (None, "v0001", "run-1"), ("v0001", "v0002", "rerun")]
    assert_registry_is_consistent(registry)


def test_a_switch_killed_after_the_pointer_moved_is_still_in_the_audit_log(
    in_production: ModelRegistry, big_artifact: Path
):
    registry = in_production
    registry.register(big_artifact, {"run_id": "run-2"}, {})

    assert run_in_child(_switch_but_die_right_after_the_pointer_is_replaced, str(registry.root)) == KILLED

    assert registry.production() == "v0002"
    assert registry.audit()[-1]["to"] == "v0002"
    assert registry.rollback_target() == "v0001"


# -- 3. tampered artifacts ------------------------------------------------------------------


def test_an_artifact_changed_by_one_byte_is_not_loaded_and_the_error_names_the_version(
    in_production: ModelRegistry,
):
    artifact = in_production.versions_dir / "v0001" / "model.joblib"
    tampered = flip_one_byte(artifact)
    assert joblib.load(artifact) is not None  # the change alone would go unnoticed by joblib

    with pytest.raises(ArtifactIntegrityError) as caught:
        in_production.load("v0001")

    assert "version v0001" in str(caught.value)
    assert "will not be loaded" in str(caught.value)
    assert artifact.read_bytes() == tampered  # kept for investigation


# -- a credit_default registry with a real model in production (built once, copied per test) ---


@pytest.fixture(scope="module")
def _credit_day0_home(tmp_path_factory: pytest.TempPathFactory, run_day) -> Path:
    home = tmp_path_factory.mktemp("credit_day0")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        config = get_pipeline("credit_default")
        simulate.write_batches(config, DAY1, 2, rows=ROWS)
        assert run_day(config, DS0)["version"] == "v0001"
    return home


@pytest.fixture
def credit_in_production(_credit_day0_home: Path, ml_home: Path, credit_config: PipelineConfig) -> ModelRegistry:
    """Two landed days of credit_default; day 1's real model (v0001) is in production."""
    shutil.copytree(_credit_day0_home, ml_home)
    registry = steps.registry_for(credit_config)
    assert registry.production() == "v0001"
    return registry


@pytest.fixture(scope="module")
def scrambled_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A credit_default model fitted on shuffled labels: it has learnt nothing (AUC about 0.5)."""
    config = get_pipeline("credit_default")
    clean = validate_frame(simulate.credit_default(DAY1, ROWS, seed=7, drifted=False), config, config.features)
    train = split(clean, config).train.copy()
    train[config.target] = np.random.default_rng(0).permutation(train[config.target].to_numpy())
    path = tmp_path_factory.mktemp("scrambled") / "model.joblib"
    joblib.dump(fit(train, config, config.features), path)
    return path


def train_day1(config: PipelineConfig, run_id: str = "run-2") -> Path:
    workspace = paths.workspace_dir(config.name, run_id)
    steps.extract(config, workspace, DS1)
    steps.validate(config, workspace, run_id=run_id)
    steps.train(config, workspace)
    return workspace


def test_evaluating_against_a_tampered_production_model_fails_and_leaves_production(
    credit_in_production: ModelRegistry, credit_config: PipelineConfig
):
    audit_before = credit_in_production.audit()
    artifact = credit_in_production.versions_dir / "v0001" / "model.joblib"
    # a letter of a feature name inside the pickle: a byte that, loaded unchecked, cannot crash the process
    flip_one_byte(artifact, at=artifact.read_bytes().index(b"utilization"))
    workspace = train_day1(credit_config)

    with pytest.raises(ArtifactIntegrityError, match=r"version v0001 .*will not be loaded"):
        steps.evaluate(credit_config, workspace)

    assert not (workspace / "evaluation.json").exists()
    assert credit_in_production.production() == "v0001"
    assert credit_in_production.audit() == audit_before


# -- 4. the champion/challenger gate on real models -----------------------------------------


def test_a_candidate_that_learnt_nothing_is_rejected_by_the_interval_and_production_stays(
    credit_in_production: ModelRegistry, credit_config: PipelineConfig, scrambled_model: Path
):
    workspace = train_day1(credit_config)
    steps.write_candidate(credit_config, RunWorkspace(workspace), joblib.load(scrambled_model))  # signed, as train

    evaluation = steps.evaluate(credit_config, workspace)
    decision = steps.drift_check(credit_config, workspace)
    steps.conclude(credit_config, workspace, decision["branch"], "run-2", DS1)

    interval = evaluation["gates"]["interval"]
    assert interval["upper"] < -credit_config.gates.max_regression
    assert decision["branch"] == "reject"
    assert any("90% interval of the improvement reaches" in r for r in decision["reasons"])
    assert credit_in_production.production() == "v0001"
    assert len(credit_in_production.audit()) == 1


@pytest.mark.parametrize(("max_regression", "branch"), [(0.04, "promote"), (0.0, "reject")])
def test_a_candidate_equal_to_production_is_promoted_only_when_some_regression_is_allowed(
    credit_in_production: ModelRegistry, credit_config: PipelineConfig, max_regression: float, branch: str
):
    config = with_gates(credit_config, max_regression=max_regression)
    workspace = train_day1(config)
    steps.write_candidate(config, RunWorkspace(workspace), credit_in_production.load("v0001"))  # signed, as train

    evaluation = steps.evaluate(config, workspace)
    decision = steps.drift_check(config, workspace)

    assert (evaluation["gates"]["interval"]["lower"], evaluation["gates"]["interval"]["upper"]) == (0.0, 0.0)
    assert decision["branch"] == branch
    if branch == "reject":
        assert decision["reasons"] == [
            f"roc_auc {evaluation['score']:.4g} vs production's {evaluation['score']:.4g}: the 90% interval "
            "of the improvement reaches +0, not above the allowed regression -0"
        ]


def test_a_clearly_better_candidate_is_promoted_even_when_no_regression_is_allowed(
    credit_in_production: ModelRegistry, credit_config: PipelineConfig, scrambled_model: Path
):
    registry = credit_in_production
    record = {k: v for k, v in registry.metadata("v0001").items() if k not in ("version", "artifact")}
    weak = registry.register(scrambled_model, {**record, "run_id": "weak", "logical_date": "2025-12-31"},
                             registry.reference_profile("v0001"))
    registry.set_production(weak, expected="v0001", actor="test", reason="a weak model in production")
    config = with_gates(credit_config, max_regression=0.0)
    workspace = train_day1(config)

    evaluation = steps.evaluate(config, workspace)
    decision = steps.drift_check(config, workspace)
    outcome = steps.conclude(config, workspace, decision["branch"], "run-2", DS1)

    assert evaluation["gates"]["interval"]["lower"] > 0.1
    assert decision["branch"] == "promote"
    assert (outcome["production_before"], outcome["production_after"]) == (weak, outcome["version"])
    assert registry.audit()[-1]["to"] == outcome["version"] != weak


@pytest.mark.parametrize(
    ("pipeline", "lower", "upper", "passed"),
    [
        ("credit_default", -0.03, 0.10, True),  # roc_auc, 0.04 allowed: the lower end is the pessimistic one
        ("credit_default", -0.05, 0.10, False),
        ("house_prices", -9_000.0, 4_000.0, True),  # rmse, 5000 allowed: the upper end is the pessimistic one
        ("house_prices", 1_000.0, 6_000.0, False),
        ("house_prices", -6_000.0, -1_000.0, True),
    ],
)
def test_the_gate_judges_the_pessimistic_end_of_the_interval(pipeline: str, lower: float, upper: float,
                                                              passed: bool):
    config = get_pipeline(pipeline)
    interval = {"lower": lower, "upper": upper, "confidence": 0.9}
    candidate = 0.80 if config.greater_is_better else 50_000.0
    champion = candidate - (lower + upper) / 2

    assert quality_gates(candidate, champion, config, interval)["passed"] is passed


@dataclass(frozen=True)
class Holdout:
    config: PipelineConfig
    y: np.ndarray
    positive: object
    real: np.ndarray  # what the metric is computed from, per holdout row
    scrambled: np.ndarray


@pytest.fixture(scope="module")
def credit_holdout(scrambled_model: Path) -> Holdout:
    config = get_pipeline("credit_default")
    clean = validate_frame(simulate.credit_default(DAY1, ROWS, seed=7, drifted=False), config, config.features)
    data = split(clean, config)
    real, scrambled = fit(data.train, config, config.features), joblib.load(scrambled_model)
    names = [f.name for f in config.features]
    return Holdout(config, data.holdout[config.target].to_numpy(), real.classes_[1],
                   metric_inputs(real, data.holdout, config, names),
                   metric_inputs(scrambled, data.holdout, config, names))


def test_the_bootstrap_interval_is_the_same_for_the_same_seed_and_moves_with_another(credit_holdout: Holdout):
    h = credit_holdout
    reseeded = with_gates(h.config, bootstrap_seed=1)

    first = paired_bootstrap(h.y, h.real, h.scrambled, h.config, h.positive)
    again = paired_bootstrap(h.y, h.real, h.scrambled, h.config, h.positive)
    other = paired_bootstrap(h.y, h.real, h.scrambled, reseeded, h.positive)

    assert again == first
    assert other["difference"] == first["difference"]  # the point estimate is not resampled
    assert (other["lower"], other["upper"]) != (first["lower"], first["upper"])
    assert first["lower"] < first["difference"] < first["upper"]


@pytest.mark.parametrize("decimals", [None, 1], ids=["real-scores", "heavily-tied-scores"])
def test_the_vectorised_auc_of_every_resample_matches_sklearn(credit_holdout: Holdout, decimals: int | None):
    h = credit_holdout
    scores = h.real if decimals is None else h.real.round(decimals)
    is_positive = h.y == h.positive
    samples = np.random.default_rng(3).integers(0, len(h.y), (200, len(h.y)))

    expected = [roc_auc_score(is_positive[rows], scores[rows]) for rows in samples]

    np.testing.assert_allclose(_auc_rows(is_positive, scores, samples), expected, rtol=0, atol=1e-12)


def test_a_resample_holding_one_class_only_has_no_auc(credit_holdout: Holdout):
    is_positive = credit_holdout.y == credit_holdout.positive
    negatives = np.flatnonzero(~is_positive)[:50]

    result = _auc_rows(is_positive, credit_holdout.real, np.stack([negatives, np.arange(50)]))

    assert np.isnan(result[0]) and np.isfinite(result[1])


@pytest.fixture(scope="module")
def house_holdout() -> tuple[PipelineConfig, np.ndarray, np.ndarray, np.ndarray]:
    """house_prices (rmse, max_regression 5000): the holdout prices, a real model's predictions and
    the predictions of the training mean."""
    config = get_pipeline("house_prices")
    frame = simulate.house_prices(DAY1, ROWS, seed=11, drifted=False)
    features = infer_features(frame, config)
    data = split(validate_frame(frame, config, features), config)
    model = fit(data.train, config, features)
    y = data.holdout[config.target].to_numpy()
    real = metric_inputs(model, data.holdout, config, [f.name for f in features])
    return config, y, real, np.full(len(y), data.train[config.target].mean())


def gate_on_rmse(config: PipelineConfig, y: np.ndarray, candidate: np.ndarray, champion: np.ndarray) -> dict:
    interval = paired_bootstrap(y, candidate, champion, config)
    return quality_gates(metric_value("rmse", y, candidate), metric_value("rmse", y, champion), config, interval)


def test_for_rmse_a_candidate_with_lower_error_passes(house_holdout):
    config, y, real, mean = house_holdout

    result = gate_on_rmse(config, y, real, mean)

    assert result["interval"]["upper"] < 0  # lower error: every plausible difference is negative
    assert result["passed"], result["reasons"]


def test_for_rmse_a_candidate_with_higher_error_by_more_than_allowed_fails_naming_the_interval(house_holdout):
    config, y, real, mean = house_holdout

    result = gate_on_rmse(config, y, mean, real)

    assert result["interval"]["lower"] > config.gates.max_regression
    assert not result["passed"]
    assert any(f"{config.gates.confidence:.0%} interval of the improvement reaches -" in r for r in result["reasons"])


def test_for_rmse_a_candidate_slightly_worse_within_the_allowed_regression_passes(house_holdout):
    config, y, real, _ = house_holdout
    slightly_off = real + 2_000.0

    result = gate_on_rmse(config, y, slightly_off, real)

    assert 0 < result["interval"]["upper"] < config.gates.max_regression
    assert result["passed"], result["reasons"]


# -- 5. reruns and retries ------------------------------------------------------------------


def test_rerunning_a_logical_date_on_the_same_data_and_config_registers_and_switches_nothing_new(
    credit_in_production: ModelRegistry, credit_config: PipelineConfig, run_day
):
    rerun = run_day(credit_config, DS0, run_id="manual__rerun")

    assert (rerun["version"], rerun["reused_from_earlier_run"], rerun["switched"]) == ("v0001", True, False)
    assert credit_in_production.versions() == ["v0001"]
    assert [e["to"] for e in credit_in_production.audit()] == ["v0001"]


def test_rerunning_a_logical_date_with_another_config_registers_a_new_version(
    credit_in_production: ModelRegistry, credit_config: PipelineConfig, run_day
):
    reseeded = credit_config.model_copy(update={"model": credit_config.model.model_copy(update={"seed": 43})})

    rerun = run_day(reseeded, DS0, run_id="manual__reseeded")

    assert (rerun["version"], rerun["reused_from_earlier_run"]) == ("v0002", False)
    assert credit_in_production.versions() == ["v0001", "v0002"]


def _conclude_but_die_before_switching(config: PipelineConfig, workspace: Path) -> None:
    ModelRegistry.set_production = lambda *args, **kwargs: die()
    steps.conclude(config, workspace, "promote", "run-1", DS0)


def test_a_retry_after_a_crash_between_registering_and_switching_switches_exactly_once(
    credit_config: PipelineConfig,
):
    simulate.write_batches(credit_config, DAY1, 1, rows=ROWS)
    workspace = paths.workspace_dir(credit_config.name, "run-1")
    steps.extract(credit_config, workspace, DS0)
    steps.validate(credit_config, workspace, run_id="run-1")
    steps.train(credit_config, workspace)
    steps.evaluate(credit_config, workspace)
    assert steps.drift_check(credit_config, workspace)["branch"] == "promote"  # the first model
    registry = steps.registry_for(credit_config)

    assert run_in_child(_conclude_but_die_before_switching, credit_config, workspace) == KILLED
    assert (registry.versions(), registry.production(), registry.audit()) == (["v0001"], None, [])

    retried = steps.conclude(credit_config, workspace, "promote", "run-1", DS0)
    retried_again = steps.conclude(credit_config, workspace, "promote", "run-1", DS0)

    assert (retried["version"], retried["switched"]) == ("v0001", True)
    assert (retried_again["version"], retried_again["switched"]) == ("v0001", False)
    assert registry.versions() == ["v0001"]
    assert registry.production() == "v0001"
    assert [(e["from"], e["to"], e["actor"]) for e in registry.audit()] == [(None, "v0001", "run-1")]
