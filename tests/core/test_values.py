"""Identifiers, values and errors: the strict keyid codec, room ids, the one stream
config (R8), and typed errors with machine-readable codes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roomkeeper.core import (
    ROOM_ID_ENTROPY_BYTES,
    BackendUnavailable,
    BadRequest,
    Conflict,
    Forbidden,
    KeyId,
    Mode,
    NotFound,
    PayloadTooLarge,
    RevisionConflict,
    Room,
    RoomkeeperError,
    StreamLimits,
    StreamSpec,
    Unauthorized,
    decode_keyid,
    encode_keyid,
    new_room_id,
    parse_keyid,
    parse_room_id,
    stream_config_for_room,
    stream_name_for_room,
    subject_for_room,
)

# RFC 9421 Appendix B.1.4's key, as API.md's test vectors name it.
VECTOR_PUBLIC_KEY = bytes.fromhex(
    "26b40b8f93fff3d897112f7ebc582b232dbd72517d082fe83cfb30ddce43d1bb"
)
VECTOR_KEYID = KeyId("JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs")


# --- room ids ---------------------------------------------------------------------------


@given(st.binary(min_size=ROOM_ID_ENTROPY_BYTES, max_size=ROOM_ID_ENTROPY_BYTES))
def test_room_ids_are_26_safe_characters_and_parse_back(entropy: bytes) -> None:
    room_id = new_room_id(entropy)
    assert len(room_id) == 26
    assert set(room_id) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert parse_room_id(room_id) == room_id


def test_distinct_entropy_gives_distinct_room_ids() -> None:
    assert new_room_id(b"\x00" * 16) != new_room_id(b"\x00" * 15 + b"\x01")


@pytest.mark.parametrize("size", [0, 15, 17, 32])
def test_room_ids_need_exactly_16_random_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="16"):
        new_room_id(b"\x01" * size)


@pytest.mark.parametrize("text", [
    "", "a" * 25, "a" * 27, "A" * 26, "a" * 25 + "-", "a" * 25 + "\n", "a" * 25 + ".",
    "\uff41" * 26, "a" * 25 + "é",
])
def test_text_that_cannot_be_a_room_id(text: str) -> None:
    assert parse_room_id(text) is None


def test_parse_room_id_accepts_any_lowercase_alphanumeric_26() -> None:
    # Ids are generated from [a-z2-7], but 0, 1, 8, 9 are as safe in subjects.
    assert parse_room_id("0" * 13 + "9" * 13) == "0" * 13 + "9" * 13


# --- keyids -----------------------------------------------------------------------------


def test_the_api_test_vector_keyid() -> None:
    assert encode_keyid(VECTOR_PUBLIC_KEY) == VECTOR_KEYID
    assert decode_keyid(VECTOR_KEYID) == VECTOR_PUBLIC_KEY
    assert parse_keyid(VECTOR_KEYID) == VECTOR_KEYID


@given(st.binary(min_size=32, max_size=32))
def test_keyids_round_trip(key: bytes) -> None:
    keyid = encode_keyid(key)
    assert len(keyid) == 43
    assert decode_keyid(keyid) == key


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_only_32_byte_keys_encode(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_keyid(b"\x00" * size)


STANDARD = base64.b64encode(VECTOR_PUBLIC_KEY).decode().rstrip("=")


@pytest.mark.parametrize(("keyid", "why"), [
    (VECTOR_KEYID + "=", "43 characters"),
    (VECTOR_KEYID[:-1], "43 characters"),
    (VECTOR_KEYID + "A", "43 characters"),
    ("", "43 characters"),
    (STANDARD, "43 characters"),  # "+" and "/" are not base64url
    (VECTOR_KEYID[:-1] + "!", "43 characters"),
    (VECTOR_KEYID[:-1] + "é", "43 characters"),
    # The last character carries two unused bits; "s" (44) and "t" (45) decode alike.
    (VECTOR_KEYID[:-1] + "t", "canonical"),
    (VECTOR_KEYID[:-1] + "v", "canonical"),
])
def test_keyids_decode_strictly(keyid: str, why: str) -> None:
    assert STANDARD != VECTOR_KEYID
    with pytest.raises(ValueError, match=why):
        decode_keyid(keyid)
    with pytest.raises(BadRequest, match=r"^member: ") as info:
        parse_keyid(keyid, field="member")
    assert info.value.code == "invalid_keyid"


@pytest.mark.parametrize("value", [None, 7, b"JrQL", [VECTOR_KEYID], True])
def test_parse_keyid_refuses_non_strings(value: object) -> None:
    with pytest.raises(BadRequest, match="keyid must be a string") as info:
        parse_keyid(value)
    assert info.value.code == "invalid_keyid"


# --- rooms and the stream config (R8) ---------------------------------------------------

ROOM_ID = new_room_id(bytes(range(16)))


def test_room_subject_and_membership() -> None:
    member = encode_keyid(b"\x02" * 32)
    room = Room(id=ROOM_ID, name="g", mode=Mode.MATRIX, owner=VECTOR_KEYID,
                members=(VECTOR_KEYID, member), created_at="2026-12-04T15:00:00Z")
    assert room.subject == f"rooms.{ROOM_ID}" == subject_for_room(ROOM_ID)
    assert room.is_member(member)
    assert not room.is_member(encode_keyid(b"\x03" * 32))


def test_the_default_stream_config_matches_the_api() -> None:
    assert stream_config_for_room(ROOM_ID) == StreamSpec(
        name=f"ROOM_{ROOM_ID}",
        subjects=(f"rooms.{ROOM_ID}",),
        replicas=1,
        storage="file",
        retention="limits",
        discard="old",
        allow_direct=True,
        duplicate_window_seconds=120.0,
        limits=StreamLimits(max_age_seconds=None, max_msgs=None),
    )
    assert stream_name_for_room(ROOM_ID) == f"ROOM_{ROOM_ID}"


def test_the_stream_config_takes_replicas_and_limits() -> None:
    limits = StreamLimits(max_age_seconds=86400.0, max_msgs=1_000_000)
    spec = stream_config_for_room(ROOM_ID, replicas=3, limits=limits)
    assert (spec.replicas, spec.limits) == (3, limits)


@pytest.mark.parametrize("replicas", [0, -1])
def test_the_stream_config_needs_a_replica(replicas: int) -> None:
    with pytest.raises(ValueError, match="replicas"):
        stream_config_for_room(ROOM_ID, replicas=replicas)


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "code", "status"), [
    (RoomkeeperError, "error", 500),
    (BadRequest, "bad_request", 400),
    (Unauthorized, "unauthorized", 401),
    (Forbidden, "forbidden", 403),
    (NotFound, "not_found", 404),
    (Conflict, "conflict", 409),
    (RevisionConflict, "revision_conflict", 409),
    (PayloadTooLarge, "payload_too_large", 413),
    (BackendUnavailable, "backend_unavailable", 503),
])
def test_errors_carry_a_code_and_a_status(cls: type[RoomkeeperError], code: str,
                                          status: int) -> None:
    error = cls("what happened")
    assert (error.code, error.status, error.message, str(error)) == (
        code, status, "what happened", "what happened")
    assert error.to_json() == {"error": code, "message": "what happened"}


def test_a_specific_code_overrides_the_class_code_for_that_error_only() -> None:
    error = NotFound("no such room", code="room_not_found")
    assert error.to_json() == {"error": "room_not_found", "message": "no such room"}
    assert NotFound("x").code == "not_found"


def test_backend_unavailable_has_a_default_message_and_retry_after() -> None:
    error = BackendUnavailable()
    assert (error.message, error.retry_after, error.status) == ("a backend did not answer", 1, 503)
    later = BackendUnavailable("kv down", code="kv_unavailable", retry_after=5)
    assert (later.code, later.retry_after) == ("kv_unavailable", 5)
