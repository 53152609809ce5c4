"""Use-case machines: each is a generator that yields Effects, receives their results
through ``send`` (or their errors through ``throw``) and returns its answer.

The rules they enforce (from DESIGN.md), cited by number in the code:

R1. Ensure before write: EnsureStream strictly before PutRoom; never PutRoom after a
    failed ensure.
R2. Works without JetStream: no stream effects when wiring.jetstream is False.
R4. Checks in order: the room exists (404), then the caller is a member (403).
R5. The page: default 200, clamped to 1000, oldest to newest.
R7. Lazy backfill: history for a matrix room whose stream is missing ensures it first.
R10. Deletes don't shrink pages.
R11. Bad input gets a clear error: a typed BadRequest whose code names the problem and
    whose message names the field, and nothing stored is touched.

A machine ends by returning (StopIteration) or raising; a port's error thrown in at a
yield propagates unless the machine names it (RevisionConflict, stream_not_found).
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._effects import (
    DeleteRoom,
    DeleteStream,
    Effect,
    EnsureStream,
    ListRooms,
    LoadRoom,
    Publish,
    PutRoom,
    StreamInfo,
)
from ._errors import BadRequest, Conflict, Forbidden, NotFound, RevisionConflict
from ._history import EMPTY_PAGE, HistorySlicer, Page, PageRequest
from ._ids import KeyId, RoomId, parse_keyid, parse_room_id
from ._model import (
    Mode,
    Room,
    StreamLimits,
    VersionedRoom,
    stream_config_for_room,
    stream_name_for_room,
)

__all__ = [
    "MAX_CAS_ATTEMPTS",
    "MAX_MEMBERS",
    "MAX_NAME_LENGTH",
    "CreateRoomRequest",
    "Machine",
    "Wiring",
    "add_member",
    "create_room",
    "delete_room",
    "get_room",
    "list_rooms",
    "parse_create_room",
    "parse_member_body",
    "publish",
    "read_history",
    "remove_member",
    "room_to_json",
]

T = TypeVar("T")
#: A use case: yields effects, is sent their results, returns T.
Machine = Generator[Effect, Any, T]

MAX_NAME_LENGTH = 200
#: Members listed in one create request (the caller comes on top).
MAX_MEMBERS = 1000
#: Compare-and-set attempts before a membership change gives up with 409.
MAX_CAS_ATTEMPTS = 10

_CREATE_FIELDS = frozenset({"name", "mode", "members"})
_MEMBER_FIELDS = frozenset({"member"})
# Cc: C0, DEL and C1 controls. Cs: lone surrogates, which json.loads lets through but
# which cannot be encoded as UTF-8 when the room is stored (a 500 otherwise, R11).
_BAD_NAME_CATEGORIES = frozenset({"Cc", "Cs"})


@dataclass(frozen=True, slots=True)
class Wiring:
    """How the deployment is wired; the machines branch on it, the drivers never do."""

    jetstream: bool
    replicas: int = 1
    limits: StreamLimits = field(default_factory=StreamLimits)


@dataclass(frozen=True, slots=True)
class CreateRoomRequest:
    name: str
    mode: Mode = Mode.MATRIX
    members: tuple[KeyId, ...] = ()


# --- parsing request bodies (R11) -------------------------------------------------------


def parse_create_room(body: object) -> CreateRoomRequest:
    """From a decoded JSON body. BadRequest with a specific code for a non-object, an
    unknown field, a wrong type, an empty or over-long name, an unknown mode, an invalid
    keyid."""
    fields = _object(body, _CREATE_FIELDS)
    return CreateRoomRequest(
        name=_parse_name(fields),
        mode=_parse_mode(fields.get("mode", Mode.MATRIX.value)),
        members=_parse_members(fields.get("members", [])),
    )


def parse_member_body(body: object) -> KeyId:
    """``{"member": keyid}`` from a decoded JSON body, strictly."""
    fields = _object(body, _MEMBER_FIELDS)
    if "member" not in fields:
        raise BadRequest("member is required", code="invalid_keyid")
    return parse_keyid(fields["member"], field="member")


def _object(body: object, allowed: frozenset[str]) -> dict[str, object]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_body")
    for key in body:
        if key not in allowed:
            shown = str(key)[:64]
            raise BadRequest(f"unknown field {shown!r}", code="unknown_field")
    return body


def _parse_name(fields: dict[str, object]) -> str:
    if "name" not in fields:
        raise BadRequest("name is required", code="invalid_name")
    name = fields["name"]
    if not isinstance(name, str):
        raise BadRequest("name must be a string", code="invalid_type")
    if not name.strip():
        raise BadRequest("name must not be empty or only whitespace", code="invalid_name")
    if len(name) > MAX_NAME_LENGTH:
        raise BadRequest(f"name is longer than {MAX_NAME_LENGTH} characters",
                         code="invalid_name")
    if any(unicodedata.category(ch) in _BAD_NAME_CATEGORIES for ch in name):
        raise BadRequest("name must not contain control characters", code="invalid_name")
    return name


def _parse_mode(mode: object) -> Mode:
    if not isinstance(mode, str):
        raise BadRequest("mode must be a string", code="invalid_type")
    if mode not in {m.value for m in Mode}:
        raise BadRequest('mode must be "matrix" or "ephemeral"', code="invalid_mode")
    return Mode(mode)


def _parse_members(members: object) -> tuple[KeyId, ...]:
    if not isinstance(members, list):
        raise BadRequest("members must be a list of keyids", code="invalid_type")
    if len(members) > MAX_MEMBERS:
        raise BadRequest(f"members holds more than {MAX_MEMBERS} keyids",
                         code="too_many_members")
    return tuple(parse_keyid(m, field=f"members[{i}]") for i, m in enumerate(members))


def room_to_json(room: Room, wiring: Wiring) -> dict[str, object]:
    """The API's room object; ``persisted`` is mode == matrix and JetStream wired in."""
    return {
        "id": room.id,
        "name": room.name,
        "mode": room.mode.value,
        "owner": room.owner,
        "members": list(room.members),
        "created_at": room.created_at,
        "subject": room.subject,
        "persisted": _persisted(room, wiring),
    }


