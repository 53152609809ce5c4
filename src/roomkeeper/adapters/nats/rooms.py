"""RoomStore on a JetStream KV bucket.

Layout: bucket ``roomkeeper_rooms`` (file storage, history 1, replicas equal to the
deployment's ``replicas``, so the KV is replicated like the room streams: R8). One key
per room, ``room.<id>``; the value is a compact, versioned JSON object; the room's
revision is the KV revision (the bucket stream's sequence, one counter per bucket).

Choices, and why:

- **Compare-and-set.** ``put(room, None)`` is ``kv.create`` and ``put(room, rev)`` is
  ``kv.update(last=rev)``: the server checks the subject's last sequence, so two
  instances racing on one room cannot both win; the loser gets RevisionConflict.
  ``kv.create`` also succeeds over a delete or purge marker (nats-py re-reads the marker
  and writes with its revision), so a deleted room id can be used again.
- **Deletes** are purges whose marker carries a TTL: the marker tells watchers about the
  delete, then expires, so deleted rooms leave nothing behind in the bucket.
- **Reads go to the stream leader** (no ``allow_direct``): a direct get may be answered
  by a lagging replica, and a caller that just changed a room must read its own write.
- **list_by_member scans** every key with one short-lived ordered consumer that delivers
  the last value per key (KV allows consumers; R6 is about history reads). The cost is
  O(rooms in the bucket) per call, all on the bridge loop: about 15 us per room on an
  idle 2-core machine (2000 rooms: ~27 ms), so a deployment with tens of thousands of
  rooms would want an index. A member index would make it O(rooms of the member), but
  it cannot be kept consistent with the room record without multi-key transactions,
  and a stale index either hides a room from a member or shows it to a former one.
  Correctness first.
- **Malformed values** (not JSON, wrong fields or types, an unknown version, an id that
  does not match its key) are logged as errors. ``list_by_member`` skips them (it only
  decodes values that contain the member's keyid), so one bad record cannot take every
  member's room list down; ``get`` raises
  BackendUnavailable(code="corrupt_room_record"), because the room exists and must not
  be reported missing (a 404 would invite re-creating it).

Every port method is one bridge crossing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.kv import KV_DEL, KV_MARKER_REASON, KV_OP, KV_PURGE, KeyValue

from roomkeeper.core import (
    BackendUnavailable,
    KeyId,
    Mode,
    RevisionConflict,
    Room,
    RoomId,
    VersionedRoom,
)

from .bridge import NatsConnection
from .errors import JS_STREAM_NAME_IN_USE, translate_errors, translate_kv_errors

__all__ = [
    "ROOMS_BUCKET",
    "NatsRoomStore",
    "decode_room",
    "encode_room",
    "ensure_bucket",
    "open_room_store",
]

log = logging.getLogger("roomkeeper.nats.rooms")

ROOMS_BUCKET = "roomkeeper_rooms"
KEY_PREFIX = "room."
#: The value format's version; a reader rejects versions it does not know.
FORMAT_VERSION = 1
#: How long a delete's purge marker stays (seconds): long enough for watchers.
DELETE_MARKER_TTL = 3600.0
#: A scan gives up when the server sends nothing for this long (seconds).
SCAN_IDLE_TIMEOUT = 5.0
#: Seconds the server keeps a scan's consumer after the scan unsubscribed.
SCAN_CONSUMER_LINGER = 5.0

_FIELDS = frozenset({"v", "id", "name", "mode", "owner", "members", "created_at"})


def encode_room(room: Room) -> bytes:
    """Compact JSON. ASCII-only escapes, so a name holding a lone surrogate (valid in
    a JSON request body) still encodes."""
    record = {
        "v": FORMAT_VERSION,
        "id": room.id,
        "name": room.name,
        "mode": room.mode.value,
        "owner": room.owner,
        "members": list(room.members),
        "created_at": room.created_at,
    }
    return json.dumps(record, separators=(",", ":")).encode("ascii")


def decode_room(data: bytes, room_id: str) -> Room:
    """The room stored under ``room_id``'s key; ValueError when the value is malformed."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(record, dict) or record.keys() != _FIELDS:
        raise ValueError("not a room record")
    if record["v"] != FORMAT_VERSION:
        raise ValueError(f"unknown format version {record['v']!r}")
    if record["id"] != room_id:
        raise ValueError(f"holds room {record['id']!r}")
    members = record["members"]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise ValueError("members is not a list of keyids")
    return Room(
        id=RoomId(room_id),
        name=_text(record, "name"),
        mode=Mode(_text(record, "mode")),
        owner=KeyId(_text(record, "owner")),
        members=tuple(KeyId(m) for m in members),
        created_at=_text(record, "created_at"),
    )


