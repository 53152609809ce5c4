"""End-to-end frames: encrypt, sign, verify, decrypt. The server never parses them (R9).

**Frame layout, version 1** (all lengths in bytes)::

    offset  size  field
    0       1     version, = 1
    1       32    sender ed25519 public key
    33      24    nonce
    57      n+16  ciphertext: XSalsa20-Poly1305 (NaCl SecretBox) of the n-byte plaintext
                  under the 32-byte room key; the first 16 bytes are the Poly1305 MAC
    73+n    64    ed25519 signature by the sender

A frame is therefore ``FRAME_OVERHEAD`` (137) bytes longer than its plaintext.

**What is signed.** The signature covers
``b"roomkeeper-frame-v1\\x00" || len(room_id) (1 byte) || room_id (ASCII) || frame[:-64]``.
The room id is bound in but not transmitted, so a frame replayed into another room fails
its signature check; the prefix keeps these signatures apart from any other use of the key.

**Order of checks when opening**, each failure a distinct ``FrameError``:

1. an empty frame is ``FrameTruncated``;
2. a version other than 1 is ``UnknownFrameVersion`` (checked before the length, because a
   later version may have another layout);
3. fewer than 137 bytes is ``FrameTruncated``;
4. a sender key that is not a valid ed25519 point of the main subgroup (small order,
   non-canonical, off the curve) is ``InvalidSenderKey``;
5. a signature that does not verify is ``BadFrameSignature`` -- checked before decrypting,
   so nothing unauthenticated reaches the cipher;
6. a MAC that does not verify is ``BadFrameMac``: the frame is genuinely from the sender
   but sealed under another room key.

**Room key sharing.** A room key travels to a member as a libsodium sealed box
(``crypto_box_seal``) addressed to the X25519 form of their ed25519 key. A sealed box is
anonymous: it is confidential but says nothing about who sealed it, so anyone could seal
*some* key to a member. Deliver sealed room keys over a channel that authenticates the
sharer.

**Chat messages.** ``ChatMessage`` is one plaintext structure a terminal client can show;
frames themselves carry opaque bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.secret
import nacl.signing
import nacl.utils

from roomkeeper.core import KeyId, RoomkeeperError, decode_keyid, encode_keyid, parse_room_id

from .keys import ROOM_KEY_BYTES, Identity

__all__ = [
    "FRAME_OVERHEAD",
    "FRAME_VERSION",
    "MIN_FRAME_BYTES",
    "NONCE_BYTES",
    "BadFrameMac",
    "BadFrameSignature",
    "ChatMessage",
    "FrameError",
    "FrameTruncated",
    "InvalidRecipientKey",
    "InvalidSenderKey",
    "MalformedChatMessage",
    "OpenedFrame",
    "RoomKeyError",
    "RoomKeyUnsealFailed",
    "UnknownFrameVersion",
    "new_room_key",
    "open_frame",
    "open_room_key",
    "seal_frame",
    "seal_room_key",
]

FRAME_VERSION: Final = 1
_PUBLIC_KEY_BYTES: Final = 32
NONCE_BYTES: Final = nacl.secret.SecretBox.NONCE_SIZE
_MAC_BYTES: Final = nacl.secret.SecretBox.MACBYTES
_SIGNATURE_BYTES: Final = 64
_HEADER_BYTES: Final = 1 + _PUBLIC_KEY_BYTES + NONCE_BYTES
#: Bytes a frame adds to its plaintext. Mind it against the 1 MiB HTTP/NATS payload limits.
FRAME_OVERHEAD: Final = _HEADER_BYTES + _MAC_BYTES + _SIGNATURE_BYTES
#: The shortest frame: an empty plaintext.
MIN_FRAME_BYTES: Final = FRAME_OVERHEAD
_SIGNING_CONTEXT: Final = b"roomkeeper-frame-v1\x00"


# --- Errors ---------------------------------------------------------------------------


class FrameError(RoomkeeperError):
    """A frame that cannot be opened. Branch on the subclass or on ``code``."""

    code = "bad_frame"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)


class FrameTruncated(FrameError):
    code = "frame_truncated"


class UnknownFrameVersion(FrameError):
    code = "unknown_frame_version"

    def __init__(self, version: int) -> None:
        super().__init__(f"unknown frame version {version}")
        self.version = version


class InvalidSenderKey(FrameError):
    code = "invalid_sender_key"


class BadFrameSignature(FrameError):
    code = "bad_frame_signature"


class BadFrameMac(FrameError):
    code = "bad_frame_mac"


class RoomKeyError(RoomkeeperError):
    """A room key cannot be sealed to a recipient or opened."""

    code = "room_key_error"
    status = 400


class InvalidRecipientKey(RoomKeyError):
    code = "invalid_recipient_key"


class RoomKeyUnsealFailed(RoomKeyError):
    code = "room_key_unseal_failed"


class MalformedChatMessage(RoomkeeperError):
    code = "malformed_chat_message"
    status = 400


# --- Frames ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenedFrame:
    sender_keyid: KeyId
    nonce: bytes
    plaintext: bytes


def seal_frame(identity: Identity, room_key: bytes, plaintext: bytes, *, room_id: str,
               nonce: bytes | None = None) -> bytes:
    """Encrypt ``plaintext`` under ``room_key`` and sign it as ``identity`` for ``room_id``.

    Leave ``nonce`` to the default (24 random bytes): it exists for test vectors, and
    reusing a nonce under one room key breaks the encryption.
    """
    box = _secret_box(room_key)
    nonce = nacl.utils.random(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a frame nonce is {NONCE_BYTES} bytes")
    ciphertext = box.encrypt(plaintext, nonce).ciphertext
    unsigned = bytes([FRAME_VERSION]) + identity.public_key + nonce + ciphertext
    return unsigned + identity.sign(_signed_bytes(room_id, unsigned))


def open_frame(frame: bytes, room_key: bytes, *, room_id: str) -> OpenedFrame:
    """Verify and decrypt ``frame``; raises a ``FrameError`` subclass (see module doc)."""
    box = _secret_box(room_key)
    _check_shape(frame)
    sender = frame[1:1 + _PUBLIC_KEY_BYTES]
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(sender):
        raise InvalidSenderKey("the sender key is not a valid ed25519 public key")
    unsigned, signature = frame[:-_SIGNATURE_BYTES], frame[-_SIGNATURE_BYTES:]
    _verify(sender, _signed_bytes(room_id, unsigned), signature)
    nonce = frame[1 + _PUBLIC_KEY_BYTES:_HEADER_BYTES]
    try:
        plaintext = box.decrypt(unsigned[_HEADER_BYTES:], nonce)
    except nacl.exceptions.CryptoError:
        raise BadFrameMac("the frame was not sealed under this room key") from None
    return OpenedFrame(encode_keyid(sender), nonce, plaintext)


def _check_shape(frame: bytes) -> None:
    if not frame:
        raise FrameTruncated("the frame is empty")
    if frame[0] != FRAME_VERSION:
        raise UnknownFrameVersion(frame[0])
    if len(frame) < MIN_FRAME_BYTES:
        raise FrameTruncated(
            f"a version {FRAME_VERSION} frame has at least {MIN_FRAME_BYTES} bytes, "
            f"got {len(frame)}")


def _verify(public_key: bytes, message: bytes, signature: bytes) -> None:
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        raise BadFrameSignature("the frame signature does not verify") from None


def _signed_bytes(room_id: str, unsigned: bytes) -> bytes:
    if parse_room_id(room_id) is None:
        raise ValueError(f"not a room id: {room_id!r}")
    rid = room_id.encode("ascii")
    # The length prefix keeps the encoding unambiguous should room ids ever vary in length.
    return _SIGNING_CONTEXT + bytes([len(rid)]) + rid + unsigned


def _secret_box(room_key: bytes) -> nacl.secret.SecretBox:
    if len(room_key) != ROOM_KEY_BYTES:
        raise ValueError(f"a room key is {ROOM_KEY_BYTES} bytes")
    return nacl.secret.SecretBox(room_key)


# --- Room keys ------------------------------------------------------------------------


def new_room_key() -> bytes:
    return nacl.utils.random(ROOM_KEY_BYTES)


def seal_room_key(room_key: bytes, recipient_keyid: str) -> bytes:
    """``room_key`` sealed so that only the holder of ``recipient_keyid`` can open it."""
    if len(room_key) != ROOM_KEY_BYTES:
        raise ValueError(f"a room key is {ROOM_KEY_BYTES} bytes")
    try:
        ed_public = decode_keyid(recipient_keyid)
    except ValueError as exc:
        raise InvalidRecipientKey(f"recipient: {exc}") from None
    # A small-order key would seal to a public value everyone can compute.
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(ed_public):
        raise InvalidRecipientKey("the recipient key is not a valid ed25519 public key")
    x_public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed_public)
    return nacl.bindings.crypto_box_seal(room_key, x_public)


def open_room_key(sealed: bytes, identity: Identity) -> bytes:
    """The room key in ``sealed``; ``RoomKeyUnsealFailed`` if it was not sealed to
    ``identity`` or does not hold a room key."""
    ed_secret = identity.seed + identity.public_key
    x_secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(ed_secret)
    x_public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(identity.public_key)
    try:
        room_key = nacl.bindings.crypto_box_seal_open(sealed, x_public, x_secret)
    except nacl.exceptions.CryptoError:
        raise RoomKeyUnsealFailed("the room key was not sealed to this identity") from None
    if len(room_key) != ROOM_KEY_BYTES:
        raise RoomKeyUnsealFailed(f"the sealed value is not a {ROOM_KEY_BYTES}-byte room key")
    return room_key


# --- Chat messages --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A chat text message, carried as the plaintext of a frame.

    Encoded as compact UTF-8 JSON ``{"type":"chat","text":...,"sent_at":<ms since epoch>}``.
    ``sent_at`` is a timezone-aware datetime; encoding truncates it to the millisecond. It is
    the sender's claim of the time, not a trusted timestamp. Unknown fields are ignored when
    decoding so that later clients can add some.
    """

    text: str
    sent_at: datetime

    def __post_init__(self) -> None:
        if self.sent_at.tzinfo is None:
            raise ValueError("sent_at must be timezone-aware")

    def encode(self) -> bytes:
        millis = (self.sent_at - _EPOCH) // _ONE_MS
        doc = {"type": "chat", "text": self.text, "sent_at": millis}
        # ensure_ascii=False keeps text compact; a lone surrogate fails here, not remotely.
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, plaintext: bytes) -> ChatMessage:
        doc = _chat_document(plaintext)
        text, millis = doc.get("text"), doc.get("sent_at")
        if not isinstance(text, str) or _has_surrogates(text):
            raise MalformedChatMessage("'text' must be a string")
        if type(millis) is not int:
            raise MalformedChatMessage("'sent_at' must be an integer of milliseconds")
        try:
            # Integer arithmetic: a float of milliseconds would round far-off times.
            sent_at = _EPOCH + timedelta(milliseconds=millis)
        except OverflowError:
            raise MalformedChatMessage("'sent_at' is out of range") from None
        return cls(text, sent_at)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def _chat_document(plaintext: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise MalformedChatMessage("a chat message is a UTF-8 JSON object") from None
    if not isinstance(doc, dict) or doc.get("type") != "chat":
        raise MalformedChatMessage("not a chat message")
    return doc


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
