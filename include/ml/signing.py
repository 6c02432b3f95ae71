"""Signatures of what the pipeline will unpickle or trust: HMAC-SHA256 with a key that lives outside
the data root.

Whoever can write the data root can replace a pickle and the sha256 beside it, but cannot make a
signature without the key. The key comes from ``ML_SIGNING_KEY`` (hex or base64 text) or from the
file named by ``ML_SIGNING_KEY_FILE``; its id is ``ML_SIGNING_KEY_ID`` or the first 8 hex digits of
its sha256. Keys are rotated by moving the old key to ``ML_SIGNING_PREVIOUS_KEYS`` (keys separated by
commas or white space) or ``ML_SIGNING_PREVIOUS_KEYS_FILE`` (one key a line, optionally
``<id>:<key>``): new signatures use the current key, and any key of the ring verifies.

A signature covers a *purpose* (``model-version``, ``candidate``, ``production-pointer``), a context
of canonical JSON (the pipeline, the version or run, the metadata) and the payload's bytes, so a
signed artifact moved to another version, run or pipeline no longer verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.ml import paths
from include.ml.errors import ConfigError

KEY_BYTES = 32  # what `keys create` writes
MIN_KEY_BYTES = 16
CREATE_COMMAND = "python -m include.ml keys create --out FILE"
ENV_KEY, ENV_KEY_FILE, ENV_KEY_ID = "ML_SIGNING_KEY", "ML_SIGNING_KEY_FILE", "ML_SIGNING_KEY_ID"
ENV_PREVIOUS, ENV_PREVIOUS_FILE = "ML_SIGNING_PREVIOUS_KEYS", "ML_SIGNING_PREVIOUS_KEYS_FILE"


class SigningKeyError(ConfigError):
    """No usable signing key: missing, malformed, too short, or kept inside the data root (a task fails
    without retries: the deployment must change)."""


def _how_to_create() -> str:
    return (f"Create one outside the data root with `{CREATE_COMMAND}` (a random {KEY_BYTES}-byte key, mode 0600) "
            f"and set {ENV_KEY_FILE}=FILE, or set {ENV_KEY} to the key in hex or base64")


def parse_key(text: str, where: str) -> bytes:
    """The bytes of a key written as hex or base64 text; :class:`SigningKeyError` naming ``where``."""
    text = text.strip()
    key: bytes | None = None
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if not key:
        raise SigningKeyError(f"the signing key in {where} is neither hex nor base64 text. {_how_to_create()}.")
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(f"the signing key in {where} has {len(key)} bytes, fewer than {MIN_KEY_BYTES}. "
                              f"{_how_to_create()}.")
    return key


def key_id_of(secret: bytes) -> str:
    """The default id of a key: the first 8 hex digits of its sha256 (the key itself is never shown)."""
    return hashlib.sha256(secret).hexdigest()[:8]


def _inside_data_root(path: Path) -> bool:
    return path.resolve().is_relative_to(paths.data_root())


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"SigningKey({self.key_id!r})"


def canonical(data: Any) -> bytes:
    """The canonical JSON of ``data``: sorted keys, no spaces, values JSON lacks through ``str`` (as
    :func:`include.ml.storage.write_json` stores them, so what is read back signs the same)."""
    return json.dumps(json.loads(json.dumps(data, default=str)), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode()


@dataclass(frozen=True)
class Keyring:
    """The current key (which signs) and previous keys (which still verify)."""

    current: SigningKey
    previous: tuple[SigningKey, ...] = ()

    @property
    def key_ids(self) -> list[str]:
        return [self.current.key_id, *(k.key_id for k in self.previous)]

    @staticmethod
    def _mac(key: SigningKey, purpose: str, context: dict, payload: bytes) -> str:
        mac = hmac.new(key.secret, digestmod=hashlib.sha256)
        for part in (purpose.encode(), canonical(context)):
            mac.update(len(part).to_bytes(8, "big") + part)  # length-prefixed: no ambiguity between parts
        mac.update(payload)
        return mac.hexdigest()

    def sign(self, purpose: str, context: dict, payload: bytes = b"") -> dict:
        """``{"key_id", "hmac"}`` of ``payload`` in ``context`` with the current key."""
        return {"key_id": self.current.key_id, "hmac": self._mac(self.current, purpose, context, payload)}

    def problem(self, signature: Any, purpose: str, context: dict, payload: bytes = b"") -> str | None:
        """None when ``signature`` is valid for these bytes and context, else what is wrong."""
        if not isinstance(signature, dict) or not isinstance(signature.get("hmac"), str):
            return "it carries no signature"
        key = next((k for k in (self.current, *self.previous) if k.key_id == signature.get("key_id")), None)
        if key is None:
            return (f"it was signed with key {str(signature.get('key_id'))[:16]!r}, which is not in the keyring "
                    f"(keys: {', '.join(self.key_ids)}; an old key goes in {ENV_PREVIOUS_FILE})")
        if not hmac.compare_digest(self._mac(key, purpose, context, payload), signature["hmac"]):
            return f"its signature (key {key.key_id}) does not match its content"
        return None


def _previous_keys() -> list[SigningKey]:
    entries: list[tuple[str, str]] = []
    if text := os.environ.get(ENV_PREVIOUS, "").strip():
        entries += [(item, ENV_PREVIOUS) for item in re.split(r"[\s,]+", text) if item]
    if file := os.environ.get(ENV_PREVIOUS_FILE, "").strip():
        try:
            lines = Path(file).read_text().splitlines()
        except OSError as exc:
            raise SigningKeyError(f"cannot read {ENV_PREVIOUS_FILE}={file}: {exc.strerror}") from exc
        entries += [(line.strip(), f"{ENV_PREVIOUS_FILE}={file}") for line in lines
                    if line.strip() and not line.lstrip().startswith("#")]
    keys = []
    for item, where in entries:
        key_id, _, text = item.rpartition(":") if ":" in item else ("", "", item)
        secret = parse_key(text, where)
        keys.append(SigningKey(key_id or key_id_of(secret), secret))
    return keys


def current_key() -> SigningKey:
    """The key that signs, from ``ML_SIGNING_KEY`` or ``ML_SIGNING_KEY_FILE``."""
    if text := os.environ.get(ENV_KEY, "").strip():
        secret = parse_key(text, ENV_KEY)
    elif file := os.environ.get(ENV_KEY_FILE, "").strip():
        path = Path(file)
        if _inside_data_root(path):
            raise SigningKeyError(f"the signing key file {path} is inside the data root {paths.data_root()}, where "
                                  "whoever can write models could also read or replace the key. Move it out and "
                                  f"point {ENV_KEY_FILE} at the new place.")
        try:
            secret = parse_key(path.read_text(), f"{ENV_KEY_FILE}={path}")
        except FileNotFoundError:
            raise SigningKeyError(f"the signing key file {path} ({ENV_KEY_FILE}) does not exist. "
                                  f"{_how_to_create()}.") from None
        except OSError as exc:
            raise SigningKeyError(f"cannot read the signing key file {path} ({ENV_KEY_FILE}): {exc.strerror}") from exc
    else:
        raise SigningKeyError(f"no model signing key: neither {ENV_KEY} nor {ENV_KEY_FILE} is set, and models are "
                              f"neither signed nor loaded without one. {_how_to_create()}.")
    return SigningKey(os.environ.get(ENV_KEY_ID, "").strip() or key_id_of(secret), secret)


def keyring() -> Keyring:
    """The keyring of this process's environment (read each time: a rotated key needs no restart)."""
    return Keyring(current_key(), tuple(_previous_keys()))


def create_key_file(path: Path) -> SigningKey:
    """Write a new random key (hex) to ``path`` with mode 0600; refuse a path inside the data root or
    one that exists. Returns the key (its id is what signatures will name)."""
    path = Path(path).expanduser()
    if _inside_data_root(path):
        raise SigningKeyError(f"refusing to write a signing key to {path}: it is inside the data root "
                              f"{paths.data_root()}, where whoever can write models could read it. Choose a path "
                              "outside it (e.g. ~/.config/ml-pipeline/signing.key or a secrets mount).")
    secret = secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path} already exists; it is not overwritten (models signed with it would no "
                              "longer load). Choose another path, or move the old key to the previous keys first.") \
            from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secret.hex() + "\n")
    return SigningKey(key_id_of(secret), secret)
