"""Signed models under attack (issue 17): whoever can write the data root tampers with the registry or a
run's workspace, and the pipeline's real entry points refuse what was not written by a key holder.

Each case runs through the library as the DAGs call it (``steps.run_step`` for a training run,
``scoring.score_partition`` for scoring) and through ``python -m include.ml models ...`` for the operator,
and asserts: the dedicated error (:class:`ArtifactIntegrityError`) with what, where and what to do;
production unchanged; every registry file kept (nothing deleted or repaired behind the user's back); what
``models verify`` exits with and prints; and that the canary signing key of this module appears in no
file under the data root, no error, no email and no command output the case produced.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from include.ml import alerts, paths, scoring, signing, steps, storage
from include.ml.config import PipelineConfig, get_pipeline
from include.ml.errors import ArtifactIntegrityError
from include.ml.records import DecisionRecord, RunWorkspace
from include.ml.simulate import write_batches, write_scoring_batches

pytestmark = pytest.mark.reliability

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = "credit_default"
DAY1 = dt.date(2026, 1, 1)
DAY2, DAY3 = "2026-01-02", "2026-01-03"
ROWS = 800  # above credit_default's min_rows (500); trains in about a second
# Distinctive keys: any of their spellings found in a file, message or email is a leak.
CANARY_KEY = "ca7a1e57" * 8
ROTATED_KEY = "5ec0dca7" * 8
ATTACKER_KEY = "bad0c0de" * 8


def _run_id(ds: str) -> str:
    return f"scheduled__{ds}T00:00:00+00:00"


def _spellings(key_hex: str) -> list[bytes]:
    secret = bytes.fromhex(key_hex)
    return [key_hex.encode(), key_hex.upper().encode(), base64.b64encode(secret), secret]


CANARIES = [spelling for key in (CANARY_KEY, ROTATED_KEY) for spelling in _spellings(key)]


def _use_key(monkeypatch: pytest.MonkeyPatch, key: str, previous: str | None = None) -> None:
    for name in ("ML_SIGNING_KEY_FILE", "ML_SIGNING_KEY_ID", "ML_SIGNING_PREVIOUS_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ML_SIGNING_KEY", key)
    if previous:
        monkeypatch.setenv("ML_SIGNING_PREVIOUS_KEYS", previous)
    else:
        monkeypatch.delenv("ML_SIGNING_PREVIOUS_KEYS", raising=False)


@pytest.fixture(scope="module", autouse=True)
def _one_openmp_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=int(os.environ.get("OMP_NUM_THREADS", "1")), user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def signed_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root signed with the canary key: day 1 trained and promoted (v0001), day 2 trained (v0002)
    and in production, two audit lines, day 3's training batch and scoring partition delivered."""
    home = tmp_path_factory.mktemp("signed-registry")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ML_HOME", str(home))
        _use_key(patch, CANARY_KEY)
        config = get_pipeline(PIPELINE)
        write_batches(config, DAY1, 3, rows=ROWS)
        write_scoring_batches(config, dt.date.fromisoformat(DAY3), 1, partitions=1, rows=200)
        steps.run_steps(config, _run_id(DAY1.isoformat()), DAY1.isoformat())
        steps.run_steps(config, _run_id(DAY2), DAY2)
        registry = steps.registry_for(config)
        if registry.production() != "v0002":  # day 2 may be held by the gates; an operator promotes it
            registry.set_production("v0002", expected="v0001", actor="cli:operator", reason="reviewed by hand")
        assert registry.versions() == ["v0001", "v0002"] and len(registry.audit()) == 2
    return home


