"""Client key material: the ed25519 identity and the keyring of room keys.

Both live in small JSON files that only their owner may read.

**Identity file** (version 1)::

    {"format": "roomkeeper-identity", "version": 1,
     "keyid": "<43-char keyid>", "seed": "<unpadded base64url of the 32-byte ed25519 seed>"}

**Keyring file** (version 1)::

    {"format": "roomkeeper-keyring", "version": 1,
     "rooms": {"<room id>": "<unpadded base64url of the 32-byte room key>", ...}}

Rules for both files:

- They are created with mode 0600 from the first byte (``os.open`` with the mode), never
  chmod-ed after the secret is already on disk. Overwrites go through a 0600 temporary file
  in the same directory and an atomic rename, so a crash leaves the old file or the new one.
- Like ssh with a private key, loading *refuses* a file that its group or others may read
  or write (``InsecureKeyFile``): a secret that others could have copied is not a secret.
  Fix it with ``chmod 600 <file>``. The check runs on POSIX systems only.
- Loading is strict: unknown formats, versions or fields, non-canonical base64 and an
  identity whose keyid does not match its seed are ``MalformedKeyFile``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, final

import nacl.signing

from roomkeeper.core import KeyId, RoomId, RoomkeeperError, encode_keyid, parse_room_id

__all__ = [
    "IDENTITY_FORMAT",
    "KEYRING_FORMAT",
    "KEY_FILE_VERSION",
    "ROOM_KEY_BYTES",
    "Identity",
    "IdentityError",
    "InsecureKeyFile",
    "KeyFileExists",
    "KeyFileNotFound",
    "Keyring",
    "MalformedKeyFile",
    "RoomKeyMissing",
]

IDENTITY_FORMAT: Final = "roomkeeper-identity"
KEYRING_FORMAT: Final = "roomkeeper-keyring"
KEY_FILE_VERSION: Final = 1
#: XSalsa20-Poly1305 (SecretBox) keys are 32 bytes.
ROOM_KEY_BYTES: Final = 32
_SEED_BYTES: Final = 32
#: Key files are tiny; a bigger file is not one of ours, and reading it whole would be silly.
_MAX_KEY_FILE_BYTES: Final = 1 << 20
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


class IdentityError(RoomkeeperError):
    """A key file (identity or keyring) cannot be used. ``path`` names the file.

    Raised as is, with code ``key_file_unreadable``, when the OS refuses the read for a
    reason other than the ones the subclasses cover."""

    code = "identity_error"

    def __init__(self, message: str, *, path: Path, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.path = path


class KeyFileNotFound(IdentityError):
    code = "key_file_not_found"


class KeyFileExists(IdentityError):
    """Saving would overwrite an existing key file and ``overwrite`` was not asked for."""

    code = "key_file_exists"


class InsecureKeyFile(IdentityError):
    """The file's group or others have permissions on it; ``mode`` holds its permission bits."""

    code = "insecure_key_file"

    def __init__(self, message: str, *, path: Path, mode: int) -> None:
        super().__init__(message, path=path)
        self.mode = mode


class MalformedKeyFile(IdentityError):
    """The content is not a valid key file. ``code`` narrows it down:
    ``malformed_key_file``, ``unsupported_key_file_version`` or ``keyid_mismatch``."""

    code = "malformed_key_file"


class RoomKeyMissing(RoomkeeperError, LookupError):
    """The keyring holds no key for ``room_id``."""

    code = "room_key_missing"

    def __init__(self, room_id: str) -> None:
        super().__init__(f"no room key for room {room_id!r}")
        self.room_id = room_id


# --- Identity -------------------------------------------------------------------------


