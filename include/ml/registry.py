"""A file-system model registry: numbered versions, an atomic production pointer, an audit log.

The files are those of :class:`~include.ml.paths.RegistryLayout`. A version folder is assembled
under a temporary name and renamed into place, so a killed task never leaves a version that looks
complete.

Trust: whoever can write the data root can change these files, so nothing here is believed on its
own. A version's metadata carries an HMAC (:mod:`include.ml.signing`, a key outside the data root) over
the artifact's bytes, the metadata, the pipeline and the version id, checked before anything is
unpickled; the production pointer is signed the same way; each audit line carries ``prev``, the sha256
of the line before it, and the signed pointer carries the last line, so a rewritten history breaks
the chain. Versions registered before signatures existed are signed by ``models sign``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from include.ml import signing, storage
from include.ml.errors import ArtifactIntegrityError, RegistryError
from include.ml.paths import RegistryLayout

VERSION_PATTERN = re.compile(r"v[0-9]{4,}")
ARTIFACT, METADATA, PROFILE = RegistryLayout.ARTIFACT, RegistryLayout.METADATA, RegistryLayout.PROFILE


SIGN_COMMAND = "python -m include.ml models sign --pipeline {pipeline}"


def one_line(text: str) -> str:
    """``text`` with every line break and control character (CR, LF, tab, ESC, NEL, U+2028...) as one
    space, trimmed: what the audit log stores as an actor or reason, and what a table shows."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).strip()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _unsigned(metadata: dict) -> dict:
    return {k: v for k, v in metadata.items() if k != "signature"}


@dataclass(frozen=True)
class VersionCheck:
    """What ``models verify`` says of one version: its sha256 and its signature."""

    version: str
    recorded_sha256: str
    actual_sha256: str
    signature: str  # "ok", "unsigned" or "invalid"
    problem: str | None  # None when intact

    @property
    def intact(self) -> bool:
        return self.problem is None


