"""roomkeeper.testing: the in-process deployment, its helpers and the pytest plugin."""
# ruff: noqa: F811 - pytest fixtures are parameters named like the imported fixtures

from __future__ import annotations

import pytest

from roomkeeper.client import (
    Identity,
    RoomKeyMissing,
    ServiceUnavailableError,
)
from roomkeeper.core import Mode, subject_for_room
from roomkeeper.testing import InProcessDeployment, roomkeeper_deployment
from roomkeeper.testing.plugin import (  # noqa: F401
    roomkeeper,
    roomkeeper_jetstream,
    roomkeeper_users,
)


async def test_the_context_manager_gives_a_client_per_user() -> None:
    async with roomkeeper_deployment(["ann", "ben"]) as rk:
        assert sorted(rk.clients) == ["ann", "ben"]
        assert rk.clients["ann"].keyid == rk.identities["ann"].keyid == rk.keyid("ann")
        assert rk.keyid("ann") != rk.keyid("ben")
        room = await rk.clients["ben"].create_room("general")
        assert room.owner == rk.keyid("ben")
        client = rk.clients["ann"]
    with pytest.raises(RuntimeError):  # the clients are closed with the deployment
        await client.list_rooms()


async def test_the_fixture_defaults_to_three_users(roomkeeper: InProcessDeployment) -> None:
    assert list(roomkeeper.users) == ["alice", "bob", "carol"]


@pytest.mark.parametrize("roomkeeper_users", [["mallory"]])
async def test_the_users_fixture_can_be_overridden(roomkeeper: InProcessDeployment) -> None:
    assert list(roomkeeper.users) == ["mallory"]


@pytest.mark.parametrize("roomkeeper_jetstream", [False])
async def test_without_jetstream_rooms_work_and_history_is_empty(
    roomkeeper: InProcessDeployment,
) -> None:
    room = await roomkeeper.create_room("alice", members=["bob"])
    assert room.persisted is False
    await roomkeeper.session("alice", room.id).send("not kept")
    assert (await roomkeeper.session("bob", room.id).history()).messages == ()


async def test_create_room_shares_the_key_with_members_only(
    roomkeeper: InProcessDeployment,
) -> None:
    room = await roomkeeper.create_room("alice", "general", members=["bob"])
    assert room.members == (roomkeeper.keyid("alice"), roomkeeper.keyid("bob"))
    keys = roomkeeper.keyrings
    assert keys["alice"].get(room.id) == keys["bob"].get(room.id)
    with pytest.raises(RoomKeyMissing):
        roomkeeper.session("carol", room.id)
    roomkeeper.share_room_key(room.id, "bob", "carol")
    assert keys["carol"].get(room.id) == keys["alice"].get(room.id)


async def test_add_user_makes_a_working_client(roomkeeper: InProcessDeployment) -> None:
    identity = Identity.generate()
    dave = roomkeeper.add_user("dave", identity)
    assert dave.keyid == identity.keyid
    room = await roomkeeper.create_room("dave", "dave's room", members=["alice"])
    assert room.owner == identity.keyid
    with pytest.raises(ValueError, match="already"):
        roomkeeper.add_user("dave")


async def test_fail_next_ensure_fails_once_and_leaves_no_room(
    roomkeeper: InProcessDeployment,
) -> None:
    alice = roomkeeper.clients["alice"]
    roomkeeper.fail_next_ensure()
    with pytest.raises(ServiceUnavailableError):
        await alice.create_room("general")
    assert await alice.list_rooms() == []
    roomkeeper.calls.clear()
    await alice.create_room("general")
    # R1, as a client developer can observe it: the stream first, then the record.
    writes = [op for op in roomkeeper.calls.ops if op in {"streams.ensure", "rooms.put"}]
    assert writes == ["streams.ensure", "rooms.put"]


async def test_jetstream_unavailable_until_healed(roomkeeper: InProcessDeployment) -> None:
    alice = roomkeeper.clients["alice"]
    ephemeral = await alice.create_room("lobby", mode=Mode.EPHEMERAL)
    roomkeeper.jetstream_unavailable()
    with pytest.raises(ServiceUnavailableError):
        await alice.create_room("general")
    # Ephemeral rooms need no stream (R2), so they still work.
    assert (await alice.get_room(ephemeral.id)).persisted is False
    roomkeeper.heal()
    assert (await alice.create_room("general")).persisted is True


async def test_publish_raw_reaches_history_unverified_frames_are_reported(
    roomkeeper: InProcessDeployment,
) -> None:
    room = await roomkeeper.create_room("alice", members=["bob"])
    await roomkeeper.publish_raw(subject_for_room(room.id), b"\x01" + b"\x00" * 200)
    history = await roomkeeper.session("bob", room.id).history()
    assert history.messages == ()
    assert history.reasons == {"invalid_sender_key": 1}


async def test_each_test_gets_a_fresh_deployment(roomkeeper: InProcessDeployment) -> None:
    # Nothing from the tests above is visible here.
    assert await roomkeeper.clients["alice"].list_rooms() == []
