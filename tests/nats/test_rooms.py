"""NatsRoomStore against a real nats-server: compare-and-set, deletes, listing,
malformed records, concurrent membership changes, and the bucket's configuration."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from nats.js.api import KeyValueConfig, StorageType

from roomkeeper.adapters.driver import drive
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.adapters.nats import NatsConnection
from roomkeeper.adapters.nats.rooms import (
    KEY_PREFIX,
    NatsRoomStore,
    decode_room,
    encode_room,
    ensure_bucket,
    open_room_store,
)
from roomkeeper.core import (
    BackendUnavailable,
    KeyId,
    Mode,
    RevisionConflict,
    Room,
    add_member,
    encode_keyid,
    new_room_id,
)


def _keyid() -> KeyId:
    return encode_keyid(os.urandom(32))


def _room(owner: KeyId, *others: KeyId, name: str = "general") -> Room:
    return Room(id=new_room_id(os.urandom(16)), name=name, mode=Mode.MATRIX, owner=owner,
                members=(owner, *others), created_at="2026-12-04T15:00:00Z")


@pytest.fixture
def bucket() -> str:
    return f"t_rooms_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def rooms(nats_conn: NatsConnection, bucket: str) -> NatsRoomStore:
    return await open_room_store(nats_conn, bucket=bucket)


async def _raw_put(conn: NatsConnection, bucket: str, key: str, value: bytes) -> None:
    async def put() -> None:
        kv = await conn.js.key_value(bucket)
        await kv.put(key, value)

    await conn.bridge.call(put)


# The value format (no server needed).


def test_encode_is_compact_versioned_json_and_round_trips() -> None:
    room = _room(_keyid(), _keyid(), name="caf\u00e9 \ud800")  # a lone surrogate, too
    data = encode_room(room)
    assert b" " not in data.replace(b"caf\\u00e9 ", b"")
    assert json.loads(data)["v"] == 1
    assert decode_room(data, room.id) == room


_FIXED = _room(_keyid())


def _record(**changes: Any) -> bytes:
    """_FIXED's stored value with fields changed (``...`` drops the field)."""
    record = json.loads(encode_room(_FIXED)) | changes
    return json.dumps({k: v for k, v in record.items() if v is not ...}).encode()