class ModelRegistry:
    """The versions of one pipeline's model and which one is in production."""

    def __init__(self, root: Path, pipeline: str | None = None):
        self.pipeline = pipeline  # named in messages that suggest a command
        self.layout = RegistryLayout(root)
        self.root = self.layout.root
        self.versions_dir = self.layout.versions
        self.pointer_path = self.layout.pointer
        self.audit_path = self.layout.audit

    @contextlib.contextmanager
    def _writable(self, what: str) -> Iterator[None]:
        """Turn a permission error into a :class:`RegistryError` that says what to do."""
        try:
            yield
        except PermissionError as exc:
            raise RegistryError(
                f"the model registry {self.root} is not writable ({exc.strerror}: {exc.filename}), so {what} was "
                "not done; production is unchanged. Give the Airflow workers write access to that folder, then "
                "clear the failed task to run it again."
            ) from exc
        except OSError as exc:
            if exc.errno != errno.EROFS:
                raise
            raise RegistryError(
                f"the model registry {self.root} is on a read-only file system ({exc.filename}), so {what} was not "
                "done; production is unchanged. Mount it read-write, then clear the failed task to run it again."
            ) from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with open(self.layout.lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- reading ---------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Complete version ids, oldest first."""
        if not self.versions_dir.exists():
            return []
        found = [p.name for p in self.versions_dir.iterdir() if VERSION_PATTERN.fullmatch(p.name)]
        return sorted(found, key=lambda v: int(v[1:]))

    def check_version_id(self, version: str) -> Path:
        """The folder of an existing version; :class:`RegistryError` for malformed or unknown ids."""
        if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
            raise RegistryError(
                f"{version!r} is not a version id (expected 'v' and digits, e.g. v0001); "
                f"list versions with `python -m include.ml models list --pipeline {self.pipeline or '<pipeline>'}`"
            )
        folder = self.versions_dir / version
        if not (folder / METADATA).is_file():
            known = self.versions()
            raise RegistryError(
                f"version {version} does not exist in {self.root} (known: {', '.join(known) or 'none'})"
            )
        return folder

    def metadata(self, version: str) -> dict:
        """The metadata JSON of a version."""
        return storage.read_json(self.check_version_id(version) / METADATA)

    def reference_profile(self, version: str) -> dict:
        """The stored reference profile (as a dict) of a version's training data."""
        return storage.read_json(self.check_version_id(version) / PROFILE)

    def production(self) -> str | None:
        """The production version id, or None before the first promotion."""
        pointer = self.pointer()
        return None if pointer is None else pointer["version"]

    def _pointer_context(self) -> dict:
        # the record itself names the pipeline (registries are also opened without a pipeline name)
        return {"file": self.layout.pointer.name}

    def pointer(self) -> dict | None:
        """The production pointer record (version, since, actor, reason, entry) or None; its signature is
        checked (:class:`ArtifactIntegrityError` for a pointer changed outside the registry)."""
        if not self.pointer_path.exists():
            return None
        record = storage.read_json(self.pointer_path)
        problem = signing.keyring().problem(record.get("signature") if isinstance(record, dict) else None,
                                            "production-pointer", {**self._pointer_context(),
                                                                   "record": _unsigned(record)
                                                                   if isinstance(record, dict) else record})
        if problem:
            hint = (f" If it was written before pointers were signed, run `{self._sign_command()}`."
                    if "no signature" in problem else "")
            raise ArtifactIntegrityError(
                f"the production pointer {self.pointer_path} is refused: {problem}, so it was not written by the "
                f"registry (a hand edit or a tampered file). Nothing was loaded or switched. Keep the file for "
                f"investigation, then point production at a known version with `python -m include.ml models "
                f"promote` after restoring the pointer from a backup.{hint}")
        if self.pipeline and record.get("pipeline") not in (None, self.pipeline):
            raise ArtifactIntegrityError(f"the production pointer {self.pointer_path} belongs to pipeline "
                                         f"{record.get('pipeline')!r}, not {self.pipeline!r}: it was copied from "
                                         "another registry and is refused")
        return record

    def _write_pointer(self, record: dict) -> None:
        signature = signing.keyring().sign("production-pointer",
                                           {**self._pointer_context(), "record": _unsigned(record)})
        storage.write_json(self.pointer_path, {**_unsigned(record), "signature": signature})

    def _sign_command(self) -> str:
        return SIGN_COMMAND.format(pipeline=self.pipeline or "<pipeline>")

    def _audit_lines(self) -> list[tuple[str, dict]]:
        """The complete lines of the audit log with their records (a torn last line is skipped)."""
        if not self.audit_path.exists():
            return []
        lines = []
        for line in self.audit_path.read_text().splitlines():
            try:
                entry = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                lines.append((line, entry))
        return lines

    def audit_problems(self) -> list[str]:
        """What breaks the audit log's chain (empty when intact): a line whose ``prev`` is not the sha256
        of the line before it, an unchained line after chained ones, or a last line the signed pointer
        does not carry. Lines written before the chain existed are accepted as a prefix."""
        problems, previous, chained = [], None, False
        for number, (line, entry) in enumerate(self._audit_lines(), start=1):
            if "prev" in entry:
                chained = True
                if entry["prev"] != (None if previous is None else storage.sha256_bytes(previous.encode())):
                    before = f"line {number - 1}" if number > 1 else "the start of the log"
                    problems.append(f"line {number} does not follow {before} (its prev hash differs): "
                                    "an earlier line was rewritten, removed or inserted")
            elif chained:
                problems.append(f"line {number} carries no prev hash after chained lines: it was not written "
                                "by the registry")
            previous = line
        pointer = self.pointer()
        entry = (pointer or {}).get("entry")
        lines = self._audit_lines()
        if entry is not None and "prev" in entry and (not lines or lines[-1][1] != entry):
            expected = storage.sha256_bytes(lines[-1][0].encode()) if lines else None
            if entry["prev"] != expected:
                problems.append("the last line is not the switch the signed production pointer records: the end "
                                "of the history was rewritten or removed")
        return problems

    def _audit_file(self) -> list[dict]:
        entries = [entry for _, entry in self._audit_lines()]
        if problems := self.audit_problems():
            raise ArtifactIntegrityError(
                f"the audit log {self.audit_path} was changed outside the registry: {'; '.join(problems)}. Keep the "
                "file for investigation and restore it from a backup; production switches are refused meanwhile.")
        return entries

    def _unlogged_switch(self) -> dict | None:
        """The pointer's own record of its last switch when a crash kept it out of the audit log."""
        pointer = self.pointer()
        entry = (pointer or {}).get("entry")
        if entry is None:
            return None
        logged = self._audit_file()
        return None if logged and logged[-1] == entry else entry

    def audit(self) -> list[dict]:
        """Every production switch, oldest first (including one a crash kept out of the log file)."""
        pending = self._unlogged_switch()
        return self._audit_file() + ([pending] if pending else [])

    def _chained(self, entry: dict) -> dict:
        """``entry`` with ``prev``: the sha256 of the audit log's last complete line."""
        lines = self._audit_lines()
        return {**entry, "prev": storage.sha256_bytes(lines[-1][0].encode()) if lines else None}

    def _append_audit(self, entry: dict) -> None:
        if self.audit_path.exists() and self.audit_path.stat().st_size:
            with open(self.audit_path, "rb+") as log:
                log.seek(-1, os.SEEK_END)
                if log.read(1) != b"\n":  # a torn last line (a writer killed mid-append) ends here, not in this one
                    log.write(b"\n")
        storage.append_jsonl(self.audit_path, entry)

    def _version_context(self, version: str, metadata: dict) -> dict:
        return {"pipeline": metadata.get("pipeline"), "version": version, "metadata": _unsigned(metadata)}

    def _sign_version(self, version: str, metadata: dict, payload: bytes) -> dict:
        return signing.keyring().sign("model-version", self._version_context(version, metadata), payload)

    def check(self, version: str, payload: bytes | None = None) -> VersionCheck:
        """Check a version's artifact (``payload``, or the file) against the sha256 and the signature in
        its metadata, without unpickling anything."""
        folder = self.check_version_id(version)
        metadata = self.metadata(version)
        expected = metadata["artifact"]["sha256"]
        if payload is None:
            path = folder / ARTIFACT
            if not path.is_file():
                return VersionCheck(version, expected, "missing", "invalid", f"the artifact {path} is missing")
            payload = path.read_bytes()
        actual = storage.sha256_bytes(payload)
        problem = signing.keyring().problem(metadata.get("signature"), "model-version",
                                            self._version_context(version, metadata), payload)
        state = "ok" if problem is None else "unsigned" if "signature" not in metadata else "invalid"
        if actual != expected:
            return VersionCheck(version, expected, actual, state,
                                f"model artifact {folder / ARTIFACT} has sha256 {actual[:12]}…, but version {version} "
                                f"was registered with {expected[:12]}…: the file was changed after registration")
        if state == "unsigned":
            return VersionCheck(version, expected, actual, state,
                                f"version {version} was registered before models were signed; sign it (after its "
                                f"sha256 checks out) with `{self._sign_command()} --version {version}`")
        if problem:
            return VersionCheck(version, expected, actual, state,
                                f"version {version}'s metadata or artifact was changed after registration, or it was "
                                f"copied from another version or pipeline: {problem}")
        if self.pipeline and metadata.get("pipeline") not in (None, self.pipeline):
            return VersionCheck(version, expected, actual, state,
                                f"version {version} belongs to pipeline {metadata.get('pipeline')!r}, not "
                                f"{self.pipeline!r}: it was copied from another registry")
        return VersionCheck(version, expected, actual, state, None)

    def load(self, version: str):
        """Load a version's model after checking its sha256 and signature; :class:`ArtifactIntegrityError`
        when either fails (nothing is unpickled then)."""
        import joblib

        payload = (self.check_version_id(version) / ARTIFACT).read_bytes()  # check and load the same bytes
        result = self.check(version, payload)
        if not result.intact:
            changed = result.actual_sha256 != result.recorded_sha256
            raise ArtifactIntegrityError(
                f"{result.problem}{' and will not be loaded.' if changed else '. It will not be loaded.'} Roll back "
                "to another version or retrain; keep the file for investigation.")
        return joblib.load(io.BytesIO(payload))

    def verify(self, version: str) -> tuple[bool, str, str]:
        """``(intact, recorded sha256, actual sha256)`` of a version's artifact, signature included,
        without loading it (:meth:`check` says what is wrong)."""
        result = self.check(version)
        return result.intact, result.recorded_sha256, result.actual_sha256

    def sign_legacy(self, version: str) -> str:
        """Sign a version registered before signatures existed, if its sha256 still checks out.
        Returns ``"signed"`` or ``"already signed"``; :class:`ArtifactIntegrityError` otherwise."""
        with self._writable(f"signing {version}"), self._locked():
            result = self.check(version)
            if result.intact:
                return "already signed"
            if result.actual_sha256 != result.recorded_sha256 or result.signature != "unsigned":
                raise ArtifactIntegrityError(f"{result.problem}. It was not signed; keep the files for "
                                             "investigation and retrain or roll back.")
            path = self.layout.metadata(version)
            metadata = storage.read_json(path)
            payload = self.layout.artifact(version).read_bytes()
            if storage.sha256_bytes(payload) != metadata["artifact"]["sha256"]:
                raise ArtifactIntegrityError(f"model artifact of {version} changed while it was being signed")
            storage.write_json(path, {**metadata, "signature": self._sign_version(version, metadata, payload)})
            return "signed"

    def sign_legacy_pointer(self) -> str | None:
        """Sign an unsigned production pointer whose version is intact; ``None`` without a pointer."""
        if not self.pointer_path.exists():
            return None
        with self._writable("signing the production pointer"), self._locked():
            record = storage.read_json(self.pointer_path)
            if "signature" in record:
                self.pointer()  # raises when the signature is wrong
                return "already signed"
            result = self.check(record["version"])
            if not result.intact:
                raise ArtifactIntegrityError(f"the production pointer names {record['version']}: {result.problem}. "
                                             "The pointer was not signed.")
            self._write_pointer(record)
            return "signed"

    def find_by_run(self, run_id: str) -> str | None:
        """The version a run already registered (so a retried task reuses it), if any."""
        for version in reversed(self.versions()):
            if self.metadata(version).get("run_id") == run_id:
                return version
        return None

    def rollback_target(self) -> str:
        """The version production replaced: walking back through promotions, never to a version a
        rollback just left. Raises :class:`RegistryError` when there is none."""
        current = self.production()
        previous = [e["from"] for e in self.audit()
                    if e["action"] == "promote" and e["to"] == current and e["from"] and e["from"] != e["to"]]
        if not previous:
            raise RegistryError(f"production is {current or 'empty'} and has no earlier version to roll back to; "
                                "name one explicitly (--to VERSION on the command line)")
        return previous[-1]

    def find_equivalent(self, logical_date: str, data_sha256: str, config_hash: str) -> str | None:
        """A version trained earlier for the same logical date, on the same data, with the same config.
        ``data_sha256`` is the training window's fingerprint (``training.window_sha256``: a window of one
        batch is that batch's sha256, which versions registered before windows are matched on)."""
        for version in reversed(self.versions()):
            meta = self.metadata(version)
            trained_on = meta.get("training", {}).get("window_sha256") or meta.get("data", {}).get("sha256")
            if (meta.get("logical_date"), trained_on, meta.get("config_hash")) == (
                    logical_date, data_sha256, config_hash):
                return version
        return None

    # -- writing ---------------------------------------------------------------------------

    def register(self, artifact: Path | bytes, metadata: dict, profile: dict) -> str:
        """Add a new version from a model (its bytes, or a file read once), its metadata and reference
        profile; return its id.

        The artifact's sha256, size and signature are added to the metadata (the bytes signed are the
        bytes stored). A run that already registered a version (a retried task) gets that version back
        instead of a second one.
        """
        run_id = metadata.get("run_id")
        if run_id and (existing := self.find_by_run(run_id)):
            return existing
        with self._writable("registering the new version"):
            return self._register(artifact, metadata, profile, run_id)

    def _register(self, artifact: Path | bytes, metadata: dict, profile: dict, run_id: str | None) -> str:
        keyring = signing.keyring()  # no key, no version: fail before anything is written
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        payload = artifact if isinstance(artifact, bytes) else Path(artifact).read_bytes()  # stored and signed
        staging = self.versions_dir / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            storage.write_bytes(staging / ARTIFACT, payload)
            record = {
                **({"pipeline": self.pipeline} if self.pipeline and "pipeline" not in metadata else {}),
                **_unsigned(metadata),
                "artifact": {"file": ARTIFACT, "sha256": storage.sha256_bytes(payload), "bytes": len(payload)},
                "registered_at": _now(),
            }
            storage.write_json(staging / PROFILE, profile)
            record["reference_profile"] = {"file": PROFILE, "sha256": storage.sha256_file(staging / PROFILE)}
            with self._locked():
                if run_id and (existing := self.find_by_run(run_id)):
                    return existing  # a concurrent attempt of the same run registered first
                versions = self.versions()
                version = f"v{(int(versions[-1][1:]) + 1 if versions else 1):04d}"
                record = {**record, "version": version}
                signature = keyring.sign("model-version", self._version_context(version, record), payload)
                storage.write_json(staging / METADATA, {**record, "signature": signature})
                os.rename(staging, self.versions_dir / version)
            return version
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def set_production(self, version: str, *, expected: str | None, actor: str, reason: str,
                       action: str = "promote") -> dict:
        """Point production at ``version`` if it still points at ``expected`` (compare-and-swap).

        Appends an audit entry and returns it. Raises :class:`RegistryError` when production moved
        meanwhile or the version does not exist; production is then unchanged.
        """
        reason, actor = one_line(reason or ""), one_line(actor or "")  # no CR/LF to forge audit lines with
        if not reason:
            raise RegistryError("a reason is required to change the production model")
        self.check_version_id(version)
        if not (checked := self.check(version)).intact:  # never point production at what would be refused at load
            raise ArtifactIntegrityError(f"{checked.problem}. Production was not switched to {version} and is "
                                         "unchanged; keep the files for investigation and choose an intact version.")
        with self._writable(f"switching production to {version}"), self._locked():
            if pending := self._unlogged_switch():
                self._append_audit(pending)  # a switch killed between pointer and log: log it now
            current = self.production()
            if current != expected:
                raise RegistryError(
                    f"production is {current}, not {expected} as expected: another change won. "
                    f"Nothing was switched; check `python -m include.ml models history --pipeline "
                    f"{self.pipeline or '<pipeline>'}` and retry."
                )
            if version == current:
                raise RegistryError(f"{version} is already production; nothing was switched")
            entry = self._chained({"time": _now(), "action": action, "from": current, "to": version,
                                   "actor": actor, "reason": reason})
            # the pointer carries its own audit entry, so a crash before the log line is repaired
            pipeline = self.pipeline or self.metadata(version).get("pipeline")
            self._write_pointer({"version": version, "since": entry["time"], "actor": actor, "reason": reason,
                                 "pipeline": pipeline, "entry": entry})
            self._append_audit(entry)
        return entry