def _text(record: dict[str, Any], name: str) -> str:
    value = record[name]
    if not isinstance(value, str):
        raise ValueError(f"{name} is not a string")
    return value


async def ensure_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """Create-or-update a KV bucket (runs on the bridge loop). ``create_key_value`` is
    nats-py's plain add_stream: on "name in use with a different configuration" the
    settings we own (replicas, TTL, history) are updated in place, the rest of the
    server's config is kept."""
    try:
        return await js.create_key_value(config)
    except nats.js.errors.BadRequestError as exc:
        if exc.err_code != JS_STREAM_NAME_IN_USE:
            raise
    stream = f"KV_{config.bucket}"
    current = (await js.stream_info(stream)).config
    wanted = current.evolve(
        num_replicas=config.replicas,
        max_age=config.ttl or 0.0,
        max_msgs_per_subject=config.history,
        allow_msg_ttl=True,
    )
    if wanted != current:
        await js.update_stream(wanted)
    return await js.key_value(config.bucket)


def rooms_bucket_config(replicas: int, bucket: str = ROOMS_BUCKET) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=bucket, history=1, storage=StorageType.FILE, replicas=replicas,
        description="roomkeeper rooms and membership",
    )


async def open_room_store(
    conn: NatsConnection, *, replicas: int = 1, bucket: str = ROOMS_BUCKET
) -> NatsRoomStore:
    """Ensure the rooms bucket (one crossing) and return the store. Instances that
    share ``bucket`` on one NATS share their rooms."""
    # Only at startup, which reports a failure itself.
    with translate_errors(f"ensure KV bucket {bucket}", log_refusals=False):
        kv = await conn.call(ensure_bucket, conn.js, rooms_bucket_config(replicas, bucket))
    return NatsRoomStore(conn, kv, bucket)


class NatsRoomStore:
    def __init__(self, conn: NatsConnection, kv: KeyValue, bucket: str = ROOMS_BUCKET) -> None:
        self._conn = conn
        self._kv = kv
        self._bucket = bucket

    async def get(self, room_id: RoomId) -> VersionedRoom | None:
        with translate_errors(f"get room {room_id}"):
            entry = await self._conn.call(_get, self._kv, KEY_PREFIX + room_id)
        if entry is None:
            return None
        data, revision = entry
        try:
            return VersionedRoom(decode_room(data, room_id), revision)
        except ValueError as exc:
            log.error("room %s revision %d is malformed: %s", room_id, revision, exc)
            raise BackendUnavailable(
                f"the stored record of room {room_id} is unreadable",
                code="corrupt_room_record",
            ) from None

    async def put(self, room: Room, expected_revision: int | None) -> int:
        if expected_revision is not None and expected_revision < 1:
            # update(last=0) would mean "must not exist": a revision is never below 1.
            raise RevisionConflict(f"room {room.id} was never at revision {expected_revision}")
        with translate_kv_errors(f"put room {room.id}"):
            return await self._conn.call(
                _put, self._kv, KEY_PREFIX + room.id, encode_room(room), expected_revision
            )

    async def delete(self, room_id: RoomId) -> None:
        with translate_kv_errors(f"delete room {room_id}"):
            await self._conn.call(_purge, self._kv, KEY_PREFIX + room_id)

    async def list_by_member(self, keyid: KeyId) -> tuple[Room, ...]:
        """The member's rooms, sorted by room id (the order does not depend on writes)."""
        with translate_errors("list rooms"):
            values = await self._conn.call(_scan, self._conn.js, self._bucket)
        # A keyid is JSON-encoded as itself in quotes, so values without that text
        # cannot list the member: skip them undecoded.
        needle = f'"{keyid}"'.encode()
        candidates = sorted((k, v) for k, v in values.items() if needle in v)
        rooms = (_decode_or_skip(key, data) for key, data in candidates)
        return tuple(room for room in rooms if room is not None and room.is_member(keyid))