@final
class Identity:
    """An ed25519 signing identity. ``repr`` shows the keyid only, never the seed."""

    __slots__ = ("_signing_key",)

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing_key = signing_key

    @classmethod
    def generate(cls) -> Identity:
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != _SEED_BYTES:
            raise ValueError(f"an ed25519 seed is {_SEED_BYTES} bytes")
        return cls(nacl.signing.SigningKey(seed))

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return self._signing_key

    @property
    def seed(self) -> bytes:
        return bytes(self._signing_key)

    @property
    def public_key(self) -> bytes:
        return bytes(self._signing_key.verify_key)

    @property
    def keyid(self) -> KeyId:
        return encode_keyid(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached ed25519 signature of ``message``."""
        return self._signing_key.sign(message).signature

    def __repr__(self) -> str:
        return f"Identity(keyid={self.keyid!r})"

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the identity to ``path`` with mode 0600. An existing file is only
        replaced with ``overwrite=True``: silently losing a private key is unrecoverable."""
        doc = {"format": IDENTITY_FORMAT, "version": KEY_FILE_VERSION,
               "keyid": self.keyid, "seed": _b64url_encode(self.seed)}
        _write_private(Path(path), _dump(doc), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read an identity file; raises an ``IdentityError`` subclass when it is missing,
        readable by others, or malformed."""
        where = Path(path)
        doc = _load_document(where, IDENTITY_FORMAT, {"keyid", "seed"})
        seed = _field_b64url(doc, "seed", _SEED_BYTES, where)
        identity = cls.from_seed(seed)
        if doc["keyid"] != identity.keyid:
            raise MalformedKeyFile(
                "the keyid in the identity file does not belong to its seed",
                path=where, code="keyid_mismatch")
        return identity


# --- Keyring --------------------------------------------------------------------------


@final
class Keyring:
    """Room id -> 32-byte room key. ``repr`` lists room ids only, never keys."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes] | None = None) -> None:
        self._keys: dict[RoomId, bytes] = {}
        for room_id, key in (keys or {}).items():
            self.set(room_id, key)

    def get(self, room_id: str) -> bytes:
        try:
            return self._keys[RoomId(room_id)]
        except KeyError:
            raise RoomKeyMissing(room_id) from None

    def set(self, room_id: str, room_key: bytes) -> None:
        valid = parse_room_id(room_id)
        if valid is None:
            raise ValueError(f"not a room id: {room_id!r}")
        if len(room_key) != ROOM_KEY_BYTES:
            raise ValueError(f"a room key is {ROOM_KEY_BYTES} bytes")
        self._keys[valid] = bytes(room_key)

    def remove(self, room_id: str) -> None:
        if self._keys.pop(RoomId(room_id), None) is None:
            raise RoomKeyMissing(room_id)

    def rooms(self) -> list[RoomId]:
        return sorted(self._keys)

    def __contains__(self, room_id: object) -> bool:
        return room_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(rooms={self.rooms()!r})"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically replace ``path`` with this keyring, mode 0600."""
        rooms = {room: _b64url_encode(key) for room, key in sorted(self._keys.items())}
        doc = {"format": KEYRING_FORMAT, "version": KEY_FILE_VERSION, "rooms": rooms}
        _write_private(Path(path), _dump(doc), overwrite=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, missing_ok: bool = False) -> Keyring:
        """Read a keyring file; with ``missing_ok`` a missing file is an empty keyring."""
        where = Path(path)
        try:
            doc = _load_document(where, KEYRING_FORMAT, {"rooms"})
        except KeyFileNotFound:
            if missing_ok:
                return cls()
            raise
        return cls(_parse_rooms(doc["rooms"], where))


def _parse_rooms(rooms: object, where: Path) -> dict[str, bytes]:
    if not isinstance(rooms, dict):
        raise MalformedKeyFile("'rooms' must be an object", path=where)
    keys: dict[str, bytes] = {}
    for room_id in rooms:
        if parse_room_id(room_id) is None:
            raise MalformedKeyFile(f"not a room id: {room_id!r}", path=where)
        keys[room_id] = _field_b64url(rooms, room_id, ROOM_KEY_BYTES, where)
    return keys


# --- File handling --------------------------------------------------------------------


def _write_private(path: Path, data: bytes, *, overwrite: bool) -> None:
    if not overwrite:
        try:
            # O_EXCL also refuses to follow a symlink planted at ``path``.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise KeyFileExists(f"{path} already exists", path=path) from None
        _write_fd(fd, data)
        return
    # The temporary name is unpredictable and O_EXCL, so nobody can pre-create it.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    _write_fd(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_fd(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read_private(path: Path) -> bytes:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise KeyFileNotFound(f"{path} does not exist", path=path) from None
    except IsADirectoryError:
        raise MalformedKeyFile(f"{path} is a directory", path=path) from None
    except OSError as exc:
        raise IdentityError(f"cannot read {path}: {exc.strerror}", path=path,
                            code="key_file_unreadable") from None
    with f:
        # fstat the open file, not the path: the file checked is the file read.
        mode = os.fstat(f.fileno()).st_mode
        _check_mode(path, mode)
        data = f.read(_MAX_KEY_FILE_BYTES + 1)
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise MalformedKeyFile(f"{path} is too large to be a key file", path=path)
    return data


def _check_mode(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise MalformedKeyFile(f"{path} is not a regular file", path=path)
    perms = stat.S_IMODE(mode)
    if os.name == "posix" and perms & 0o077:
        raise InsecureKeyFile(
            f"{path} has mode {perms:04o}; others may read it. Run: chmod 600 {path}",
            path=path, mode=perms)


def _load_document(path: Path, fmt: str, fields: set[str]) -> dict[str, Any]:
    """The JSON object in ``path`` after checking its format, version and field names."""
    try:
        doc = json.loads(_read_private(path), object_pairs_hook=_unique_fields)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MalformedKeyFile(f"{path} is not JSON", path=path) from None
    except _DuplicateField as dup:
        raise MalformedKeyFile(f"{path}: field {dup.args[0]!r} appears twice", path=path) from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise MalformedKeyFile(f"{path} is not a {fmt} file", path=path)
    version = doc.get("version")
    if type(version) is not int or version != KEY_FILE_VERSION:
        raise MalformedKeyFile(f"{path} has unsupported version {version!r}", path=path,
                               code="unsupported_key_file_version")
    expected = fields | {"format", "version"}
    if set(doc) != expected:
        odd = sorted(set(doc) ^ expected)
        raise MalformedKeyFile(f"{path}: missing or unknown fields {odd}", path=path)
    return doc


class _DuplicateField(Exception):
    pass


def _unique_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of duplicate names; for a key file that would be an ambiguity.
    doc: dict[str, Any] = {}
    for name, value in pairs:
        if name in doc:
            raise _DuplicateField(name)
        doc[name] = value
    return doc


def _field_b64url(doc: Mapping[str, object], name: str, size: int, path: Path) -> bytes:
    value = doc[name]
    raw = _b64url_decode(value) if isinstance(value, str) else None
    if raw is None or len(raw) != size:
        raise MalformedKeyFile(
            f"{path}: {name!r} must be {size} bytes of unpadded base64url", path=path)
    return raw


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64url_decode(text: str) -> bytes | None:
    """Strict: None unless ``text`` is the canonical unpadded base64url of some bytes."""
    if not _B64URL_RE.fullmatch(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return None
    return raw if _b64url_encode(raw) == text else None


def _dump(doc: Mapping[str, object]) -> bytes:
    return (json.dumps(doc, indent=2) + "\n").encode("ascii")
