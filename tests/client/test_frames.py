"""End-to-end frames: layout, round trips, every rejection path, room key sharing, chat."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import nacl.bindings
import nacl.secret
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomkeeper.client.frames import (
    FRAME_OVERHEAD,
    MIN_FRAME_BYTES,
    BadFrameMac,
    BadFrameSignature,
    ChatMessage,
    FrameError,
    FrameTruncated,
    InvalidRecipientKey,
    InvalidSenderKey,
    MalformedChatMessage,
    RoomKeyUnsealFailed,
    UnknownFrameVersion,
    new_room_key,
    open_frame,
    open_room_key,
    seal_frame,
    seal_room_key,
)
from roomkeeper.client.keys import Identity
from roomkeeper.core import RoomkeeperError, encode_keyid, new_room_id

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(32, 64)))
ROOM = new_room_id(b"\x01" * 16)
OTHER_ROOM = new_room_id(b"\x02" * 16)
KEY = b"k" * 32
OTHER_KEY = b"K" * 32
NONCE = bytes(range(24))
#: The ed25519 identity point (y = 1): small order, so never a real public key.
SMALL_ORDER_KEY = b"\x01" + bytes(31)

# Field boundaries of a version-1 frame, as the module docstring lays them out.
SENDER = slice(1, 33)
NONCE_FIELD = slice(33, 57)


def seal(plaintext: bytes = b"hello", *, room_id: str = ROOM, nonce: bytes = NONCE) -> bytes:
    return seal_frame(ALICE, KEY, plaintext, room_id=room_id, nonce=nonce)


def flip(frame: bytes, bit: int) -> bytes:
    out = bytearray(frame)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def expected_error_for_flip(frame: bytes, bit: int) -> tuple[type[FrameError], ...]:
    """Which rejection a flipped bit must cause, by the field it lands in."""
    index = bit // 8
    if index == 0:
        return (UnknownFrameVersion,)
    if SENDER.start <= index < SENDER.stop:
        # The altered key may stop being a valid point; if it still is one, it did not sign.
        return (InvalidSenderKey, BadFrameSignature)
    return (BadFrameSignature,)


# --- Layout and round trips ---------------------------------------------------------------


def test_the_frame_has_the_documented_layout() -> None:
    frame = seal(b"hello")
    assert len(frame) == len(b"hello") + FRAME_OVERHEAD == 5 + 137
    assert frame[0] == 1
    assert frame[SENDER] == ALICE.public_key
    assert frame[NONCE_FIELD] == NONCE
    ciphertext, signature = frame[57:-64], frame[-64:]
    assert nacl.secret.SecretBox(KEY).decrypt(ciphertext, NONCE) == b"hello"
    signed = b"roomkeeper-frame-v1\x00" + bytes([26]) + ROOM.encode() + frame[:-64]
    nacl.signing.VerifyKey(ALICE.public_key).verify(signed, signature)


@pytest.mark.parametrize("plaintext", [b"", b"x", b"hello world", bytes(range(256)) * 4096],
                         ids=["empty", "one byte", "short", "1 MiB"])
def test_round_trip(plaintext: bytes) -> None:
    opened = open_frame(seal_frame(ALICE, KEY, plaintext, room_id=ROOM), KEY, room_id=ROOM)
    assert opened.plaintext == plaintext
    assert opened.sender_keyid == ALICE.keyid
    assert len(opened.nonce) == 24


def test_a_given_nonce_makes_sealing_deterministic_and_the_default_is_random() -> None:
    assert seal() == seal()
    random_one = seal_frame(ALICE, KEY, b"hello", room_id=ROOM)
    random_two = seal_frame(ALICE, KEY, b"hello", room_id=ROOM)
    assert random_one[NONCE_FIELD] != random_two[NONCE_FIELD]
    assert open_frame(random_one, KEY, room_id=ROOM).nonce == random_one[NONCE_FIELD]


@pytest.mark.parametrize(
    ("room_id", "nonce"), [(ROOM, bytes(23)), ("general", NONCE), (ROOM.upper(), NONCE)],
    ids=["short nonce", "not a room id", "uppercase room id"])
def test_seal_rejects_bad_arguments(room_id: str, nonce: bytes) -> None:
    with pytest.raises(ValueError):
        seal(room_id=room_id, nonce=nonce)


def test_room_keys_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        seal_frame(ALICE, bytes(16), b"", room_id=ROOM)
    with pytest.raises(ValueError):
        open_frame(seal(), bytes(16), room_id=ROOM)


# --- Rejections ---------------------------------------------------------------------------


def test_error_classes_are_distinct_typed_errors() -> None:
    classes: list[type[FrameError]] = [
        FrameTruncated, UnknownFrameVersion, InvalidSenderKey, BadFrameSignature, BadFrameMac]
    assert all(issubclass(c, FrameError) and issubclass(c, RoomkeeperError) for c in classes)
    assert len({c.code for c in classes}) == len(classes)


@pytest.mark.parametrize("plaintext", [b"", b"0123456789"])
def test_every_prefix_shorter_than_the_minimum_is_truncated(plaintext: bytes) -> None:
    frame = seal(plaintext)
    for length in range(MIN_FRAME_BYTES):
        with pytest.raises(FrameTruncated):
            open_frame(frame[:length], KEY, room_id=ROOM)


def test_a_longer_prefix_fails_its_signature() -> None:
    # Past the minimum length a cut cannot be told from a forgery: the last 64 bytes move.
    frame = seal(b"0123456789")
    for length in range(MIN_FRAME_BYTES, len(frame)):
        with pytest.raises(BadFrameSignature):
            open_frame(frame[:length], KEY, room_id=ROOM)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version(version: int) -> None:
    frame = bytes([version]) + seal()[1:]
    with pytest.raises(UnknownFrameVersion) as info:
        open_frame(frame, KEY, room_id=ROOM)
    assert info.value.version == version and info.value.code == "unknown_frame_version"


def test_the_version_is_checked_before_the_length() -> None:
    with pytest.raises(UnknownFrameVersion):
        open_frame(b"\x02", KEY, room_id=ROOM)


@pytest.mark.parametrize("field", [slice(1, 33), slice(33, 57), slice(57, -64),
                                   slice(-64, None)],
                         ids=["sender key", "nonce", "ciphertext", "signature"])
def test_every_flipped_bit_is_rejected(field: slice) -> None:
    frame = seal(b"some secret")
    start, stop, _ = field.indices(len(frame))
    for bit in range(start * 8, stop * 8):
        with pytest.raises(expected_error_for_flip(frame, bit)):
            open_frame(flip(frame, bit), KEY, room_id=ROOM)


def test_a_small_order_sender_key_is_rejected_before_the_signature() -> None:
    frame = seal()
    forged = frame[:1] + SMALL_ORDER_KEY + frame[33:]
    with pytest.raises(InvalidSenderKey) as info:
        open_frame(forged, KEY, room_id=ROOM)
    assert info.value.code == "invalid_sender_key"


def test_a_wrong_room_key_with_a_valid_signature_is_a_bad_mac() -> None:
    with pytest.raises(BadFrameMac) as info:
        open_frame(seal(), OTHER_KEY, room_id=ROOM)
    assert info.value.code == "bad_frame_mac"


def test_the_signature_is_checked_before_the_mac() -> None:
    # Wrong key AND a broken signature: the signature failure wins.
    with pytest.raises(BadFrameSignature):
        open_frame(flip(seal(), 8 * 70), OTHER_KEY, room_id=ROOM)


def test_a_frame_replayed_into_another_room_fails_its_signature() -> None:
    with pytest.raises(BadFrameSignature) as info:
        open_frame(seal(), KEY, room_id=OTHER_ROOM)
    assert info.value.code == "bad_frame_signature"


def test_a_member_re_signing_a_frame_for_another_room_still_needs_the_key() -> None:
    # Bob has the old room's key but re-signs Alice's ciphertext for a room keyed otherwise.
    frame = seal()
    body = bytes([1]) + BOB.public_key + frame[33:-64]
    signed = b"roomkeeper-frame-v1\x00" + bytes([26]) + OTHER_ROOM.encode() + body
    with pytest.raises(BadFrameMac):
        open_frame(body + BOB.sign(signed), OTHER_KEY, room_id=OTHER_ROOM)


# --- Properties ---------------------------------------------------------------------------

seeds = st.binary(min_size=32, max_size=32)
room_ids = st.binary(min_size=16, max_size=16).map(new_room_id)
keys = st.binary(min_size=32, max_size=32)


@given(seed=seeds, key=keys, room=room_ids, plaintext=st.binary(max_size=2048))
def test_property_round_trip(seed: bytes, key: bytes, room: str, plaintext: bytes) -> None:
    sender = Identity.from_seed(seed)
    opened = open_frame(seal_frame(sender, key, plaintext, room_id=room), key, room_id=room)
    assert (opened.sender_keyid, opened.plaintext) == (sender.keyid, plaintext)


@settings(max_examples=300)
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_property_any_flipped_bit_is_rejected(plaintext: bytes, data: st.DataObject) -> None:
    frame = seal_frame(ALICE, KEY, plaintext, room_id=ROOM)
    bit = data.draw(st.integers(min_value=0, max_value=len(frame) * 8 - 1), label="bit")
    with pytest.raises(expected_error_for_flip(frame, bit)):
        open_frame(flip(frame, bit), KEY, room_id=ROOM)


@given(junk=st.binary(max_size=300))
def test_property_arbitrary_bytes_only_raise_frame_errors(junk: bytes) -> None:
    with pytest.raises(FrameError):
        open_frame(junk, KEY, room_id=ROOM)


# --- Room key sharing ---------------------------------------------------------------------


def test_new_room_keys_are_random_32_byte_keys() -> None:
    one, two = new_room_key(), new_room_key()
    assert len(one) == len(two) == 32 and one != two


def test_sealed_room_key_round_trip() -> None:
    room_key = new_room_key()
    sealed = seal_room_key(room_key, BOB.keyid)
    assert len(sealed) == 32 + 48  # ephemeral X25519 key + MAC
    assert sealed != seal_room_key(room_key, BOB.keyid)  # a fresh ephemeral key each time
    assert open_room_key(sealed, BOB) == room_key


def test_sealing_room_keys_is_in_the_sdks_top_level_api() -> None:
    # README's "client SDK" section imports them from roomkeeper.client.
    import roomkeeper.client as sdk

    assert (sdk.seal_room_key, sdk.open_room_key) == (seal_room_key, open_room_key)
    assert {"seal_room_key", "open_room_key"} <= set(sdk.__all__)


def test_a_shared_room_key_opens_the_sharers_frames() -> None:
    room_key = new_room_key()
    bobs_key = open_room_key(seal_room_key(room_key, BOB.keyid), BOB)
    frame = seal_frame(ALICE, room_key, b"welcome", room_id=ROOM)
    assert open_frame(frame, bobs_key, room_id=ROOM).plaintext == b"welcome"


@pytest.mark.parametrize(
    "sealed", [seal_room_key(KEY, ALICE.keyid), flip(seal_room_key(KEY, BOB.keyid), 300),
               seal_room_key(KEY, BOB.keyid)[:-1], b"", b"\x00" * 80,
               nacl.bindings.crypto_box_seal(
                   b"short", nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(
                       BOB.public_key))],
    ids=["sealed to someone else", "tampered", "truncated", "empty", "zeros",
         "not a room key"])
def test_open_room_key_failures(sealed: bytes) -> None:
    with pytest.raises(RoomKeyUnsealFailed) as info:
        open_room_key(sealed, BOB)
    assert info.value.code == "room_key_unseal_failed"


@pytest.mark.parametrize(
    "keyid", ["not-a-keyid", BOB.keyid + "=", encode_keyid(SMALL_ORDER_KEY)],
    ids=["garbage", "padded", "small order"])
def test_seal_room_key_rejects_bad_recipients(keyid: str) -> None:
    with pytest.raises(InvalidRecipientKey) as info:
        seal_room_key(KEY, keyid)
    assert info.value.code == "invalid_recipient_key"


def test_seal_room_key_rejects_a_wrong_length_key() -> None:
    with pytest.raises(ValueError):
        seal_room_key(bytes(31), BOB.keyid)


# --- Chat messages ------------------------------------------------------------------------

SENT = datetime(2026, 12, 4, 15, 0, 0, 123000, tzinfo=UTC)


def test_chat_message_encoding_is_compact_json() -> None:
    encoded = ChatMessage("héllo", SENT).encode()
    assert encoded == '{"type":"chat","text":"héllo","sent_at":1796396400123}'.encode()
    assert ChatMessage.decode(encoded) == ChatMessage("héllo", SENT)


def test_chat_message_inside_a_frame() -> None:
    frame = seal(ChatMessage("hi all", SENT).encode())
    message = ChatMessage.decode(open_frame(frame, KEY, room_id=ROOM).plaintext)
    assert message.text == "hi all" and message.sent_at == SENT


def test_sent_at_keeps_milliseconds_and_the_instant() -> None:
    cet = timezone(timedelta(hours=1))
    local = datetime(2026, 12, 4, 16, 0, 0, 123456, tzinfo=cet)
    decoded = ChatMessage.decode(ChatMessage("x", local).encode())
    assert decoded.sent_at == SENT  # same instant, microseconds cut to milliseconds
    assert decoded.sent_at.tzinfo is UTC


def test_pre_epoch_times_round_trip() -> None:
    early = datetime(1969, 7, 20, 20, 17, 40, 5000, tzinfo=UTC)
    assert ChatMessage.decode(ChatMessage("eagle", early).encode()).sent_at == early


def test_chat_message_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError):
        ChatMessage("x", datetime(2026, 1, 1))  # naive on purpose


def test_unknown_chat_fields_are_ignored() -> None:
    encoded = json.dumps({"type": "chat", "text": "x", "sent_at": 0, "reply_to": 3}).encode()
    assert ChatMessage.decode(encoded) == ChatMessage("x", datetime(1970, 1, 1, tzinfo=UTC))


MALFORMED_CHAT = {
    "not utf-8": b"\xff",
    "not json": b"hello",
    "not an object": b'["chat"]',
    "no type": b'{"text":"x","sent_at":0}',
    "other type": b'{"type":"file","text":"x","sent_at":0}',
    "text not a string": b'{"type":"chat","text":1,"sent_at":0}',
    "lone surrogate": b'{"type":"chat","text":"\\ud800","sent_at":0}',
    "sent_at missing": b'{"type":"chat","text":"x"}',
    "sent_at float": b'{"type":"chat","text":"x","sent_at":1.5}',
    "sent_at bool": b'{"type":"chat","text":"x","sent_at":true}',
    "sent_at string": b'{"type":"chat","text":"x","sent_at":"2026-12-04"}',
    "sent_at out of range": b'{"type":"chat","text":"x","sent_at":1' + b"0" * 20 + b"}",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("plaintext", MALFORMED_CHAT.values(), ids=MALFORMED_CHAT)
def test_malformed_chat_messages(plaintext: bytes) -> None:
    with pytest.raises(MalformedChatMessage) as info:
        ChatMessage.decode(plaintext)
    assert info.value.code == "malformed_chat_message"


@given(text=st.text(), millis=st.integers(min_value=-(10**13), max_value=10**14))
def test_property_chat_round_trip(text: str, millis: int) -> None:
    message = ChatMessage(text, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis))
    assert ChatMessage.decode(message.encode()) == message