def _decode_or_skip(key: str, data: bytes) -> Room | None:
    try:
        return decode_room(data, key.removeprefix(KEY_PREFIX))
    except ValueError as exc:
        log.error("skipping malformed room record %s: %s", key, exc)
        return None


# The coroutines below run on the bridge loop, one per crossing.


async def _get(kv: KeyValue, key: str) -> tuple[bytes, int] | None:
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:  # never written, deleted or purged
        return None
    return entry.value or b"", _revision(entry.revision)


async def _put(kv: KeyValue, key: str, value: bytes, expected: int | None) -> int:
    try:
        if expected is None:
            return _revision(await kv.create(key, value))
        return _revision(await kv.update(key, value, last=expected))
    except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
        # KeyNotFoundError: create() saw a conflict, then the key vanished before it
        # could re-read it; either way another writer got there first.
        raise RevisionConflict(
            f"{key} is not at revision {expected}" if expected else f"{key} already exists"
        ) from None


async def _purge(kv: KeyValue, key: str) -> None:
    await kv.purge(key, msg_ttl=DELETE_MARKER_TTL)


async def _scan(js: JetStreamContext, bucket: str) -> dict[str, bytes]:
    """The latest value of every room key, from one ordered consumer that starts at
    the last message per key. Writes that land during the scan are delivered after the
    snapshot, so the last message per key wins. Entries go straight into a dict from
    the subscription callback: nats-py's KeyWatcher adds a queue and a timer per entry,
    which made a scan about twice as slow."""
    scan = _Scan(len(f"$KV.{bucket}."))
    sub = await js.subscribe(
        f"$KV.{bucket}.{KEY_PREFIX}>", stream=f"KV_{bucket}", cb=scan.take,
        ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        inactive_threshold=SCAN_CONSUMER_LINGER,
    )
    try:
        info = await sub.consumer_info()
        delivered = info.delivered.stream_seq if info.delivered else 0
        if info.num_pending or delivered:  # else: no room key at all
            await scan.finished(SCAN_IDLE_TIMEOUT)
    finally:
        await sub.unsubscribe()
    return scan.latest


class _Scan:
    """Collects a scan's messages; finished() returns once the server says nothing is
    pending, and times out only when the scan stops making progress."""

    def __init__(self, prefix_length: int) -> None:
        self.latest: dict[str, bytes] = {}
        self._prefix_length = prefix_length
        self._taken = 0
        self._done = asyncio.Event()

    async def take(self, msg: Msg) -> None:
        key = msg.subject[self._prefix_length:]
        if _is_marker(msg.headers):
            self.latest.pop(key, None)
        else:
            self.latest[key] = msg.data
        self._taken += 1
        if msg.metadata.num_pending == 0:
            self._done.set()

    async def finished(self, idle_timeout: float) -> None:
        while True:
            taken = self._taken
            try:
                await asyncio.wait_for(self._done.wait(), idle_timeout)
                return
            except TimeoutError:
                if self._taken == taken:
                    raise


def _is_marker(headers: dict[str, str] | None) -> bool:
    """A delete or purge marker, ours (KV-Operation) or one the server placed
    (Nats-Marker-Reason, nats-server 2.11+)."""
    if not headers:
        return False
    return headers.get(KV_OP) in (KV_DEL, KV_PURGE) or KV_MARKER_REASON in headers


def _revision(value: int | None) -> int:
    if value is None:  # nats-py types it Optional; the server always sends one
        raise BackendUnavailable("the KV answer carried no revision")
    return value
