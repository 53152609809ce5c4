"""Ports: the small interfaces the drivers perform effects through.

Each port has a real adapter (roomkeeper.adapters.nats) and an in-memory one
(roomkeeper.adapters.memory); tests/contract runs one suite per port against both.
Adapters signal an unreachable backend with core.BackendUnavailable and a lost
compare-and-set with core.RevisionConflict; they raise nothing else on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from .core import (
    KeyId,
    Room,
    RoomId,
    StoredMessage,
    StreamLimits,
    StreamSpec,
    StreamState,
    VersionedRoom,
)

__all__ = ["Bus", "Deployment", "NonceStore", "RoomStore", "StreamStore"]


class StreamStore(Protocol):
    async def ensure(self, spec: StreamSpec) -> None:
        """Create the stream, or update it to ``spec``; idempotent, and a race with
        another instance doing the same counts as success."""
        ...

    async def info(self, name: str) -> StreamState | None:
        """The stream's state, or None when it does not exist."""
        ...

    async def fetch(self, name: str, start_seq: int, count: int) -> tuple[StoredMessage, ...]:
        """Stored messages with start_seq <= seq < start_seq + count, ascending; deleted
        sequences are absent. A missing stream gives ()."""
        ...

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        """Publish into the stream that captures ``subject`` and wait for the ack.
        Returns the stream sequence; a duplicate msg_id returns the original's."""
        ...

    async def delete_message(self, name: str, seq: int) -> None: ...

    async def delete(self, name: str) -> None:
        """Delete the stream; a missing stream is not an error."""
        ...


class RoomStore(Protocol):
    async def get(self, room_id: RoomId) -> VersionedRoom | None: ...

    async def put(self, room: Room, expected_revision: int | None) -> int:
        """Compare-and-set: expected_revision None means the room must not exist yet.
        Returns the new revision; raises RevisionConflict when the stored revision
        differs."""
        ...

    async def delete(self, room_id: RoomId) -> None: ...

    async def list_by_member(self, keyid: KeyId) -> tuple[Room, ...]: ...


class NonceStore(Protocol):
    async def add(self, keyid: KeyId, nonce: str, expires_at: float) -> bool:
        """Remember (keyid, nonce) until ``expires_at`` (unix seconds). True when it was
        new, False when it is already remembered (a replay)."""
        ...


class Bus(Protocol):
    async def publish(self, subject: str, data: bytes) -> None:
        """A core NATS publish: no ack. A stream that captures the subject stores it (R3)."""
        ...

    def subscribe(self, subject: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Frames published on ``subject`` from now on, until the context exits."""
        ...


async def _always_ready() -> None:
    return None


@dataclass
class Deployment:
    """Everything the HTTP app needs, passed in (no global state).

    ``streams`` is None when no JetStream is wired in (R2). ``clock`` returns unix
    seconds and ``entropy(n)`` returns n random bytes: the core takes both as inputs.
    ``check_ready`` raises BackendUnavailable while a backend does not answer.
    ``lifespan`` opens the backends on entry and drains them on exit.
    """

    rooms: RoomStore
    nonces: NonceStore
    bus: Bus
    streams: StreamStore | None
    clock: Callable[[], float]
    entropy: Callable[[int], bytes]
    replicas: int = 1
    limits: StreamLimits = field(default_factory=StreamLimits)
    check_ready: Callable[[], Awaitable[None]] = _always_ready
    lifespan: Callable[[], AbstractAsyncContextManager[None]] | None = None
