"""The RoomStore contract: KV semantics, with revisions as compare-and-set tokens."""

from __future__ import annotations

import dataclasses

import pytest

from roomkeeper.core import RevisionConflict, VersionedRoom
from roomkeeper.ports import RoomStore

from .helpers import new_keyid, new_room


async def test_a_missing_room_is_none(room_store: RoomStore) -> None:
    assert await room_store.get(new_room(new_keyid()).id) is None


async def test_create_then_get(room_store: RoomStore) -> None:
    room = new_room(new_keyid(), new_keyid())
    revision = await room_store.put(room, None)
    assert revision >= 1
    assert await room_store.get(room.id) == VersionedRoom(room, revision)


async def test_creating_an_existing_room_conflicts(room_store: RoomStore) -> None:
    room = new_room(new_keyid())
    revision = await room_store.put(room, None)
    with pytest.raises(RevisionConflict):
        await room_store.put(dataclasses.replace(room, name="usurper"), None)
    assert await room_store.get(room.id) == VersionedRoom(room, revision)


async def test_update_with_the_current_revision(room_store: RoomStore) -> None:
    room = new_room(new_keyid())
    first = await room_store.put(room, None)
    renamed = dataclasses.replace(room, name="renamed")
    second = await room_store.put(renamed, first)
    assert second > first
    assert await room_store.get(room.id) == VersionedRoom(renamed, second)


async def test_update_with_a_stale_revision_conflicts(room_store: RoomStore) -> None:
    room = new_room(new_keyid())
    first = await room_store.put(room, None)
    second = await room_store.put(dataclasses.replace(room, name="second"), first)
    with pytest.raises(RevisionConflict):
        await room_store.put(dataclasses.replace(room, name="lost race"), first)
    stored = await room_store.get(room.id)
    assert stored is not None
    assert (stored.room.name, stored.revision) == ("second", second)


async def test_update_of_a_missing_room_conflicts(room_store: RoomStore) -> None:
    room = new_room(new_keyid())
    with pytest.raises(RevisionConflict):
        await room_store.put(room, 1)
    assert await room_store.get(room.id) is None


async def test_revisions_increase_across_rooms(room_store: RoomStore) -> None:
    # One counter per bucket, as in KV: a later write to any key gets a higher revision.
    owner = new_keyid()
    a, b = new_room(owner), new_room(owner)
    rev_a = await room_store.put(a, None)
    rev_b = await room_store.put(b, None)
    rev_a2 = await room_store.put(dataclasses.replace(a, name="again"), rev_a)
    assert rev_a < rev_b < rev_a2


async def test_list_by_member_finds_exactly_the_members_rooms(room_store: RoomStore) -> None:
    alice, bob, carol = new_keyid(), new_keyid(), new_keyid()
    owned = new_room(alice)
    shared = new_room(bob, alice)
    elsewhere = new_room(bob, carol)
    for room in (owned, shared, elsewhere):
        await room_store.put(room, None)
    assert set(await room_store.list_by_member(alice)) == {owned, shared}
    assert set(await room_store.list_by_member(carol)) == {elsewhere}
    assert await room_store.list_by_member(new_keyid()) == ()


async def test_list_by_member_sees_membership_changes(room_store: RoomStore) -> None:
    alice, bob = new_keyid(), new_keyid()
    room = new_room(alice)
    revision = await room_store.put(room, None)
    await room_store.put(dataclasses.replace(room, members=(alice, bob)), revision)
    assert [r.id for r in await room_store.list_by_member(bob)] == [room.id]


async def test_delete_then_create_again(room_store: RoomStore) -> None:
    owner = new_keyid()
    room = new_room(owner)
    first = await room_store.put(room, None)
    await room_store.delete(room.id)
    assert await room_store.get(room.id) is None
    assert await room_store.list_by_member(owner) == ()
    again = await room_store.put(room, None)
    assert again > first
    assert await room_store.get(room.id) == VersionedRoom(room, again)


async def test_deleting_a_missing_room_is_not_an_error(room_store: RoomStore) -> None:
    room = new_room(new_keyid())
    await room_store.delete(room.id)
    assert await room_store.get(room.id) is None
