"""Signed models, a signed production pointer and a chained audit log: what whoever can write the
data root (but does not hold the key) can no longer do unnoticed."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
from pathlib import Path

import joblib
import pytest

from include.ml import signing, simulate, steps, storage
from include.ml.cli import main
from include.ml.errors import ArtifactIntegrityError
from include.ml.records import RunWorkspace
from include.ml.registry import ModelRegistry

OTHER_KEY = "0123456789abcdef" * 4


@pytest.fixture
def registry(ml_home: Path) -> ModelRegistry:
    return ModelRegistry(ml_home / "registry" / "p", "p")


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "candidate.joblib"
    joblib.dump({"weights": [1, 2, 3]}, path)
    return path


def register(registry: ModelRegistry, artifact: Path, run_id: str) -> str:
    return registry.register(artifact, {"pipeline": registry.pipeline, "run_id": run_id}, {"bins": 10})


def evil_pickle(path: Path) -> bytes:
    joblib.dump({"weights": "evil"}, path)
    return path.read_bytes()


def test_a_registered_version_is_signed_with_the_current_key_id(registry, artifact):
    version = register(registry, artifact, "run-1")

    signature = registry.metadata(version)["signature"]
    assert signature["key_id"] == signing.keyring().current.key_id
    assert registry.check(version).intact
    assert registry.load(version) == {"weights": [1, 2, 3]}


def test_a_replaced_artifact_with_an_updated_sha256_is_refused_at_load_and_by_verify(registry, artifact):
    version = register(registry, artifact, "run-1")
    payload = evil_pickle(registry.layout.artifact(version))
    meta_path = registry.layout.metadata(version)
    meta = storage.read_json(meta_path)
    meta["artifact"]["sha256"] = storage.sha256_bytes(payload)
    storage.write_json(meta_path, meta)

    with pytest.raises(ArtifactIntegrityError, match=r"signature .* does not match"):
        registry.load(version)
    intact, _, _ = registry.verify(version)
    assert not intact


def test_models_verify_exits_1_for_a_replaced_artifact_with_an_updated_sha256(registry, artifact, capsys):
    version = register(registry, artifact, "run-1")
    payload = evil_pickle(registry.layout.artifact(version))
    meta = storage.read_json(registry.layout.metadata(version))
    storage.write_json(registry.layout.metadata(version),
                       {**meta, "artifact": {**meta["artifact"], "sha256": storage.sha256_bytes(payload)}})
    check = registry.check(version)

    assert (check.intact, check.signature) == (False, "invalid")
    assert "does not match its content" in check.problem


def test_a_signed_version_copied_to_another_version_id_is_refused(registry, artifact):
    register(registry, artifact, "run-1")
    shutil.copytree(registry.layout.version("v0001"), registry.layout.version("v0002"))

    with pytest.raises(ArtifactIntegrityError, match="copied from another version"):
        registry.load("v0002")


def test_a_signed_version_copied_to_another_pipeline_is_refused(registry, artifact, ml_home):
    register(registry, artifact, "run-1")
    other = ModelRegistry(ml_home / "registry" / "q", "q")
    other.versions_dir.mkdir(parents=True)
    shutil.copytree(registry.layout.version("v0001"), other.layout.version("v0001"))

    with pytest.raises(ArtifactIntegrityError, match="belongs to pipeline 'p'"):
        other.load("v0001")


def test_editing_a_signed_metric_breaks_the_signature(registry, artifact):
    version = register(registry, artifact, "run-1")
    meta = storage.read_json(registry.layout.metadata(version))
    storage.write_json(registry.layout.metadata(version), {**meta, "decision": "promoted", "metrics": {"auc": 1}})

    assert not registry.check(version).intact


# -- the candidate in the run workspace -----------------------------------------------------


def test_a_swapped_candidate_is_refused_at_evaluate_and_at_registration(credit_config, tmp_path):
    simulate.write_batches(credit_config, dt.date(2026, 1, 1), 1, rows=800)
    workspace = RunWorkspace(tmp_path / "runs" / "run-1")
    steps.extract(credit_config, workspace, "2026-01-01")
    steps.validate(credit_config, workspace)
    steps.train(credit_config, workspace)
    assert (workspace.path(workspace.CANDIDATE_SIGNATURE)).exists()
    evil_pickle(workspace.path(workspace.CANDIDATE))

    with pytest.raises(ArtifactIntegrityError, match=r"candidate model .* is refused"):
        steps.evaluate(credit_config, workspace)
    assert not workspace.path("evaluation.json").exists()
    with pytest.raises(ArtifactIntegrityError):
        steps.verified_candidate(credit_config, workspace)


def test_a_signed_candidate_moved_to_another_run_is_refused(credit_config, tmp_path):
    first, second = RunWorkspace(tmp_path / "run-1"), RunWorkspace(tmp_path / "run-2")
    steps.write_candidate(credit_config, first, {"model": 1})
    second.folder.mkdir()
    for name in (first.CANDIDATE, first.CANDIDATE_SIGNATURE):
        shutil.copyfile(first.path(name), second.path(name))

    assert steps.verified_candidate(credit_config, first)
    with pytest.raises(ArtifactIntegrityError):
        steps.verified_candidate(credit_config, second)


# -- the production pointer and the audit log -----------------------------------------------


@pytest.fixture
def in_production(registry, artifact) -> ModelRegistry:
    register(registry, artifact, "run-1")
    register(registry, artifact, "run-2")
    registry.set_production("v0001", expected=None, actor="t", reason="first")
    registry.set_production("v0002", expected="v0001", actor="t", reason="second")
    return registry


def test_a_hand_edited_pointer_is_refused_with_a_clear_error(in_production):
    pointer = storage.read_json(in_production.pointer_path)
    storage.write_json(in_production.pointer_path, {**pointer, "version": "v0001"})

    with pytest.raises(ArtifactIntegrityError, match=r"production pointer .* is refused.*not written by the registry"):
        in_production.production()


def test_a_rewritten_audit_line_is_detected_and_models_verify_reports_it(in_production, capsys, monkeypatch):
    lines = in_production.audit_path.read_text().splitlines()
    first = json.loads(lines[0])
    lines[0] = json.dumps({**first, "actor": "someone else", "reason": "nothing to see"})
    in_production.audit_path.write_text("\n".join(lines) + "\n")

    assert any("line 2 does not follow line 1" in p for p in in_production.audit_problems())
    with pytest.raises(ArtifactIntegrityError, match="audit log"):
        in_production.audit()
    monkeypatch.setattr(steps, "registry_for", lambda config: in_production)
    monkeypatch.setattr("include.ml.cli.get_pipeline", lambda name: type("C", (), {"name": "p"})())
    assert main(["models", "verify", "--pipeline", "credit_default"]) == 1
    assert "audit log" in capsys.readouterr().err


def test_a_removed_last_audit_line_is_detected(in_production):
    lines = in_production.audit_path.read_text().splitlines()
    in_production.audit_path.write_text(lines[0] + "\n")

    assert in_production.audit_problems() == []  # the pointer's own entry is a pending switch...
    assert in_production.audit()[-1]["to"] == "v0002"  # ...and is shown, as after a crash
    in_production.audit_path.write_text("")
    assert any("end of the history" in p for p in in_production.audit_problems())


def test_a_torn_last_audit_line_is_tolerated(in_production):
    with open(in_production.audit_path, "a") as handle:
        handle.write('{"time": "2026-01-0')

    assert in_production.audit_problems() == []
    assert [e["to"] for e in in_production.audit()] == ["v0001", "v0002"]
    in_production.set_production("v0001", expected="v0002", actor="t", reason="back", action="rollback")
    assert in_production.production() == "v0001"


# -- keys -----------------------------------------------------------------------------------


def test_after_rotation_old_signatures_verify_and_new_ones_use_the_new_key(registry, artifact, monkeypatch):
    old = register(registry, artifact, "run-1")
    old_id = registry.metadata(old)["signature"]["key_id"]
    monkeypatch.setenv("ML_SIGNING_PREVIOUS_KEYS", os.environ["ML_SIGNING_KEY"])
    monkeypatch.setenv("ML_SIGNING_KEY", OTHER_KEY)

    new = register(registry, artifact, "run-2")

    assert registry.metadata(new)["signature"]["key_id"] == signing.key_id_of(bytes.fromhex(OTHER_KEY)) != old_id
    assert registry.check(old).intact and registry.check(new).intact
    monkeypatch.delenv("ML_SIGNING_PREVIOUS_KEYS")
    assert "not in the keyring" in registry.check(old).problem


def test_a_missing_key_says_how_to_create_one(monkeypatch, registry, artifact):
    monkeypatch.delenv("ML_SIGNING_KEY")

    with pytest.raises(signing.SigningKeyError, match=r"python -m include\.ml keys create --out FILE"):
        register(registry, artifact, "run-1")
    assert registry.versions() == []


def test_a_key_file_inside_the_data_root_is_refused(monkeypatch, ml_home):
    ml_home.mkdir(parents=True, exist_ok=True)
    (ml_home / "signing.key").write_text(OTHER_KEY)
    monkeypatch.delenv("ML_SIGNING_KEY")
    monkeypatch.setenv("ML_SIGNING_KEY_FILE", str(ml_home / "signing.key"))

    with pytest.raises(signing.SigningKeyError, match="inside the data root"):
        signing.keyring()


def test_keys_create_writes_a_private_key_that_signs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "keys" / "signing.key"

    assert main(["keys", "create", "--out", str(out)]) == 0

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    monkeypatch.delenv("ML_SIGNING_KEY")
    monkeypatch.setenv("ML_SIGNING_KEY_FILE", str(out))
    assert signing.keyring().current.key_id in capsys.readouterr().out
    assert main(["keys", "create", "--out", str(out)]) == 1  # never overwritten


def test_keys_create_refuses_a_path_inside_the_data_root(ml_home, capsys):
    assert main(["keys", "create", "--out", str(ml_home / "signing.key")]) == 1

    assert "inside the data root" in capsys.readouterr().err
    assert not (ml_home / "signing.key").exists()


# -- versions registered before signatures --------------------------------------------------


def _unsign(registry: ModelRegistry, version: str) -> None:
    path = registry.layout.metadata(version)
    storage.write_json(path, {k: v for k, v in storage.read_json(path).items() if k != "signature"})


def test_an_unsigned_version_is_refused_with_the_sign_command(registry, artifact):
    version = register(registry, artifact, "run-1")
    _unsign(registry, version)

    with pytest.raises(ArtifactIntegrityError, match=r"models sign --pipeline p --version v0001"):
        registry.load(version)


def test_models_sign_signs_legacy_versions_and_the_pointer_and_refuses_a_tampered_one(in_production):
    registry = in_production
    _unsign(registry, "v0001")
    _unsign(registry, "v0002")
    pointer = storage.read_json(registry.pointer_path)
    storage.write_json(registry.pointer_path, {k: v for k, v in pointer.items() if k != "signature"})
    with pytest.raises(ArtifactIntegrityError, match="models sign"):
        registry.production()
    evil_pickle(registry.layout.artifact("v0001"))  # sha256 no longer checks out

    assert registry.sign_legacy("v0002") == "signed"
    assert registry.sign_legacy("v0002") == "already signed"
    with pytest.raises(ArtifactIntegrityError, match="was not signed"):
        registry.sign_legacy("v0001")
    assert "signature" not in registry.metadata("v0001")
    assert registry.sign_legacy_pointer() == "signed"
    assert registry.production() == "v0002"
    assert registry.load("v0002") == {"weights": [1, 2, 3]}


def test_a_pointer_copied_from_another_pipelines_registry_is_refused(in_production, ml_home):
    other = ModelRegistry(ml_home / "registry" / "q", "q")
    other.root.mkdir(parents=True)
    shutil.copyfile(in_production.pointer_path, other.pointer_path)

    with pytest.raises(ArtifactIntegrityError, match="belongs to pipeline 'p'"):
        other.production()


def test_in_airflow_the_key_can_come_from_the_ml_signing_key_connection(monkeypatch):
    from airflow import sdk

    from include.airflow_tasks import signing_key_from_connection

    monkeypatch.delenv("ML_SIGNING_KEY")
    monkeypatch.setattr(sdk.Connection, "get", classmethod(
        lambda cls, conn_id: type("C", (), {"password": OTHER_KEY})() if conn_id == "ml_signing_key" else None))

    signing_key_from_connection()

    assert signing.keyring().current.key_id == signing.key_id_of(bytes.fromhex(OTHER_KEY))


def test_a_missing_key_is_a_config_error_that_tasks_do_not_retry(monkeypatch):
    from include.ml.errors import ConfigError

    monkeypatch.delenv("ML_SIGNING_KEY")
    with pytest.raises(ConfigError):
        signing.keyring()