def _persisted(room: Room, wiring: Wiring) -> bool:
    # R2: without JetStream no room has a stream, whatever its mode.
    return room.mode is Mode.MATRIX and wiring.jetstream


def _rfc3339(now: float) -> str:
    moment = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_effect(room_id: RoomId, wiring: Wiring) -> EnsureStream:
    # R8: the one stream config, from the one core function.
    return EnsureStream(stream_config_for_room(room_id, wiring.replicas, wiring.limits))


# --- loading with the R4 checks ---------------------------------------------------------


def _load_for_member(room_id: str, caller: KeyId) -> Machine[VersionedRoom]:
    """R4: the room exists (404), then the caller is a member (403)."""
    parsed = parse_room_id(room_id)
    if parsed is None:
        # An id that cannot be a room id names no room: 404 without asking the store.
        raise _no_such_room()
    versioned: VersionedRoom | None = yield LoadRoom(parsed)
    if versioned is None:
        raise _no_such_room()
    if not versioned.room.is_member(caller):
        raise Forbidden("the caller is not a member of this room", code="not_a_member")
    return versioned


def _no_such_room() -> NotFound:
    return NotFound("no such room", code="room_not_found")


def _require_owner(room: Room, caller: KeyId) -> None:
    if caller != room.owner:
        raise Forbidden("only the room's owner may do this", code="not_owner")


# --- the machines -----------------------------------------------------------------------


def create_room(
    req: CreateRoomRequest, caller: KeyId, room_id: RoomId, now: float, wiring: Wiring
) -> Machine[Room]:
    room = Room(
        id=room_id, name=req.name, mode=req.mode, owner=caller,
        members=tuple(dict.fromkeys((caller, *req.members))),  # owner first, no repeats
        created_at=_rfc3339(now),
    )
    if len(room.members) > MAX_MEMBERS:
        raise BadRequest(f"a room holds at most {MAX_MEMBERS} members, the owner included",
                         code="too_many_members")
    if _persisted(room, wiring):
        # R1: the stream first. If the ensure fails its error propagates from this yield
        # and the PutRoom below is never reached: no orphan room record.
        yield _spec_effect(room_id, wiring)
    # R2: ephemeral rooms and deployments without JetStream go straight to the record.
    yield PutRoom(room, expected_revision=None)
    return room


def get_room(room_id: str, caller: KeyId) -> Machine[Room]:
    versioned = yield from _load_for_member(room_id, caller)
    return versioned.room


