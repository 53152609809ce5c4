"""MemoryRoomStore and MemoryNonceStore: the KV-backed ports, in memory."""

from __future__ import annotations

import heapq
from collections.abc import Callable

from trio.lowlevel import checkpoint

from roomkeeper.core import KeyId, RevisionConflict, Room, RoomId, VersionedRoom

__all__ = ["MemoryNonceStore", "MemoryRoomStore"]


class MemoryRoomStore:
    """Revisions work like a NATS KV bucket: one counter for the whole bucket, bumped
    by every write to any key, deletes included (KV writes a delete marker)."""

    def __init__(self) -> None:
        self._rooms: dict[RoomId, VersionedRoom] = {}
        self._revision = 0

    async def get(self, room_id: RoomId) -> VersionedRoom | None:
        await checkpoint()
        return self._rooms.get(room_id)

    async def put(self, room: Room, expected_revision: int | None) -> int:
        await checkpoint()
        current = self._rooms.get(room.id)
        stored_revision = None if current is None else current.revision
        if stored_revision != expected_revision:
            raise RevisionConflict(
                f"room {room.id} is at revision {stored_revision}, not {expected_revision}"
            )
        self._revision += 1
        self._rooms[room.id] = VersionedRoom(room, self._revision)
        return self._revision

    async def delete(self, room_id: RoomId) -> None:
        await checkpoint()
        self._revision += 1
        self._rooms.pop(room_id, None)

    async def list_by_member(self, keyid: KeyId) -> tuple[Room, ...]:
        """Sorted by room id, so the answer does not depend on write order."""
        await checkpoint()
        rooms = (v.room for _, v in sorted(self._rooms.items()))
        return tuple(room for room in rooms if room.is_member(keyid))


class MemoryNonceStore:
    """Remembers each (keyid, nonce) until it expires on the injected clock, and
    forgets it then: memory is bounded by the nonces still inside their window."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expiry: dict[tuple[KeyId, str], float] = {}
        self._by_expiry: list[tuple[float, KeyId, str]] = []

    async def add(self, keyid: KeyId, nonce: str, expires_at: float) -> bool:
        await checkpoint()
        self._forget_expired(self._clock())
        key = (keyid, nonce)
        if key in self._expiry:
            return False
        self._expiry[key] = expires_at
        heapq.heappush(self._by_expiry, (expires_at, keyid, nonce))
        return True

    def __len__(self) -> int:
        return len(self._expiry)

    def _forget_expired(self, now: float) -> None:
        while self._by_expiry and self._by_expiry[0][0] <= now:
            _, keyid, nonce = heapq.heappop(self._by_expiry)
            del self._expiry[(keyid, nonce)]
