"""The README's example for client developers, run as written. With the plugin's pytest11
entry point installed, the import of the fixtures below is unnecessary (and harmless)."""
# ruff: noqa: F811 - pytest fixtures are parameters named like the imported fixtures

import pytest

from roomkeeper.client import ServiceUnavailableError
from roomkeeper.testing.plugin import roomkeeper, roomkeeper_jetstream, roomkeeper_users  # noqa: F401


async def test_bob_reads_what_alice_sent(roomkeeper):
    room = await roomkeeper.create_room("alice", "general", members=["bob"])
    await roomkeeper.session("alice", room.id).send("hello bob")

    history = await roomkeeper.session("bob", room.id).history()

    assert [m.chat().text for m in history.messages] == ["hello bob"]
    assert history.messages[0].sender == roomkeeper.keyid("alice")


async def test_no_room_is_left_behind_when_jetstream_is_down(roomkeeper):
    roomkeeper.jetstream_unavailable()
    with pytest.raises(ServiceUnavailableError):
        await roomkeeper.clients["alice"].create_room("general")
    assert await roomkeeper.clients["alice"].list_rooms() == []