@pytest.fixture
def config(signed_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PipelineConfig:
    """credit_default in a private copy of :func:`signed_home` (``$ML_HOME``), signing with the canary key."""
    copy = tmp_path / "ml_home"
    shutil.copytree(signed_home, copy)
    monkeypatch.setenv("ML_HOME", str(copy))
    _use_key(monkeypatch, CANARY_KEY)
    return get_pipeline(PIPELINE)


# -- what a user can see -------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_kept(config: PipelineConfig, before: dict[str, bytes]) -> None:
    """Every registry file of ``before`` is still there, and versions, pointer and audit log are byte for byte
    what they were (the run history may have gained a line)."""
    after = _files(config.registry_path)
    missing = sorted(set(before) - set(after))
    assert not missing, f"registry files deleted: {missing}"
    changed = [name for name in before if name.startswith(("versions", "production", "audit"))
               and before[name] != after[name]]
    assert not changed, f"registry files rewritten: {changed}"
    new_versions = sorted({n.split("/")[1] for n in after if n.startswith("versions/")}
                          - {n.split("/")[1] for n in before if n.startswith("versions/")})
    assert not new_versions, f"versions registered despite the refusal: {new_versions}"


def assert_no_canary(*texts: str) -> None:
    """No spelling of a canary key in any file under the data root nor in ``texts``."""
    home = paths.data_root()
    for name, content in _files(home).items():
        for canary in CANARIES:
            assert canary not in content, f"a signing key leaked into {home / name}"
    for text in texts:
        for canary in CANARIES:
            assert canary.decode("latin-1") not in text, f"a signing key leaked into: {text[:200]}"


@dataclass
class Cli:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args: str) -> Cli:
    """``python -m include.ml <args>`` with this test's environment (data root and keys)."""
    result = subprocess.run([sys.executable, "-m", "include.ml", *args], cwd=ROOT, env=dict(os.environ),
                            capture_output=True, text=True, timeout=120)
    return Cli(result.returncode, result.stdout, result.stderr)


def verify() -> Cli:
    return cli("models", "verify", "--pipeline", PIPELINE)


def verify_line(result: Cli, version: str) -> str:
    return next(line for line in result.out.splitlines() if line.strip().lstrip("* ").startswith(version))


@dataclass
class Failure:
    step: str
    error: BaseException
    email: alerts.Email

    @property
    def texts(self) -> list[str]:
        return [str(self.error), self.email.subject, self.email.html]


def run_next_day(config: PipelineConfig, ds: str = DAY3, start_at: str = "extract",
                 until: str = "report") -> Failure | None:
    """Run ``ds`` through the training steps as the DAG's tasks do, from ``start_at`` (an earlier part of the
    same run already done), and on a failure record it and render the task-failure email the DAG sends."""
    run_id = _run_id(ds)
    workspace = paths.workspace_dir(config.name, run_id)
    names = steps.STEPS[steps.STEPS.index(start_at):steps.STEPS.index(until) + 1]
    for name in names:
        branch = RunWorkspace(workspace).read(DecisionRecord).branch if name == steps.BRANCH_STEP else None
        try:
            steps.run_step(name, config, workspace, run_id, ds, branch=branch)
        except Exception as error:  # the DAG's failure callback sees any error
            steps.record_failure(config, run_id, ds, name, error)
            event = "artifact_tampered" if isinstance(error, ArtifactIntegrityError) else "task_failed"
            email = alerts.task_failure_email(config.name, config.dag_id, name, run_id, ds,
                                              error=f"{type(error).__name__}: {error}", event=event)
            return Failure(name, error, email)
    return None


def assert_refused_run(config: PipelineConfig, failure: Failure | None, step: str, *pieces: str) -> None:
    assert failure is not None, "the run went through"
    assert failure.step == step, f"failed at {failure.step}, not {step}: {failure.error}"
    assert isinstance(failure.error, ArtifactIntegrityError), repr(failure.error)
    for piece in pieces:
        assert piece in str(failure.error)
    assert "TAMPERED model artifact" in failure.email.subject


