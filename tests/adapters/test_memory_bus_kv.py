"""Memory-only behaviour of the bus and the KV stores: slow subscribers, the end of a
subscription, bounded nonce memory and deterministic listing."""

from __future__ import annotations

import pytest
import trio

from roomkeeper.adapters.memory import (
    ManualClock,
    MemoryBus,
    MemoryNonceStore,
    MemoryRoomStore,
    MemoryServer,
)
from roomkeeper.core import KeyId, Mode, Room, encode_keyid, new_room_id


def keyid(n: int) -> KeyId:
    return encode_keyid(bytes([n]) * 32)


def room(n: int, *members: KeyId) -> Room:
    return Room(new_room_id(bytes([n]) * 16), f"room {n}", Mode.MATRIX, members[0], members,
                "2026-12-04T15:00:00Z")


@pytest.fixture
def bus() -> MemoryBus:
    return MemoryBus(MemoryServer(ManualClock()), buffer=2)


async def test_a_full_subscriber_loses_new_frames_and_publishers_never_wait(
    bus: MemoryBus,
) -> None:
    async with bus.subscribe("rooms.x") as frames:
        with trio.fail_after(1):
            for n in range(5):
                await bus.publish("rooms.x", b"%d" % n)
        assert frames.dropped == 3
        assert [await anext(frames), await anext(frames)] == [b"0", b"1"]
        await bus.publish("rooms.x", b"5")
        assert await anext(frames) == b"5"


async def test_one_slow_subscriber_does_not_starve_another(bus: MemoryBus) -> None:
    async with bus.subscribe("rooms.x") as slow, bus.subscribe("rooms.x") as quick:
        for n in range(3):
            await bus.publish("rooms.x", b"%d" % n)
            assert await anext(quick) == b"%d" % n
        assert (slow.dropped, quick.dropped) == (1, 0)


async def test_leaving_the_subscription_drains_then_ends(bus: MemoryBus) -> None:
    async with bus.subscribe("rooms.x") as frames:
        await bus.publish("rooms.x", b"buffered")
    await bus.publish("rooms.x", b"after")  # nobody listens any more
    assert [frame async for frame in frames] == [b"buffered"]


async def test_a_subscriber_blocked_in_receive_sees_the_end(bus: MemoryBus) -> None:
    received: list[bytes] = []

    async def reader(task_status: trio.TaskStatus[None]) -> None:
        async with bus.subscribe("rooms.x") as sub:
            task_status.started()
            async for frame in sub:
                received.append(frame)
                return

    async with trio.open_nursery() as nursery:
        await nursery.start(reader)
        await bus.publish("rooms.x", b"wake up")
    assert received == [b"wake up"]


async def test_subscribing_to_an_invalid_subject_is_refused(bus: MemoryBus) -> None:
    with pytest.raises(ValueError, match="subscribable"):
        async with bus.subscribe("rooms.>.x"):
            pass  # pragma: no cover


async def test_nonces_are_forgotten_once_expired() -> None:
    clock = ManualClock()
    nonces = MemoryNonceStore(clock)
    for n in range(100):
        assert await nonces.add(keyid(1), f"n{n}", clock() + 60 + n)
    assert len(nonces) == 100
    clock.advance(60 + 50)  # the first 51 are past their expiry
    assert await nonces.add(keyid(1), "fresh", clock() + 60)
    assert len(nonces) == 50
    assert not await nonces.add(keyid(1), "n99", clock() + 60)
    assert await nonces.add(keyid(1), "n0", clock() + 60)


async def test_rooms_are_listed_in_id_order_and_deletes_use_a_revision() -> None:
    rooms = MemoryRoomStore()
    alice = keyid(1)
    later, earlier = room(9, alice), room(2, alice)
    assert await rooms.put(later, None) == 1
    assert await rooms.put(earlier, None) == 2
    assert await rooms.list_by_member(alice) == (earlier, later)
    await rooms.delete(later.id)
    # KV writes a delete marker, which takes revision 3.
    assert await rooms.put(later, None) == 4
