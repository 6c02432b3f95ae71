"""The model registry: numbered versions, a compare-and-swap production pointer, an audit log, and
artifacts that are checked before they are loaded."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import joblib
import pytest

from include.ml.errors import ArtifactIntegrityError, RegistryError
from include.ml.registry import ModelRegistry
from include.ml.storage import sha256_file


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "candidate.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    return path


def register(registry: ModelRegistry, artifact: Path, run_id: str | None = None, **metadata) -> str:
    return registry.register(artifact, {"run_id": run_id, **metadata}, {"bins": 10})


@pytest.fixture
def two_versions(registry: ModelRegistry, artifact: Path) -> ModelRegistry:
    register(registry, artifact, "run-1")
    register(registry, artifact, "run-2")
    return registry


# -- registering ----------------------------------------------------------------------------


def test_an_empty_registry_has_no_versions_and_no_production(registry: ModelRegistry):
    assert registry.versions() == []
    assert registry.production() is None
    assert registry.pointer() is None
    assert registry.audit() == []


def test_versions_are_numbered_in_order_of_registration(registry: ModelRegistry, artifact: Path):
    first = register(registry, artifact, "run-1")
    second = register(registry, artifact, "run-2")

    assert (first, second) == ("v0001", "v0002")
    assert registry.versions() == ["v0001", "v0002"]


def test_versions_sort_by_number_not_by_text(registry: ModelRegistry, artifact: Path):
    for i in range(11):
        register(registry, artifact, f"run-{i}")

    assert registry.versions()[-3:] == ["v0009", "v0010", "v0011"]


def test_a_version_keeps_the_artifact_its_metadata_and_its_profile(registry: ModelRegistry, artifact: Path):
    version = registry.register(artifact, {"run_id": "run-1", "metrics": {"roc_auc": 0.8}}, {"bins": 7})

    meta = registry.metadata(version)
    assert meta["version"] == version
    assert meta["metrics"] == {"roc_auc": 0.8}
    assert meta["artifact"]["sha256"] == sha256_file(artifact)
    assert meta["artifact"]["bytes"] == artifact.stat().st_size
    assert meta["registered_at"]
    assert registry.reference_profile(version) == {"bins": 7}
    assert registry.load(version) == {"weights": [1, 2, 3]}


def test_registering_the_same_run_again_returns_its_version(registry: ModelRegistry, artifact: Path):
    first = register(registry, artifact, "run-1")

    again = register(registry, artifact, "run-1")

    assert again == first
    assert registry.versions() == ["v0001"]
    assert registry.find_by_run("run-1") == "v0001"
    assert registry.find_by_run("run-2") is None


def test_versions_without_a_run_id_are_never_merged(registry: ModelRegistry, artifact: Path):
    assert [register(registry, artifact), register(registry, artifact)] == ["v0001", "v0002"]


def test_a_staging_folder_left_by_a_killed_task_is_not_a_version(registry: ModelRegistry, artifact: Path):
    leftover = registry.versions_dir / ".staging-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "model.joblib").write_bytes(b"half written")
    (registry.versions_dir / "notes").mkdir()

    assert registry.versions() == []
    assert register(registry, artifact, "run-1") == "v0001"
    assert registry.versions() == ["v0001"]


def test_no_staging_folder_is_left_after_registering(registry: ModelRegistry, artifact: Path):
    register(registry, artifact, "run-1")

    assert sorted(p.name for p in registry.versions_dir.iterdir()) == ["v0001"]


def test_a_failed_registration_leaves_no_version_behind(registry: ModelRegistry, tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        registry.register(tmp_path / "no-such-model.joblib", {"run_id": "run-1"}, {})

    assert registry.versions() == []
    assert list(registry.versions_dir.iterdir()) == []


# -- production pointer ---------------------------------------------------------------------


def test_promoting_points_production_at_the_version(two_versions: ModelRegistry):
    entry = two_versions.set_production("v0001", expected=None, actor="run-1", reason="first model")

    assert two_versions.production() == "v0001"
    pointer = two_versions.pointer()
    assert (pointer["version"], pointer["actor"], pointer["reason"]) == ("v0001", "run-1", "first model")
    assert entry["from"] is None and entry["to"] == "v0001"


def test_a_switch_with_a_stale_expected_version_is_refused_and_changes_nothing(two_versions: ModelRegistry):
    two_versions.set_production("v0001", expected=None, actor="a", reason="first")

    with pytest.raises(RegistryError) as caught:
        two_versions.set_production("v0002", expected="v0002", actor="b", reason="lost race")

    assert "production is v0001, not v0002 as expected" in str(caught.value)
    assert two_versions.production() == "v0001"
    assert len(two_versions.audit()) == 1


def test_expecting_no_production_when_there_is_one_is_refused(two_versions: ModelRegistry):
    two_versions.set_production("v0001", expected=None, actor="a", reason="first")

    with pytest.raises(RegistryError, match="production is v0001, not None"):
        two_versions.set_production("v0002", expected=None, actor="b", reason="second")

    assert two_versions.production() == "v0001"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_switch_needs_a_reason(two_versions: ModelRegistry, reason: str):
    with pytest.raises(RegistryError, match="a reason is required"):
        two_versions.set_production("v0001", expected=None, actor="a", reason=reason)

    assert two_versions.production() is None
    assert two_versions.audit() == []


def test_production_cannot_point_at_an_unknown_version(two_versions: ModelRegistry):
    with pytest.raises(RegistryError, match="version v0003 does not exist"):
        two_versions.set_production("v0003", expected=None, actor="a", reason="typo")

    assert two_versions.production() is None


def test_every_switch_is_one_audit_line_oldest_first(two_versions: ModelRegistry):
    two_versions.set_production("v0001", expected=None, actor="run-1", reason="first model")
    two_versions.set_production("v0002", expected="v0001", actor="run-2", reason="better")
    two_versions.set_production("v0001", expected="v0002", actor="alice", reason="v0002 misbehaves",
                                action="rollback")

    audit = two_versions.audit()

    assert [(e["action"], e["from"], e["to"], e["actor"]) for e in audit] == [
        ("promote", None, "v0001", "run-1"),
        ("promote", "v0001", "v0002", "run-2"),
        ("rollback", "v0002", "v0001", "alice"),
    ]
    assert audit[-1]["reason"] == "v0002 misbehaves"
    assert len(two_versions.audit_path.read_text().splitlines()) == 3
    assert all(json.loads(line)["time"] for line in two_versions.audit_path.read_text().splitlines())


# -- loading --------------------------------------------------------------------------------


def test_a_tampered_artifact_is_refused_and_kept(registry: ModelRegistry, artifact: Path):
    version = register(registry, artifact, "run-1")
    stored = registry.versions_dir / version / "model.joblib"
    stored.write_bytes(stored.read_bytes() + b"\x00")

    with pytest.raises(ArtifactIntegrityError) as caught:
        registry.load(version)

    assert f"version {version} was registered with" in str(caught.value)
    assert "changed after registration" in str(caught.value)
    assert isinstance(caught.value, RegistryError)
    assert stored.exists()


def test_a_replaced_artifact_is_refused(registry: ModelRegistry, artifact: Path):
    version = register(registry, artifact, "run-1")
    joblib.dump({"weights": "evil"}, registry.versions_dir / version / "model.joblib")

    with pytest.raises(ArtifactIntegrityError):
        registry.load(version)


# -- version ids ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../../etc/passwd", "", "v1/../x", "v0001/../../x", "V0001", "v001", "0001",
                                 "v0001 ", None, 1])
def test_malformed_version_ids_are_refused_before_touching_the_disk(two_versions: ModelRegistry, bad):
    with pytest.raises(RegistryError, match="is not a version id"):
        two_versions.check_version_id(bad)


@pytest.mark.parametrize("bad", ["v١٢٣٤", "v0001\n", "v０００１"])
def test_version_ids_with_odd_characters_are_refused(two_versions: ModelRegistry, bad: str):
    with pytest.raises(RegistryError):
        two_versions.check_version_id(bad)


@pytest.mark.parametrize("bad", ["v١٢٣٤", "v0001\n"])
def test_version_ids_with_non_ascii_digits_or_a_newline_are_malformed(two_versions: ModelRegistry, bad: str):
    with pytest.raises(RegistryError) as caught:
        two_versions.check_version_id(bad)

    assert "is not a version id" in str(caught.value)


def test_an_unknown_version_is_refused_listing_the_known_ones(two_versions: ModelRegistry):
    with pytest.raises(RegistryError) as caught:
        two_versions.check_version_id("v0099")

    assert "version v0099 does not exist" in str(caught.value)
    assert "known: v0001, v0002" in str(caught.value)


def test_a_known_version_id_gives_its_folder_inside_the_registry(two_versions: ModelRegistry):
    assert two_versions.check_version_id("v0002") == two_versions.versions_dir / "v0002"


def test_reading_metadata_of_a_path_like_id_is_refused(two_versions: ModelRegistry):
    with pytest.raises(RegistryError):
        two_versions.metadata("../../etc/passwd")
    with pytest.raises(RegistryError):
        two_versions.load("../v0001")


# -- concurrency ----------------------------------------------------------------------------


def test_registering_from_many_threads_at_once_gives_unique_consecutive_ids(registry: ModelRegistry, artifact):
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda i: register(registry, artifact, f"run-{i}"), range(16)))

    assert sorted(ids) == [f"v{i:04d}" for i in range(1, 17)]
    assert registry.versions() == sorted(ids)
    assert {registry.metadata(v)["run_id"] for v in ids} == {f"run-{i}" for i in range(16)}


def _register_in_another_process(root: str, artifact: str, run_id: str) -> str:
    return ModelRegistry(Path(root)).register(Path(artifact), {"run_id": run_id}, {})


def test_registering_from_many_processes_at_once_gives_unique_consecutive_ids(
    registry: ModelRegistry, artifact: Path
):
    runs = [f"run-{i}" for i in range(12)]
    with ProcessPoolExecutor(max_workers=4, mp_context=get_context("fork")) as pool:
        ids = list(pool.map(_register_in_another_process, [str(registry.root)] * 12, [str(artifact)] * 12, runs))

    assert sorted(ids) == [f"v{i:04d}" for i in range(1, 13)]
    assert {registry.metadata(v)["run_id"]: v for v in registry.versions()} == dict(zip(runs, ids, strict=True))


def test_concurrent_switches_with_the_same_expected_version_let_exactly_one_win(two_versions: ModelRegistry):
    def switch(version: str) -> bool:
        try:
            two_versions.set_production(version, expected=None, actor=version, reason="race")
            return True
        except RegistryError:
            return False

    with ThreadPoolExecutor(max_workers=2) as pool:
        wins = list(pool.map(switch, ["v0001", "v0002"] * 4))

    assert wins.count(True) == 1
    assert len(two_versions.audit()) == 1
    assert two_versions.production() == two_versions.audit()[0]["to"]


def test_overlapping_attempts_of_the_same_run_register_one_version(
    registry: ModelRegistry, artifact: Path, monkeypatch: pytest.MonkeyPatch
):
    both_looked = threading.Barrier(2, timeout=2)
    first_look = threading.local()
    find_by_run = registry.find_by_run

    def find_after_the_other_attempt_looked_too(run_id: str):
        found = find_by_run(run_id)
        if not getattr(first_look, "done", False):
            first_look.done = True
            # both attempts look before either registers; if the lookup moved under the lock, the other
            # attempt cannot look meanwhile, and after the timeout this one goes on alone
            with contextlib.suppress(threading.BrokenBarrierError):
                both_looked.wait()
        return found

    monkeypatch.setattr(registry, "find_by_run", find_after_the_other_attempt_looked_too)

    with ThreadPoolExecutor(max_workers=2) as pool:
        ids = list(pool.map(lambda _: register(registry, artifact, "run-1"), range(2)))

    assert ids[0] == ids[1]
    assert registry.versions() == ["v0001"]


# -- signatures, the signed pointer and the chained audit log (more in test_signing.py) --------


def test_a_registered_version_carries_a_signature_over_its_bytes_and_metadata(registry: ModelRegistry,
                                                                            artifact: Path):
    version = register(registry, artifact, "run-1")

    signature = registry.metadata(version)["signature"]
    assert set(signature) == {"key_id", "hmac"} and len(signature["hmac"]) == 64
    assert registry.check(version).signature == "ok"


def test_a_replaced_artifact_with_its_sha256_updated_in_the_metadata_is_refused(registry: ModelRegistry,
                                                                              artifact: Path):
    version = register(registry, artifact, "run-1")
    stored = registry.versions_dir / version / "model.joblib"
    joblib.dump({"weights": "evil"}, stored)
    meta_path = registry.versions_dir / version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["artifact"]["sha256"] = sha256_file(stored)
    meta_path.write_text(json.dumps(meta))

    with pytest.raises(ArtifactIntegrityError, match="will not be loaded"):
        registry.load(version)
    assert registry.verify(version)[0] is False


def test_the_pointer_is_signed_and_each_audit_line_carries_the_hash_of_the_one_before(
        two_versions: ModelRegistry):
    two_versions.set_production("v0001", expected=None, actor="a", reason="first")
    two_versions.set_production("v0002", expected="v0001", actor="a", reason="second")

    lines = two_versions.audit_path.read_text().splitlines()
    assert json.loads(lines[0])["prev"] is None
    assert json.loads(lines[1])["prev"] == hashlib.sha256(lines[0].encode()).hexdigest()
    assert "signature" in json.loads(two_versions.pointer_path.read_text())
    assert two_versions.audit_problems() == []


def test_a_hand_edited_pointer_is_refused(two_versions: ModelRegistry):
    two_versions.set_production("v0001", expected=None, actor="a", reason="first")
    pointer = json.loads(two_versions.pointer_path.read_text())
    two_versions.pointer_path.write_text(json.dumps({**pointer, "version": "v0002"}))

    with pytest.raises(ArtifactIntegrityError, match="production pointer"):
        two_versions.production()
