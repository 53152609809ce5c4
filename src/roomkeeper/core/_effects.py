"""The effects that use-case machines yield. A driver performs each one through a port
and sends the result back in (or throws the port's error in).

Each effect documents the value the driver sends back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._ids import KeyId, RoomId
from ._model import Room, StreamSpec

__all__ = [
    "DeleteRoom",
    "DeleteStream",
    "Effect",
    "EnsureStream",
    "FetchBatch",
    "ListRooms",
    "LoadRoom",
    "Publish",
    "PutRoom",
    "StreamInfo",
]


@dataclass(frozen=True, slots=True)
class EnsureStream:
    """Create-or-update the stream. Result: None."""

    spec: StreamSpec


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """Result: StreamState, or None when the stream does not exist."""

    stream: str


@dataclass(frozen=True, slots=True)
class FetchBatch:
    """Result: tuple[StoredMessage, ...] holding the stored messages with
    start_seq <= seq < start_seq + count, ascending; deleted sequences are absent."""

    stream: str
    start_seq: int
    count: int


@dataclass(frozen=True, slots=True)
class LoadRoom:
    """Result: VersionedRoom, or None when no such room exists."""

    room_id: RoomId


@dataclass(frozen=True, slots=True)
class PutRoom:
    """Compare-and-set write. expected_revision None means "must not exist yet".
    Result: the new revision (int). A lost race is thrown in as RevisionConflict."""

    room: Room
    expected_revision: int | None


@dataclass(frozen=True, slots=True)
class DeleteRoom:
    """Result: None (deleting a missing room is not an error)."""

    room_id: RoomId


@dataclass(frozen=True, slots=True)
class DeleteStream:
    """Result: None (deleting a missing stream is not an error)."""

    stream: str


@dataclass(frozen=True, slots=True)
class ListRooms:
    """Result: tuple[Room, ...] of the rooms ``member`` belongs to."""

    member: KeyId


@dataclass(frozen=True, slots=True)
class Publish:
    """persisted=True: a JetStream publish with an ack; result: the stream sequence (int).
    persisted=False: a core NATS publish; result: None."""

    subject: str
    data: bytes
    persisted: bool


Effect = (
    EnsureStream | StreamInfo | FetchBatch | LoadRoom | PutRoom | DeleteRoom | DeleteStream
    | ListRooms | Publish
)
