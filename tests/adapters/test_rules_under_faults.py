"""The core's machines, driven through the memory deployment with faults injected.

R1 (ensure before write) is proved here end to end: a failing ensure leaves no room
record, a failing record write leaves a harmless stream that a retry ensures again,
and the call log shows the order. R2, R3, R7 and R10 are checked on the same wiring.
"""

from __future__ import annotations

import pytest

from roomkeeper.adapters.driver import drive, wiring_of
from roomkeeper.core import (
    BackendUnavailable,
    CreateRoomRequest,
    Mode,
    PageRequest,
    Room,
    StoredMessage,
    encode_keyid,
    new_room_id,
    read_history,
    stream_name_for_room,
)
from roomkeeper.core import create_room as create_room_machine
from roomkeeper.ports import Deployment
from tests.fakes import CallLog, Faults, memory_deployment, wrap_deployment

ALICE = encode_keyid(b"\x01" * 32)
ROOM_ID = new_room_id(b"\x07" * 16)
STREAM = stream_name_for_room(ROOM_ID)


async def create_room(deployment: Deployment, mode: Mode = Mode.MATRIX) -> Room:
    request = CreateRoomRequest(name="ops", mode=mode)
    machine = create_room_machine(request, ALICE, ROOM_ID, deployment.clock(),
                                  wiring_of(deployment))
    return await drive(machine, deployment)


async def history(deployment: Deployment, limit: int) -> tuple[bytes, ...]:
    page = await drive(read_history(ROOM_ID, ALICE, PageRequest(limit=limit),
                                    wiring_of(deployment)), deployment)
    return tuple(m.data for m in page.messages)


async def test_a_failed_ensure_leaves_no_room(
    deployment: Deployment, faults: Faults, log: CallLog
) -> None:
    faults.fail("streams.ensure", nth=1)
    with pytest.raises(BackendUnavailable):
        await create_room(deployment)
    assert await deployment.rooms.list_by_member(ALICE) == ()
    assert await deployment.rooms.get(ROOM_ID) is None
    assert log.ops[:1] == ["streams.ensure"]
    assert "rooms.put" not in log.ops


async def test_a_failed_write_leaves_a_stream_that_a_retry_ensures_again(
    deployment: Deployment, faults: Faults, log: CallLog
) -> None:
    streams = deployment.streams
    assert streams is not None
    faults.fail("rooms.put", nth=1)
    with pytest.raises(BackendUnavailable):
        await create_room(deployment)
    assert await streams.info(STREAM) is not None
    assert await deployment.rooms.get(ROOM_ID) is None

    room = await create_room(deployment)
    assert await deployment.rooms.list_by_member(ALICE) == (room,)
    assert [op for op in log.ops if op in ("streams.ensure", "rooms.put")] == [
        "streams.ensure", "rooms.put", "streams.ensure", "rooms.put"]


async def test_while_streams_are_down_no_room_is_ever_written(
    deployment: Deployment, faults: Faults, log: CallLog
) -> None:
    faults.fail("streams.*")
    for _ in range(3):
        with pytest.raises(BackendUnavailable):
            await create_room(deployment)
    assert "rooms.put" not in log.ops
    faults.heal("streams.*")
    room = await create_room(deployment)
    assert await deployment.rooms.list_by_member(ALICE) == (room,)


async def test_without_jetstream_a_room_is_just_a_record(log: CallLog) -> None:
    # R2
    deployment = wrap_deployment(memory_deployment(jetstream=False), Faults(), log)
    room = await create_room(deployment)
    assert log.ops == ["rooms.put"]
    assert await history(deployment, 10) == ()
    assert await deployment.rooms.list_by_member(ALICE) == (room,)


async def test_the_first_core_publish_is_in_the_history(deployment: Deployment) -> None:
    # R3: a core-NATS-only client publishes right after the room exists.
    room = await create_room(deployment)
    await deployment.bus.publish(room.subject, b"first")
    await deployment.bus.publish(room.subject, b"second")
    assert await history(deployment, 10) == (b"first", b"second")


async def test_history_of_a_room_without_its_stream_ensures_it(
    deployment: Deployment, log: CallLog
) -> None:
    # R7: the stream was lost (or the room predates roomkeeper): capture from now on.
    streams = deployment.streams
    assert streams is not None
    room = await create_room(deployment)
    await streams.delete(STREAM)
    assert await history(deployment, 10) == ()
    assert await streams.info(STREAM) is not None
    await deployment.bus.publish(room.subject, b"captured again")
    assert await history(deployment, 10) == (b"captured again",)


async def test_deletions_do_not_shrink_the_page(deployment: Deployment) -> None:
    # R10: the core asks the memory stream for more when deletions leave a gap.
    streams = deployment.streams
    assert streams is not None
    room = await create_room(deployment)
    for n in range(1, 11):
        await streams.publish(room.subject, b"f%d" % n)
    for seq in (7, 8, 9):
        await streams.delete_message(STREAM, seq)
    assert await history(deployment, 4) == (b"f4", b"f5", b"f6", b"f10")
    assert await streams.fetch(STREAM, 9, 2) == (StoredMessage(10, b"f10"),)
