"""Values: rooms, stream specs and stream state, and the one stream-config function (R8)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._ids import KeyId, RoomId

__all__ = [
    "DUPLICATE_WINDOW_SECONDS",
    "Mode",
    "Room",
    "StoredMessage",
    "StreamLimits",
    "StreamSpec",
    "StreamState",
    "VersionedRoom",
    "stream_config_for_room",
    "stream_name_for_room",
    "subject_for_room",
]

#: A publish carrying a Nats-Msg-Id seen within this window is dropped as a duplicate.
DUPLICATE_WINDOW_SECONDS = 120.0


class Mode(enum.Enum):
    #: Persisted: the room has a JetStream stream and a history.
    MATRIX = "matrix"
    #: Core NATS only: no stream, no history.
    EPHEMERAL = "ephemeral"


@dataclass(frozen=True, slots=True)
class Room:
    id: RoomId
    name: str
    mode: Mode
    owner: KeyId
    #: Always includes the owner; kept in insertion order, without duplicates.
    members: tuple[KeyId, ...]
    #: RFC 3339 UTC, e.g. "2026-12-04T15:00:00Z".
    created_at: str

    @property
    def subject(self) -> str:
        return subject_for_room(self.id)

    def is_member(self, keyid: KeyId) -> bool:
        return keyid in self.members


@dataclass(frozen=True, slots=True)
class VersionedRoom:
    """A room as stored, with the revision that a compare-and-set write must name."""

    room: Room
    revision: int


@dataclass(frozen=True, slots=True)
class StreamLimits:
    #: None means unlimited; 0 is read as None, as nats-server reads it.
    max_age_seconds: float | None = None
    max_msgs: int | None = None

    def __post_init__(self) -> None:
        if (self.max_age_seconds or 0) < 0 or (self.max_msgs or 0) < 0:
            raise ValueError("stream limits are positive, or None for unlimited")
        object.__setattr__(self, "max_age_seconds", self.max_age_seconds or None)
        object.__setattr__(self, "max_msgs", self.max_msgs or None)


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """The desired configuration of a room's stream. Adapters translate it; they never
    invent fields of their own."""

    name: str
    subjects: tuple[str, ...]
    replicas: int = 1
    storage: str = "file"
    retention: str = "limits"
    discard: str = "old"
    allow_direct: bool = True
    duplicate_window_seconds: float = DUPLICATE_WINDOW_SECONDS
    limits: StreamLimits = field(default_factory=StreamLimits)

    def __post_init__(self) -> None:
        # nats-server refuses a duplicate window longer than max_age; shortening it here
        # keeps every adapter's translation a plain copy.
        max_age = self.limits.max_age_seconds
        if max_age is not None and self.duplicate_window_seconds > max_age:
            object.__setattr__(self, "duplicate_window_seconds", max_age)


@dataclass(frozen=True, slots=True)
class StreamState:
    """What stream info reports. When the stream is empty, messages == 0 and
    first_seq == last_seq + 1 (JetStream's convention)."""

    first_seq: int
    last_seq: int
    messages: int
    #: Interior deletions (deleted sequences between first_seq and last_seq).
    deleted: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    seq: int
    data: bytes


def subject_for_room(room_id: RoomId) -> str:
    return f"rooms.{room_id}"


def stream_name_for_room(room_id: RoomId) -> str:
    return f"ROOM_{room_id}"


def stream_config_for_room(
    room_id: RoomId, replicas: int = 1, limits: StreamLimits | None = None
) -> StreamSpec:
    """R8: the one source of truth for a room's stream. The server and the client SDK
    both call this; there is no second copy."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    return StreamSpec(
        name=stream_name_for_room(room_id),
        subjects=(subject_for_room(room_id),),
        replicas=replicas,
        limits=limits if limits is not None else StreamLimits(),
    )