def _marker_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is loaded: proof of whether anything was unpickled."""

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    return pickle.dumps(Payload())


def _version_dir(config: PipelineConfig, version: str) -> Path:
    return config.registry_layout.versions / version


# -- 1. an artifact replaced, its sha256 updated ------------------------------------------------------------


def test_an_artifact_replaced_with_its_sha256_updated_is_refused_by_scoring_and_the_next_run_unloaded(
        config: PipelineConfig, tmp_path: Path):
    registry = steps.registry_for(config)
    marker = tmp_path / "unpickled"
    folder = _version_dir(config, "v0002")
    payload = _marker_pickle(marker)
    (folder / "model.joblib").write_bytes(payload)
    metadata = storage.read_json(folder / "metadata.json")
    metadata["artifact"].update(sha256=storage.sha256_bytes(payload), bytes=len(payload))
    storage.write_json(folder / "metadata.json", metadata)
    before = _files(config.registry_path)

    with pytest.raises(ArtifactIntegrityError) as loading:
        registry.load("v0002")
    message = str(loading.value)
    assert "version v0002's metadata or artifact was changed after registration" in message
    assert "its signature (key " in message and "does not match its content" in message
    assert "Roll back to another version or retrain; keep the file for investigation." in message

    [partition] = scoring.partitions(config, DAY3)
    with pytest.raises(ArtifactIntegrityError) as scored:
        scoring.score_partition(config, partition, DAY3)
    assert "v0002" in str(scored.value)
    failure = run_next_day(config)
    assert_refused_run(config, failure, "evaluate", "version v0002's metadata or artifact was changed")

    result = verify()
    assert result.code == 1
    assert "CHANGED" in verify_line(result, "v0002") and "invalid" in verify_line(result, "v0002")
    assert "ok" in verify_line(result, "v0001")
    assert "artifact(s) changed after registration: v0002" in result.err
    assert not marker.exists(), "the replaced pickle was unpickled"
    assert registry.production() == "v0002"
    assert_kept(config, before)
    assert_no_canary(message, str(scored.value), *failure.texts, result.text)


# -- 2. a signed version moved to another version --------------------------------------------------------


def test_a_signed_version_copied_over_another_version_is_refused(config: PipelineConfig):
    registry = steps.registry_for(config)
    for name in ("model.joblib", "metadata.json"):
        shutil.copy2(_version_dir(config, "v0001") / name, _version_dir(config, "v0002") / name)
    before = _files(config.registry_path)

    with pytest.raises(ArtifactIntegrityError) as loading:
        registry.load("v0002")
    assert "copied from another version or pipeline" in str(loading.value)
    assert "It will not be loaded. Roll back to another version or retrain" in str(loading.value)
    failure = run_next_day(config)
    assert_refused_run(config, failure, "evaluate", "version v0002's metadata or artifact")

    result = verify()
    assert result.code == 1
    assert "invalid" in verify_line(result, "v0002") and "ok" in verify_line(result, "v0001")
    assert "artifact(s) changed after registration: v0002" in result.err
    assert registry.production() == "v0002"
    assert_kept(config, before)
    assert_no_canary(str(loading.value), *failure.texts, result.text)


def test_a_tampered_version_is_not_made_production_by_promote_or_rollback(config: PipelineConfig):
    registry = steps.registry_for(config)
    for name in ("model.joblib", "metadata.json"):  # v0002's signed files over v0001
        shutil.copy2(_version_dir(config, "v0002") / name, _version_dir(config, "v0001") / name)
    before = _files(config.registry_path)

    for args in (("promote", "v0001"), ("rollback", "--to", "v0001"), ("rollback",)):
        result = cli("models", *args, "--pipeline", PIPELINE, "--reason", "v0002 misbehaves")
        assert result.code == 1, result.out
        assert "version v0001's metadata or artifact was changed after registration" in result.err
        assert "Production was not switched to v0001 and is unchanged" in result.err
        assert_no_canary(result.text)
    assert registry.production() == "v0002" and len(registry.audit()) == 2
    assert_kept(config, before)


# -- 3. the run's candidate swapped in the workspace ---------------------------------------------------------


@pytest.mark.parametrize("swap", ["another pickle", "another run's signed candidate"])
@pytest.mark.parametrize(("swapped_after", "refused_at"), [("train", "evaluate"), ("drift_check", "conclude")])
def test_a_candidate_swapped_in_the_workspace_is_refused_and_never_registered(
        config: PipelineConfig, tmp_path: Path, swap: str, swapped_after: str, refused_at: str):
    registry = steps.registry_for(config)
    assert run_next_day(config, until=swapped_after) is None
    ws = RunWorkspace(paths.workspace_dir(config.name, _run_id(DAY3)))
    marker = tmp_path / "unpickled"
    if swap == "another pickle":
        ws.path(ws.CANDIDATE).write_bytes(_marker_pickle(marker))
    else:  # day 2's candidate with the signature train wrote for it
        other = RunWorkspace(paths.workspace_dir(config.name, _run_id(DAY2)))
        for name in (ws.CANDIDATE, ws.CANDIDATE_SIGNATURE):
            shutil.copy2(other.path(name), ws.path(name))
    before = _files(config.registry_path)

    failure = run_next_day(config, start_at=steps.STEPS[steps.STEPS.index(swapped_after) + 1])
    assert_refused_run(config, failure, refused_at, f"the candidate model {ws.path(ws.CANDIDATE)} is refused: ",
                       "does not match its content", "will not be loaded or registered; production is unchanged",
                       "rerun the training for this date")
    assert not marker.exists(), "the swapped candidate was unpickled"
    assert registry.versions() == ["v0001", "v0002"] and registry.production() == "v0002"
    assert ws.path(ws.CANDIDATE).exists(), "the workspace was not kept for investigation"
    assert_kept(config, before)
    assert verify().code == 0  # the registry itself is intact
    assert_no_canary(*failure.texts)


# -- 4. the production pointer hand-edited ------------------------------------------------------------------


def test_a_hand_edited_production_pointer_is_refused_when_read(config: PipelineConfig):
    registry = steps.registry_for(config)
    record = storage.read_json(registry.pointer_path)
    storage.write_json(registry.pointer_path, {**record, "version": "v0001"})  # the signature kept as it was
    before = _files(config.registry_path)

    with pytest.raises(ArtifactIntegrityError) as reading:
        registry.production()
    message = str(reading.value)
    assert f"the production pointer {registry.pointer_path} is refused: its signature (key " in message
    assert "(a hand edit or a tampered file). Nothing was loaded or switched." in message
    assert "restoring the pointer from a backup" in message
    [partition] = scoring.partitions(config, DAY3)
    with pytest.raises(ArtifactIntegrityError):
        scoring.score_partition(config, partition, DAY3)
    failure = run_next_day(config)
    assert_refused_run(config, failure, "validate", "the production pointer", "is refused")

    result = verify()
    assert result.code == 1 and "the production pointer" in result.err and "is refused" in result.err
    promoted = cli("models", "promote", "v0001", "--pipeline", PIPELINE, "--reason", "try")
    assert promoted.code == 1 and "the production pointer" in promoted.err
    assert_kept(config, before)
    assert_no_canary(message, *failure.texts, result.text, promoted.text)


def test_an_older_signed_pointer_put_back_is_reported_by_verify_and_blocks_switches(config: PipelineConfig):
    registry = steps.registry_for(config)
    first = registry.audit()[0]
    # production.json as the registry signed it after day 1 (v0001), restored from an old backup
    registry._write_pointer({"version": "v0001", "since": first["time"], "actor": first["actor"],
                             "reason": first["reason"], "pipeline": PIPELINE, "entry": first})
    before = _files(config.registry_path)

    result = verify()
    assert result.code == 1
    assert "the last line is not the switch the signed production pointer records" in result.out
    promoted = cli("models", "promote", "v0002", "--pipeline", PIPELINE, "--reason", "back to v0002")
    assert promoted.code == 1 and "production switches are refused meanwhile" in promoted.err
    assert_kept(config, before)
    assert_no_canary(result.text, promoted.text)


# -- 5. the audit log rewritten -------------------------------------------------------------------------------


def _rewrite_reason(lines: list[str], index: int) -> list[str]:
    entry = json.loads(lines[index])
    return [*lines[:index], json.dumps({**entry, "reason": "nothing to see here"}), *lines[index + 1:]]


@pytest.mark.parametrize(("change", "problem"), [
    ("first line's reason rewritten", "line 2 does not follow line 1 (its prev hash differs)"),
    ("last line's reason rewritten", "the last line is not the switch the signed production pointer records"),
    ("first line deleted", "line 1 does not follow the start of the log (its prev hash differs)"),
])
def test_a_rewritten_audit_log_breaks_the_chain_and_blocks_switches_until_restored(
        config: PipelineConfig, change: str, problem: str):
    registry = steps.registry_for(config)
    original = registry.audit_path.read_bytes()
    lines = original.decode().splitlines()
    changed = {"first line's reason rewritten": lambda: _rewrite_reason(lines, 0),
               "last line's reason rewritten": lambda: _rewrite_reason(lines, 1),
               "first line deleted": lambda: lines[1:]}[change]()
    registry.audit_path.write_text("\n".join(changed) + "\n")
    before = _files(config.registry_path)

    result = verify()
    assert result.code == 1
    assert problem in result.out and f"the audit log {registry.audit_path} was rewritten" in result.err
    rollback = cli("models", "rollback", "--pipeline", PIPELINE, "--reason", "v0002 misbehaves")
    assert rollback.code == 1
    assert f"the audit log {registry.audit_path} was changed outside the registry" in rollback.err
    assert "restore it from a backup; production switches are refused meanwhile" in rollback.err
    with pytest.raises(ArtifactIntegrityError):
        registry.set_production("v0001", expected="v0002", actor="test", reason="direct")
    assert registry.production() == "v0002"
    assert_kept(config, before)

    registry.audit_path.write_bytes(original)  # restored from a backup
    assert verify().code == 0
    restored = cli("models", "rollback", "--pipeline", PIPELINE, "--reason", "v0002 misbehaves")
    assert restored.code == 0, restored.err
    assert registry.production() == "v0001"
    assert_no_canary(result.text, rollback.text, restored.text)


def test_a_torn_last_audit_line_is_tolerated_and_the_next_switch_is_logged(config: PipelineConfig):
    registry = steps.registry_for(config)
    with open(registry.audit_path, "a") as log:
        log.write('{"time": "2026-01-03T00:00:00+00:00", "action": "prom')  # a writer killed mid-append

    result = verify()
    assert result.code == 0 and "audit log: chain intact" in result.out
    rollback = cli("models", "rollback", "--pipeline", PIPELINE, "--reason", "v0002 misbehaves")
    assert rollback.code == 0, rollback.err
    assert registry.production() == "v0001"
    assert [(e["from"], e["to"]) for e in registry.audit()] == [(None, "v0001"), ("v0001", "v0002"),
                                                                ("v0002", "v0001")]
    lines = registry.audit_path.read_text().splitlines()
    assert lines[-2].endswith('"action": "prom')  # the torn fragment kept on a line of its own...
    assert json.loads(lines[-1])["action"] == "rollback"  # ...and the switch on the next one
    after = verify()
    assert after.code == 0 and "audit log: chain intact" in after.out
    assert_no_canary(result.text, rollback.text, after.text)


# -- 6. keys rotated, and a key nobody holds ------------------------------------------------------------------


def test_after_a_key_rotation_old_versions_still_load_and_new_ones_use_the_new_key(
        config: PipelineConfig, monkeypatch: pytest.MonkeyPatch):
    _use_key(monkeypatch, ROTATED_KEY, previous=CANARY_KEY)
    registry = steps.registry_for(config)
    assert registry.load("v0001") is not None and registry.load("v0002") is not None
    assert registry.production() == "v0002"
    assert verify().code == 0
    assert run_next_day(config) is None
    new = registry.versions()[-1]
    assert new == "v0003"
    assert registry.metadata(new)["signature"]["key_id"] == signing.key_id_of(bytes.fromhex(ROTATED_KEY))
    assert registry.metadata("v0001")["signature"]["key_id"] == signing.key_id_of(bytes.fromhex(CANARY_KEY))
    result = verify()
    assert result.code == 0, result.err
    assert_no_canary(result.text)


def test_without_the_previous_key_in_the_ring_old_versions_are_refused_naming_the_key(
        config: PipelineConfig, monkeypatch: pytest.MonkeyPatch):
    _use_key(monkeypatch, ROTATED_KEY)  # the old key was dropped instead of moved to the previous keys
    registry = steps.registry_for(config)
    before = _files(config.registry_path)
    old_id = signing.key_id_of(bytes.fromhex(CANARY_KEY))

    with pytest.raises(ArtifactIntegrityError) as pointer:
        registry.production()
    assert f"signed with key '{old_id}', which is not in the keyring" in str(pointer.value)
    assert "an old key goes in ML_SIGNING_PREVIOUS_KEYS_FILE" in str(pointer.value)
    failure = run_next_day(config)
    assert_refused_run(config, failure, "validate", f"signed with key '{old_id}'")
    assert_kept(config, before)
    assert_no_canary(str(pointer.value), *failure.texts)


def test_a_version_signed_with_an_unknown_key_is_refused(config: PipelineConfig, tmp_path: Path):
    registry = steps.registry_for(config)
    marker = tmp_path / "unpickled"
    folder = _version_dir(config, "v0002")
    payload = _marker_pickle(marker)
    metadata = storage.read_json(folder / "metadata.json")
    metadata["artifact"].update(sha256=storage.sha256_bytes(payload), bytes=len(payload))
    attacker = signing.Keyring(signing.SigningKey("attacker", bytes.fromhex(ATTACKER_KEY)))
    metadata["signature"] = attacker.sign("model-version", registry._version_context("v0002", metadata), payload)
    (folder / "model.joblib").write_bytes(payload)
    storage.write_json(folder / "metadata.json", metadata)
    before = _files(config.registry_path)

    with pytest.raises(ArtifactIntegrityError) as loading:
        registry.load("v0002")
    assert "signed with key 'attacker', which is not in the keyring" in str(loading.value)
    failure = run_next_day(config)
    assert_refused_run(config, failure, "evaluate", "signed with key 'attacker'")
    result = verify()
    assert result.code == 1 and "invalid" in verify_line(result, "v0002")
    assert not marker.exists()
    assert_kept(config, before)
    assert_no_canary(str(loading.value), *failure.texts, result.text)


# -- 7. versions registered before signatures --------------------------------------------------------------


def _strip_signature(config: PipelineConfig, version: str) -> None:
    path = _version_dir(config, version) / "metadata.json"
    storage.write_json(path, {k: v for k, v in storage.read_json(path).items() if k != "signature"})


def test_a_legacy_unsigned_version_is_refused_naming_models_sign_and_loads_once_signed(config: PipelineConfig):
    registry = steps.registry_for(config)
    _strip_signature(config, "v0002")
    before = _files(config.registry_path)

    with pytest.raises(ArtifactIntegrityError) as loading:
        registry.load("v0002")
    assert ("version v0002 was registered before models were signed; sign it (after its sha256 checks out) with "
            "`python -m include.ml models sign --pipeline credit_default --version v0002`") in str(loading.value)
    failure = run_next_day(config, until="evaluate")
    assert_refused_run(config, failure, "evaluate", "models sign --pipeline credit_default --version v0002")
    result = verify()
    assert result.code == 1 and "UNSIGNED" in verify_line(result, "v0002")
    assert_kept(config, before)

    signed = cli("models", "sign", "--pipeline", PIPELINE)
    assert signed.code == 0, signed.err
    assert signed.out.splitlines() == ["v0001: already signed", "v0002: signed", "production pointer: already signed"]
    assert registry.load("v0002") is not None
    assert verify().code == 0
    assert_no_canary(str(loading.value), *failure.texts, result.text, signed.text)


def test_a_legacy_version_whose_artifact_changed_is_not_signed(config: PipelineConfig, tmp_path: Path):
    registry = steps.registry_for(config)
    _strip_signature(config, "v0002")
    (_version_dir(config, "v0002") / "model.joblib").write_bytes(_marker_pickle(tmp_path / "unpickled"))
    before = _files(config.registry_path)

    signed = cli("models", "sign", "--pipeline", PIPELINE, "--version", "v0002")
    assert signed.code == 1
    assert "model artifact" in signed.err and "but version v0002 was registered with" in signed.err
    assert "It was not signed; keep the files for investigation and retrain or roll back." in signed.err
    assert "signature" not in registry.metadata("v0002")
    with pytest.raises(ArtifactIntegrityError, match="the file was changed after registration"):
        registry.load("v0002")
    result = verify()
    assert result.code == 1 and "CHANGED" in verify_line(result, "v0002")
    assert not (tmp_path / "unpickled").exists()
    assert_kept(config, before)
    assert_no_canary(signed.text, result.text)
