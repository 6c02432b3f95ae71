"""A file-system model registry: numbered versions, an atomic production pointer, an audit log.

The files are those of :class:`~include.ml.paths.RegistryLayout`. A version folder is assembled
under a temporary name and renamed into place, so a killed task never leaves a version that looks
complete. Loading checks the artifact's sha256.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from include.ml import storage
from include.ml.errors import ArtifactIntegrityError, RegistryError
from include.ml.paths import RegistryLayout

VERSION_PATTERN = re.compile(r"v[0-9]{4,}")
ARTIFACT, METADATA, PROFILE = RegistryLayout.ARTIFACT, RegistryLayout.METADATA, RegistryLayout.PROFILE


def one_line(text: str) -> str:
    """``text`` with every line break and control character (CR, LF, tab, ESC, NEL, U+2028...) as one
    space, trimmed: what the audit log stores as an actor or reason, and what a table shows."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+", " ", text).strip()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


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
        if not self.pointer_path.exists():
            return None
        return storage.read_json(self.pointer_path)["version"]

    def pointer(self) -> dict | None:
        """The production pointer record (version, since, actor, reason) or None."""
        return storage.read_json(self.pointer_path) if self.pointer_path.exists() else None

    def _audit_file(self) -> list[dict]:
        return storage.read_jsonl(self.audit_path)

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

    def _append_audit(self, entry: dict) -> None:
        storage.append_jsonl(self.audit_path, entry)

    def load(self, version: str):
        """Load a version's model after checking its sha256; :class:`ArtifactIntegrityError` if it changed."""
        import joblib

        folder = self.check_version_id(version)
        expected = self.metadata(version)["artifact"]["sha256"]
        payload = (folder / ARTIFACT).read_bytes()  # hash and load the same bytes: no swap in between
        actual = storage.sha256_bytes(payload)
        if actual != expected:
            raise ArtifactIntegrityError(
                f"model artifact {folder / ARTIFACT} has sha256 {actual[:12]}…, but version {version} was "
                f"registered with {expected[:12]}…: the file was changed after registration and will not be "
                f"loaded. Roll back to another version or retrain; keep the file for investigation."
            )
        return joblib.load(io.BytesIO(payload))

    def verify(self, version: str) -> tuple[bool, str, str]:
        """``(intact, recorded sha256, actual sha256)`` of a version's artifact, without loading it."""
        folder = self.check_version_id(version)
        expected = self.metadata(version)["artifact"]["sha256"]
        path = folder / ARTIFACT
        actual = storage.sha256_file(path) if path.is_file() else "missing"
        return actual == expected, expected, actual

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
        """A version trained earlier for the same logical date, on the same data, with the same config."""
        for version in reversed(self.versions()):
            meta = self.metadata(version)
            if (meta.get("logical_date"), meta.get("data", {}).get("sha256"), meta.get("config_hash")) == (
                    logical_date, data_sha256, config_hash):
                return version
        return None

    # -- writing ---------------------------------------------------------------------------

    def register(self, artifact: Path, metadata: dict, profile: dict) -> str:
        """Add a new version from a model file, its metadata and reference profile; return its id.

        The artifact's sha256 and size are added to the metadata. A run that already registered
        a version (a retried task) gets that version back instead of a second one.
        """
        run_id = metadata.get("run_id")
        if run_id and (existing := self.find_by_run(run_id)):
            return existing
        with self._writable("registering the new version"):
            return self._register(artifact, metadata, profile, run_id)

    def _register(self, artifact: Path, metadata: dict, profile: dict, run_id: str | None) -> str:
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        staging = self.versions_dir / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            shutil.copyfile(artifact, staging / ARTIFACT)
            record = {
                **metadata,
                "artifact": {"file": ARTIFACT, "sha256": storage.sha256_file(staging / ARTIFACT),
                             "bytes": (staging / ARTIFACT).stat().st_size},
                "registered_at": _now(),
            }
            storage.write_json(staging / PROFILE, profile)
            record["reference_profile"] = {"file": PROFILE, "sha256": storage.sha256_file(staging / PROFILE)}
            with self._locked():
                if run_id and (existing := self.find_by_run(run_id)):
                    return existing  # a concurrent attempt of the same run registered first
                versions = self.versions()
                version = f"v{(int(versions[-1][1:]) + 1 if versions else 1):04d}"
                storage.write_json(staging / METADATA, {**record, "version": version})
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
            entry = {"time": _now(), "action": action, "from": current, "to": version,
                     "actor": actor, "reason": reason}
            # the pointer carries its own audit entry, so a crash before the log line is repaired
            storage.write_json(self.pointer_path, {"version": version, "since": entry["time"],
                                                  "actor": actor, "reason": reason, "entry": entry})
            self._append_audit(entry)
        return entry