def list_rooms(caller: KeyId) -> Machine[tuple[Room, ...]]:
    rooms: tuple[Room, ...] = yield ListRooms(caller)
    # The membership filter repeats the store's promise so that no store can leak a room.
    mine = (room for room in rooms if room.is_member(caller))
    return tuple(sorted(mine, key=lambda room: (room.created_at, room.id)))


def add_member(room_id: str, caller: KeyId, member: KeyId) -> Machine[Room]:
    def change(room: Room) -> Room:
        _require_owner(room, caller)
        if room.is_member(member):
            return room  # idempotent: no write
        # The cap keeps a room record far below the KV value limit.
        if len(room.members) >= MAX_MEMBERS:
            raise Conflict(f"the room already has {MAX_MEMBERS} members", code="room_full")
        return _with_members(room, (*room.members, member))

    return (yield from _update_members(room_id, caller, change))


def remove_member(room_id: str, caller: KeyId, member: str) -> Machine[Room]:
    def change(room: Room) -> Room:
        # 403 before 400: a caller who may not remove anyone learns nothing about the
        # keyid it sent.
        if caller not in (room.owner, member):
            raise Forbidden("only the owner or the member themselves may do this",
                            code="not_owner")
        keyid = parse_keyid(member, field="member")
        if keyid == room.owner:
            raise Conflict("the owner cannot be removed", code="owner_cannot_be_removed")
        if not room.is_member(keyid):
            return room  # idempotent: no write
        return _with_members(room, tuple(m for m in room.members if m != keyid))

    return (yield from _update_members(room_id, caller, change))


def _with_members(room: Room, members: tuple[KeyId, ...]) -> Room:
    return Room(id=room.id, name=room.name, mode=room.mode, owner=room.owner,
                members=members, created_at=room.created_at)


def _update_members(
    room_id: str, caller: KeyId, change: Callable[[Room], Room]
) -> Machine[Room]:
    """Compare-and-set: load, decide, write with the loaded revision; on a lost race
    reload and decide again, so the R4 checks and the owner check see the newest room."""
    for _attempt in range(MAX_CAS_ATTEMPTS):
        versioned = yield from _load_for_member(room_id, caller)
        updated = change(versioned.room)
        if updated == versioned.room:
            return updated
        try:
            yield PutRoom(updated, expected_revision=versioned.revision)
        except RevisionConflict:
            continue
        return updated
    raise Conflict("the room kept changing; try again", code="revision_conflict")


def delete_room(room_id: str, caller: KeyId, wiring: Wiring) -> Machine[None]:
    versioned = yield from _load_for_member(room_id, caller)
    room = versioned.room
    _require_owner(room, caller)
    # The record first: once it is gone nobody can use the room, and a failure in the
    # stream step leaves only a harmless stream that a later ensure would adopt.
    yield DeleteRoom(room.id)
    if _persisted(room, wiring):
        yield DeleteStream(stream_name_for_room(room.id))


def read_history(
    room_id: str, caller: KeyId, page: PageRequest, wiring: Wiring
) -> Machine[Page]:
    versioned = yield from _load_for_member(room_id, caller)  # R4
    room = versioned.room
    if not _persisted(room, wiring):
        return EMPTY_PAGE  # R2: no stream, no history
    name = stream_name_for_room(room.id)
    state = yield StreamInfo(name)
    if state is None:
        # R7: a room from before roomkeeper, or a lost stream: capture from now on.
        yield _spec_effect(room.id, wiring)
        return EMPTY_PAGE
    slicer = HistorySlicer(name, state, page)  # R5, R10
    while True:
        step = slicer.next_step()
        if isinstance(step, Page):
            return step
        slicer.receive((yield step))


def publish(room_id: str, caller: KeyId, data: bytes, wiring: Wiring) -> Machine[int | None]:
    """Members only. Persisted rooms get a JetStream publish and return its sequence;
    others a core publish and return None."""
    versioned = yield from _load_for_member(room_id, caller)  # R4
    room = versioned.room
    if not _persisted(room, wiring):
        yield Publish(room.subject, data, persisted=False)
        return None
    try:
        seq: int = yield Publish(room.subject, data, persisted=True)
    except NotFound as exc:
        if exc.code != "stream_not_found":
            raise
        # R7: no stream captures the subject yet; ensure it, then publish once more.
        yield _spec_effect(room.id, wiring)
        seq = yield Publish(room.subject, data, persisted=True)
    return seq
