"""R11: request bodies are parsed strictly, and every bad input is a BadRequest whose code
names the problem and whose message names the field."""

from __future__ import annotations

import pytest

from roomkeeper.core import (
    BadRequest,
    CreateRoomRequest,
    Mode,
    Room,
    Wiring,
    parse_create_room,
    parse_member_body,
    room_to_json,
)

from .perform import keyid, room_id

ALICE, BOB = keyid(1), keyid(2)
#: All "_": its standard-alphabet spelling uses "/" instead.
URLSAFE = keyid(255)
# A keyid whose last character carries non-zero unused bits: it decodes to ALICE's key
# but is not its canonical spelling.
ALICE_ALIAS = ALICE[:-1] + chr(ord(ALICE[-1]) + 1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"name": "general"}, CreateRoomRequest(name="general")),
        ({"name": "x" * 200}, CreateRoomRequest(name="x" * 200)),
        ({"name": " padded "}, CreateRoomRequest(name=" padded ")),
        ({"name": "café ☕"}, CreateRoomRequest(name="café ☕")),
        ({"name": "e", "mode": "ephemeral"}, CreateRoomRequest(name="e", mode=Mode.EPHEMERAL)),
        ({"name": "m", "mode": "matrix", "members": []}, CreateRoomRequest(name="m")),
        ({"name": "m", "members": [BOB, ALICE]},
         CreateRoomRequest(name="m", members=(BOB, ALICE))),
        ({"name": "m", "members": [BOB] * 1000},
         CreateRoomRequest(name="m", members=(BOB,) * 1000)),
    ],
)
def test_parse_create_room_accepts(body: object, expected: CreateRoomRequest) -> None:
    assert parse_create_room(body) == expected


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (None, "invalid_body", "object"),
        ([], "invalid_body", "object"),
        ("general", "invalid_body", "object"),
        (7, "invalid_body", "object"),
        ({"name": "g", "owner": ALICE}, "unknown_field", "owner"),
        ({"Name": "g"}, "unknown_field", "Name"),
        ({}, "invalid_name", "name"),
        ({"mode": "matrix"}, "invalid_name", "name"),
        ({"name": None}, "invalid_type", "name"),
        ({"name": 5}, "invalid_type", "name"),
        ({"name": True}, "invalid_type", "name"),
        ({"name": ["g"]}, "invalid_type", "name"),
        ({"name": ""}, "invalid_name", "name"),
        ({"name": "   "}, "invalid_name", "name"),
        ({"name": "\u3000\t"}, "invalid_name", "name"),
        ({"name": "x" * 201}, "invalid_name", "name"),
        ({"name": "a\nb"}, "invalid_name", "name"),
        ({"name": "a\x00b"}, "invalid_name", "name"),
        ({"name": "a\x7fb"}, "invalid_name", "name"),
        ({"name": "a\x85b"}, "invalid_name", "name"),
        ({"name": "a\ud800b"}, "invalid_name", "name"),
        ({"name": "g", "mode": "persisted"}, "invalid_mode", "mode"),
        ({"name": "g", "mode": "MATRIX"}, "invalid_mode", "mode"),
        ({"name": "g", "mode": ""}, "invalid_mode", "mode"),
        ({"name": "g", "mode": None}, "invalid_type", "mode"),
        ({"name": "g", "mode": True}, "invalid_type", "mode"),
        ({"name": "g", "mode": 1}, "invalid_type", "mode"),
        ({"name": "g", "members": None}, "invalid_type", "members"),
        ({"name": "g", "members": True}, "invalid_type", "members"),
        ({"name": "g", "members": BOB}, "invalid_type", "members"),
        ({"name": "g", "members": {BOB: 1}}, "invalid_type", "members"),
        ({"name": "g", "members": [BOB, "nope"]}, "invalid_keyid", "members[1]"),
        ({"name": "g", "members": [True]}, "invalid_keyid", "members[0]"),
        ({"name": "g", "members": [None]}, "invalid_keyid", "members[0]"),
        ({"name": "g", "members": [ALICE + "="]}, "invalid_keyid", "members[0]"),
        ({"name": "g", "members": [ALICE_ALIAS]}, "invalid_keyid", "members[0]"),
        ({"name": "g", "members": [BOB] * 1001}, "too_many_members", "members"),
    ],
)
def test_parse_create_room_rejects(body: object, code: str, field: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_create_room(body)
    assert info.value.code == code
    assert info.value.status == 400
    assert field in info.value.message


def test_unknown_field_message_is_bounded() -> None:
    with pytest.raises(BadRequest, match="unknown field") as info:
        parse_create_room({"name": "g", "k" * 10_000: 1})
    assert len(info.value.message) < 100


def test_parse_member_body_accepts_a_keyid() -> None:
    assert parse_member_body({"member": BOB}) == BOB


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (None, "invalid_body"),
        ([BOB], "invalid_body"),
        (BOB, "invalid_body"),
        ({}, "invalid_keyid"),
        ({"member": BOB, "role": "admin"}, "unknown_field"),
        ({"members": [BOB]}, "unknown_field"),
        ({"member": None}, "invalid_keyid"),
        ({"member": True}, "invalid_keyid"),
        ({"member": [BOB]}, "invalid_keyid"),
        ({"member": ""}, "invalid_keyid"),
        ({"member": BOB[:-1]}, "invalid_keyid"),
        ({"member": ALICE_ALIAS}, "invalid_keyid"),
        ({"member": URLSAFE.replace("_", "/")}, "invalid_keyid"),
    ],
)
def test_parse_member_body_rejects(body: object, code: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_member_body(body)
    assert info.value.code == code


def test_alias_and_slash_fixtures_are_really_different_spellings() -> None:
    # The fixtures above only mean something if they differ from the canonical keyid.
    assert ALICE_ALIAS != ALICE
    assert "_" in URLSAFE


ROOM = Room(id=room_id(1), name="general", mode=Mode.MATRIX, owner=ALICE,
            members=(ALICE, BOB), created_at="2026-12-04T15:00:00Z")


@pytest.mark.parametrize(
    ("mode", "jetstream", "persisted"),
    [(Mode.MATRIX, True, True), (Mode.MATRIX, False, False),
     (Mode.EPHEMERAL, True, False), (Mode.EPHEMERAL, False, False)],
)
def test_room_to_json(mode: Mode, jetstream: bool, persisted: bool) -> None:
    room = Room(id=ROOM.id, name=ROOM.name, mode=mode, owner=ALICE, members=ROOM.members,
                created_at=ROOM.created_at)
    assert room_to_json(room, Wiring(jetstream=jetstream)) == {
        "id": ROOM.id,
        "name": "general",
        "mode": mode.value,
        "owner": ALICE,
        "members": [ALICE, BOB],
        "created_at": "2026-12-04T15:00:00Z",
        "subject": f"rooms.{ROOM.id}",
        "persisted": persisted,
    }
