"""A file-system model registry: numbered versions, an atomic production pointer, an audit log.

Layout under the registry root::

    versions/v0001/model.joblib          the fitted scikit-learn pipeline
    versions/v0001/metadata.json         metrics, decision, fingerprint, config, versions, sha256
    versions/v0001/reference_profile.json
    production.json                      {"version": "v0001", ...}, replaced atomically
    audit.jsonl                          one line per production switch
    .lock                                serialises id allocation and pointer switches

A version folder is assembled under a temporary name and renamed into place, so a killed task
never leaves a version that looks complete. Loading checks the artifact's sha256.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from include.ml.errors import ArtifactIntegrityError, RegistryError
from include.ml.extract import sha256_file

VERSION_PATTERN = re.compile(r"v[0-9]{4,}")
ARTIFACT = "model.joblib"
METADATA = "metadata.json"
PROFILE = "reference_profile.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_jsonl_latest(path: Path, key: tuple[str, ...]) -> list[dict]:
    """The records of a JSON-lines history, oldest first, keeping only the last line of each ``key``
    (a rerun replaces its earlier line, in the place of the rerun). Empty when the file is missing; a
    torn line (a writer killed mid-append) is skipped."""
    if not path.exists():
        return []
    latest: dict[tuple, dict] = {}
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            identity = tuple(entry.get(k) for k in key)
            latest.pop(identity, None)
            latest[identity] = entry
    return list(latest.values())


class ModelRegistry:
    """The versions of one pipeline's model and which one is in production."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.versions_dir = self.root / "versions"
        self.pointer_path = self.root / "production.json"
        self.audit_path = self.root / "audit.jsonl"

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
        with open(self.root / ".lock", "a") as handle:
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
                f"list versions with `python -m include.ml models list`"
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
        return json.loads((self.check_version_id(version) / METADATA).read_text())

    def reference_profile(self, version: str) -> dict:
        """The stored reference profile (as a dict) of a version's training data."""
        return json.loads((self.check_version_id(version) / PROFILE).read_text())

    def production(self) -> str | None:
        """The production version id, or None before the first promotion."""
        if not self.pointer_path.exists():
            return None
        return json.loads(self.pointer_path.read_text())["version"]

    def pointer(self) -> dict | None:
        """The production pointer record (version, since, actor, reason) or None."""
        return json.loads(self.pointer_path.read_text()) if self.pointer_path.exists() else None

    def _audit_file(self) -> list[dict]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line.strip()]

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
        with open(self.audit_path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def load(self, version: str):
        """Load a version's model after checking its sha256; :class:`ArtifactIntegrityError` if it changed."""
        import joblib

        folder = self.check_version_id(version)
        expected = self.metadata(version)["artifact"]["sha256"]
        payload = (folder / ARTIFACT).read_bytes()  # hash and load the same bytes: no swap in between
        actual = hashlib.sha256(payload).hexdigest()
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
        actual = sha256_file(path) if path.is_file() else "missing"
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
                "artifact": {"file": ARTIFACT, "sha256": sha256_file(staging / ARTIFACT),
                             "bytes": (staging / ARTIFACT).stat().st_size},
                "registered_at": _now(),
            }
            write_json_atomic(staging / PROFILE, profile)
            record["reference_profile"] = {"file": PROFILE, "sha256": sha256_file(staging / PROFILE)}
            with self._locked():
                if run_id and (existing := self.find_by_run(run_id)):
                    return existing  # a concurrent attempt of the same run registered first
                versions = self.versions()
                version = f"v{(int(versions[-1][1:]) + 1 if versions else 1):04d}"
                write_json_atomic(staging / METADATA, {**record, "version": version})
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
        if not reason or not reason.strip():
            raise RegistryError("a reason is required to change the production model")
        self.check_version_id(version)
        with self._writable(f"switching production to {version}"), self._locked():
            if pending := self._unlogged_switch():
                self._append_audit(pending)  # a switch killed between pointer and log: log it now
            current = self.production()
            if current != expected:
                raise RegistryError(
                    f"production is {current}, not {expected} as expected: another change won. "
                    f"Nothing was switched; check `python -m include.ml models history` and retry."
                )
            if version == current:
                raise RegistryError(f"{version} is already production; nothing was switched")
            entry = {"time": _now(), "action": action, "from": current, "to": version,
                     "actor": actor, "reason": reason}
            # the pointer carries its own audit entry, so a crash before the log line is repaired
            write_json_atomic(self.pointer_path, {"version": version, "since": entry["time"],
                                                  "actor": actor, "reason": reason, "entry": entry})
            self._append_audit(entry)
        return entry
