"""Identifiers: room ids and the strict keyid codec.

Room ids are made from random bytes that the caller passes in (the core owns no
randomness). Keyids are the unpadded base64url encoding of a 32-byte ed25519
public key, decoded strictly: a keyid must re-encode to exactly itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import NewType

from ._errors import BadRequest

__all__ = [
    "ROOM_ID_ENTROPY_BYTES",
    "KeyId",
    "RoomId",
    "decode_keyid",
    "encode_keyid",
    "new_room_id",
    "parse_keyid",
    "parse_room_id",
]

RoomId = NewType("RoomId", str)
KeyId = NewType("KeyId", str)

#: 16 bytes = 128 bits; unpadded lowercase base32 of 16 bytes is exactly 26
#: characters of [a-z2-7], a subset of [a-z0-9] that is safe in subjects and stream names.
ROOM_ID_ENTROPY_BYTES = 16

_ROOM_ID_RE = re.compile(r"[a-z0-9]{26}")
_KEYID_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def new_room_id(entropy: bytes) -> RoomId:
    if len(entropy) != ROOM_ID_ENTROPY_BYTES:
        raise ValueError(f"a room id needs exactly {ROOM_ID_ENTROPY_BYTES} random bytes")
    return RoomId(base64.b32encode(entropy).decode("ascii").rstrip("=").lower())


def parse_room_id(text: str) -> RoomId | None:
    """The room id, or None when ``text`` cannot be a room id (so no such room exists)."""
    return RoomId(text) if _ROOM_ID_RE.fullmatch(text) else None


def encode_keyid(public_key: bytes) -> KeyId:
    if len(public_key) != 32:
        raise ValueError("an ed25519 public key is 32 bytes")
    return KeyId(base64.urlsafe_b64encode(public_key).decode("ascii").rstrip("="))


def decode_keyid(keyid: str) -> bytes:
    """The 32 public-key bytes of ``keyid``; ValueError unless it is canonical.

    Rejects padding, the standard alphabet, any length but 43 characters, and
    trailing-bit aliases (a final character whose unused low bits are not zero).
    """
    if not _KEYID_RE.fullmatch(keyid):
        raise ValueError("a keyid is 43 characters of unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(keyid + "=")
    except binascii.Error as exc:  # pragma: no cover - the regex admits only valid input
        raise ValueError("a keyid is unpadded base64url") from exc
    if encode_keyid(raw) != keyid:
        raise ValueError("a keyid must be the canonical encoding of its key")
    return raw


def parse_keyid(keyid: object, *, field: str = "keyid") -> KeyId:
    """``keyid`` as a KeyId, or BadRequest(invalid_keyid) for input from a request body."""
    if not isinstance(keyid, str):
        raise BadRequest(f"{field} must be a string keyid", code="invalid_keyid")
    try:
        decode_keyid(keyid)
    except ValueError as exc:
        raise BadRequest(f"{field}: {exc}", code="invalid_keyid") from None
    return KeyId(keyid)