def test_decode_accepts_the_unchanged_record() -> None:
    assert decode_room(_record(), _FIXED.id) == _FIXED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"not json", "not JSON"),
        (b"[]", "not a room record"),
        (_record(extra=1), "not a room record"),
        (_record(name=...), "not a room record"),
        (_record(v=2), "unknown format version 2"),
        (_record(id="someotherroomid00000000000"), "holds room"),
        (_record(members="abc"), "members"),
        (_record(members=[1]), "members"),
        (_record(owner=None), "owner is not a string"),
        (_record(created_at=5), "created_at is not a string"),
        (_record(mode="shouting"), "shouting"),
    ],
)
def test_decode_rejects_malformed_values(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_room(data, _FIXED.id)


# The store.


async def test_get_of_a_missing_room_is_none(rooms: NatsRoomStore) -> None:
    assert await rooms.get(new_room_id(os.urandom(16))) is None


async def test_create_then_get_returns_the_room_and_its_revision(rooms: NatsRoomStore) -> None:
    room = _room(_keyid(), _keyid())
    revision = await rooms.put(room, None)
    stored = await rooms.get(room.id)
    assert stored is not None
    assert (stored.room, stored.revision) == (room, revision)


async def test_create_over_an_existing_room_conflicts(rooms: NatsRoomStore) -> None:
    room = _room(_keyid())
    await rooms.put(room, None)
    with pytest.raises(RevisionConflict):
        await rooms.put(dataclasses.replace(room, name="other"), None)
    stored = await rooms.get(room.id)
    assert stored is not None and stored.room.name == "general"


async def test_update_needs_the_current_revision(rooms: NatsRoomStore) -> None:
    room = _room(_keyid())
    first = await rooms.put(room, None)
    renamed = dataclasses.replace(room, name="renamed")
    second = await rooms.put(renamed, first)
    assert second > first
    for stale in (first, second + 1, 0, -1):
        with pytest.raises(RevisionConflict):
            await rooms.put(room, stale)
    stored = await rooms.get(room.id)
    assert stored is not None and (stored.room, stored.revision) == (renamed, second)


async def test_update_of_a_missing_room_conflicts(rooms: NatsRoomStore) -> None:
    with pytest.raises(RevisionConflict):
        await rooms.put(_room(_keyid()), 1)


async def test_delete_then_the_id_can_be_created_again(rooms: NatsRoomStore) -> None:
    room = _room(_keyid())
    revision = await rooms.put(room, None)
    await rooms.delete(room.id)
    assert await rooms.get(room.id) is None
    with pytest.raises(RevisionConflict):
        await rooms.put(room, revision)
    again = await rooms.put(room, None)
    assert again > revision
    stored = await rooms.get(room.id)
    assert stored is not None and stored.revision == again


async def test_deleting_a_missing_room_is_not_an_error(rooms: NatsRoomStore) -> None:
    missing = new_room_id(os.urandom(16))
    await rooms.delete(missing)
    assert await rooms.get(missing) is None


async def test_list_by_member_sees_current_membership_sorted_by_id(
    rooms: NatsRoomStore,
) -> None:
    alice, bob, carol = _keyid(), _keyid(), _keyid()
    made = [_room(alice, bob), _room(bob), _room(alice), _room(carol)]
    revisions = [await rooms.put(room, None) for room in made]
    # Changes after the first write count: carol joins one, the other is deleted.
    joined = dataclasses.replace(made[0], members=(alice, bob, carol))
    await rooms.put(joined, revisions[0])
    await rooms.delete(made[2].id)

    assert await rooms.list_by_member(alice) == (joined,)
    assert await rooms.list_by_member(bob) == tuple(sorted([joined, made[1]], key=_id))
    assert await rooms.list_by_member(carol) == tuple(sorted([joined, made[3]], key=_id))
    assert await rooms.list_by_member(_keyid()) == ()


async def test_a_keyid_in_a_room_name_does_not_make_a_member(rooms: NatsRoomStore) -> None:
    alice, bob = _keyid(), _keyid()
    await rooms.put(_room(alice, name=bob), None)
    await rooms.put(_room(alice, name=f'"{bob}"'), None)
    assert await rooms.list_by_member(bob) == ()
    assert len(await rooms.list_by_member(alice)) == 2


async def test_list_of_an_empty_bucket_is_empty(rooms: NatsRoomStore) -> None:
    assert await rooms.list_by_member(_keyid()) == ()


async def test_a_malformed_record_is_skipped_by_list_and_unreadable_by_get(
    nats_conn: NatsConnection, bucket: str, rooms: NatsRoomStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = _keyid()
    good = _room(owner)
    await rooms.put(good, None)
    broken = new_room_id(os.urandom(16))
    await _raw_put(nats_conn, bucket, KEY_PREFIX + broken,
                   b'{"v": 1, "owner": "%s", "trunc' % owner.encode())

    with caplog.at_level(logging.ERROR, logger="roomkeeper.nats.rooms"):
        assert await rooms.list_by_member(owner) == (good,)
        with pytest.raises(BackendUnavailable) as info:
            await rooms.get(broken)
    assert info.value.code == "corrupt_room_record"
    assert sum(broken in record.getMessage() for record in caplog.records) == 2


async def test_a_list_during_writes_sees_every_room_once(
    nats_conn: NatsConnection, bucket: str, rooms: NatsRoomStore
) -> None:
    """Hundreds of rooms (more than one flow-control window) while one of them keeps
    changing: the scan still ends, and returns each room exactly once."""
    owner = _keyid()
    made = [_room(owner, name=f"r{i}") for i in range(600)]

    async def create_all() -> None:
        kv = await nats_conn.js.key_value(bucket)
        await asyncio.gather(*(kv.create(KEY_PREFIX + r.id, encode_room(r)) for r in made))

    await nats_conn.bridge.call(create_all)
    busy = made[0]
    revision = (await rooms.get(busy.id)).revision  # type: ignore[union-attr]

    async def keep_renaming(cancel: trio.CancelScope) -> None:
        nonlocal revision, busy
        with cancel:
            for i in range(1000):
                busy = dataclasses.replace(busy, name=f"renamed {i}")
                revision = await rooms.put(busy, revision)

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()
        nursery.start_soon(keep_renaming, scope)
        listed = await rooms.list_by_member(owner)
        scope.cancel()

    assert sorted(r.id for r in listed) == sorted(r.id for r in made)
    assert {r.id: r for r in listed}[made[1].id] == made[1]


async def test_racing_creates_of_one_id_have_one_winner(rooms: NatsRoomStore) -> None:
    room = _room(_keyid())
    outcomes: list[str] = []

    async def create(name: str) -> None:
        try:
            await rooms.put(dataclasses.replace(room, name=name), None)
            outcomes.append(name)
        except RevisionConflict:
            outcomes.append("conflict")

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(create, f"n{i}")
    winners = [o for o in outcomes if o != "conflict"]
    stored = await rooms.get(room.id)
    assert len(winners) == 1
    assert stored is not None and stored.room.name == winners[0]


async def test_concurrent_add_member_machines_lose_no_member(rooms: NatsRoomStore) -> None:
    """Eight owners' requests at once, each through the core machine and the driver:
    every lost compare-and-set is retried on a fresh read, so all eight land."""
    owner = _keyid()
    room = _room(owner)
    await rooms.put(room, None)
    deployment = dataclasses.replace(memory_deployment(), rooms=rooms)
    newcomers = [_keyid() for _ in range(8)]

    async with trio.open_nursery() as nursery:
        for member in newcomers:
            nursery.start_soon(drive, add_member(room.id, owner, member), deployment)

    stored = await rooms.get(room.id)
    assert stored is not None
    assert stored.room.members[0] == owner
    assert set(stored.room.members[1:]) == set(newcomers)
    assert len(stored.room.members) == 9


async def test_each_method_is_one_bridge_crossing(
    nats_conn: NatsConnection, bucket: str
) -> None:
    counting = _CountingBridge(nats_conn)
    rooms = await open_room_store(
        NatsConnection(counting, nats_conn.client, nats_conn.js), bucket=bucket  # type: ignore[arg-type]
    )
    room = _room(_keyid())
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: rooms.put(room, None),
        lambda: rooms.get(room.id),
        lambda: rooms.list_by_member(room.owner),
        lambda: rooms.delete(room.id),
    ]
    for call in calls:
        before = counting.crossings
        await call()
        assert counting.crossings == before + 1


async def test_ensure_bucket_updates_an_existing_bucket_in_place(
    nats_conn: NatsConnection, bucket: str
) -> None:
    """A bucket made elsewhere with other settings is brought to ours, not rejected,
    and its keys survive; ensuring twice changes nothing."""
    other = KeyValueConfig(bucket=bucket, history=5, storage=StorageType.FILE)
    ours = KeyValueConfig(bucket=bucket, history=1, ttl=420.0, storage=StorageType.FILE)

    async def scenario() -> tuple[int, float | None, bytes | None]:
        old = await nats_conn.js.create_key_value(other)
        await old.put("room.kept", b"v")
        await ensure_bucket(nats_conn.js, ours)
        kv = await ensure_bucket(nats_conn.js, ours)
        status = await kv.status()
        return status.history, status.ttl, (await kv.get("room.kept")).value

    assert await nats_conn.bridge.call(scenario) == (1, 420.0, b"v")


def _id(room: Room) -> str:
    return room.id


class _CountingBridge:
    """Counts crossings and forwards them to the real bridge."""

    def __init__(self, conn: NatsConnection) -> None:
        self._bridge = conn.bridge
        self.crossings = 0

    async def call(self, fn: Any, *args: Any) -> Any:
        self.crossings += 1
        return await self._bridge.call(fn, *args)
