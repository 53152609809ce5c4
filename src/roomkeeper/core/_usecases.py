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
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._effects import Effect
from ._history import Page, PageRequest
from ._ids import KeyId, RoomId
from ._model import Mode, Room, StreamLimits

__all__ = [
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


def parse_create_room(body: object) -> CreateRoomRequest:
    """From a decoded JSON body. BadRequest with a specific code for a non-object, an
    unknown field, a wrong type, an empty or over-long name, an unknown mode, an invalid
    keyid."""
    raise NotImplementedError


def parse_member_body(body: object) -> KeyId:
    """``{"member": keyid}`` from a decoded JSON body, strictly."""
    raise NotImplementedError


def room_to_json(room: Room, wiring: Wiring) -> dict[str, object]:
    """The API's room object; ``persisted`` is mode == matrix and JetStream wired in."""
    raise NotImplementedError


def create_room(
    req: CreateRoomRequest, caller: KeyId, room_id: RoomId, now: float, wiring: Wiring
) -> Machine[Room]:
    raise NotImplementedError


def get_room(room_id: str, caller: KeyId) -> Machine[Room]:
    raise NotImplementedError


def list_rooms(caller: KeyId) -> Machine[tuple[Room, ...]]:
    raise NotImplementedError


def add_member(room_id: str, caller: KeyId, member: KeyId) -> Machine[Room]:
    raise NotImplementedError


def remove_member(room_id: str, caller: KeyId, member: str) -> Machine[Room]:
    raise NotImplementedError


def delete_room(room_id: str, caller: KeyId, wiring: Wiring) -> Machine[None]:
    raise NotImplementedError


def read_history(
    room_id: str, caller: KeyId, page: PageRequest, wiring: Wiring
) -> Machine[Page]:
    raise NotImplementedError


def publish(room_id: str, caller: KeyId, data: bytes, wiring: Wiring) -> Machine[int | None]:
    """Members only. Persisted rooms get a JetStream publish and return its sequence;
    others a core publish and return None."""
    raise NotImplementedError
