"""The fault matrix, over HTTP, on the memory deployment and on the real NATS adapters.

Faults go through the switchable wrapper (roomkeeper.adapters.faults), never
monkeypatching. On NATS the connection faults are real: the link to the server is cut
or stalled by a TcpProxy while the request is in flight. On memory the same faults are
the exact errors the NATS adapters raise for them.

For every fault: the answer is 503 with Retry-After (never 500), R1 holds (every room
record has its stream), nothing stored changed, and the retry succeeds.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.errors
import pytest
import trio

from roomkeeper.core import stream_name_for_room
from tests.reliability.backends import REQUEST_TIMEOUT, Stack, open_stack
from tests.reliability.harness import (
    Reply,
    assert_unavailable,
    nats_failure,
    orphan_rooms,
    record,
    wait_until,
)

#: A bound for anything that must not wait for NATS: well past one request timeout.
NO_HANG = REQUEST_TIMEOUT * 4


@pytest.fixture(params=["memory", "nats"])
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    nats_server = request.getfixturevalue("nats_server") if request.param == "nats" else None
    async with open_stack(request.param, nats_server) as opened:
        yield opened


async def assert_r1(stack: Stack) -> None:
    for caller in (stack.alice, stack.bob):
        assert await orphan_rooms(stack.inner, caller.keyid) == []


async def room_ids(stack: Stack) -> set[str]:
    return {room.id for room in await stack.inner.rooms.list_by_member(stack.alice.keyid)}


def survived(stack: Stack, fault: str) -> None:
    record("faults", **{f"{stack.backend}: {fault}": "503 + Retry-After, R1, retry ok"})


def in_background(nursery: trio.Nursery, call: Callable[[], Awaitable[Reply]]) -> list[Reply]:
    """Start ``call`` in ``nursery``; its reply lands in the list."""
    replies: list[Reply] = []

    async def run() -> None:
        replies.append(await call())

    nursery.start_soon(run)
    return replies


async def calls_reached(stack: Stack, op: str, count: int) -> None:
    async def reached() -> bool:
        return stack.log.ops.count(op) >= count

    await wait_until(reached, within=NO_HANG, interval=0.005, what=f"{count} x {op}")


# --- ensure fails --------------------------------------------------------------------------


async def test_a_failed_ensure_is_a_503_and_leaves_no_room(stack: Stack) -> None:
    stack.faults.fail("streams.ensure", nth=1)
    assert_unavailable(await stack.alice.create_room("first try"))
    assert await room_ids(stack) == set()
    assert "rooms.put" not in stack.log.ops  # R1: no record after a failed ensure
    await assert_r1(stack)

    retry = await stack.alice.create_room("first try")
    assert retry.status == 201, retry
    assert await room_ids(stack) == {retry.json()["id"]}
    await assert_r1(stack)
    survived(stack, "ensure fails")


# --- KV put fails --------------------------------------------------------------------------


async def test_a_failed_record_write_is_a_503_and_the_retry_creates_the_room(
    stack: Stack,
) -> None:
    stack.faults.fail("rooms.put", nth=1)
    assert_unavailable(await stack.alice.create_room("ops"))
    assert await room_ids(stack) == set()
    await assert_r1(stack)

    retry = await stack.alice.create_room("ops")
    assert retry.status == 201, retry
    await assert_r1(stack)
    survived(stack, "KV put fails (create)")


async def test_a_failed_membership_write_is_a_503_and_changes_nothing(stack: Stack) -> None:
    room = (await stack.alice.create_room("team")).json()
    target = f"/rooms/{room['id']}/members"
    stack.faults.fail("rooms.put", nth=1)
    assert_unavailable(await stack.alice.call("POST", target,
                                              json_body={"member": stack.bob.keyid}))
    assert (await stack.bob.history(room["id"])).status == 403
    assert (await stack.alice.call("GET", f"/rooms/{room['id']}")).json() == room

    retry = await stack.alice.call("POST", target, json_body={"member": stack.bob.keyid})
    assert retry.status == 200, retry
    assert (await stack.bob.history(room["id"])).status == 200
    await assert_r1(stack)
    survived(stack, "KV put fails (membership)")


# --- a timeout mid-batch -------------------------------------------------------------------


async def room_with_gaps(stack: Stack) -> tuple[str, list[bytes]]:
    """A room of twenty frames with 15..19 deleted: the newest 4 need two fetches,
    since the first one, sized by the average density, comes back short (R10)."""
    room_id = (await stack.alice.create_room("gaps")).json()["id"]
    frames = [b"frame %d" % n for n in range(1, 21)]
    for frame in frames:
        assert (await stack.alice.publish(room_id, frame)).status == 201
    streams = stack.inner.streams
    assert streams is not None
    for seq in range(15, 20):
        await streams.delete_message(stream_name_for_room(room_id), seq)
    return room_id, [frames[11], frames[12], frames[13], frames[19]]


async def test_a_timeout_on_the_second_fetch_is_a_503_and_the_retry_reads_the_page(
    stack: Stack,
) -> None:
    room_id, page = await room_with_gaps(stack)
    stack.log.clear()
    assert decoded(await stack.alice.history(room_id, "limit=4")) == page
    assert stack.log.ops.count("streams.fetch") == 2  # so the fault is mid-batch
    stack.log.clear()
    if stack.proxy is None:
        timeout = nats_failure(nats.errors.TimeoutError(), "fetch from stream")
        stack.faults.fail("streams.fetch", nth=2, error=timeout)
        reply = await stack.alice.history(room_id, "limit=4")
    else:
        # A real timeout: the link stalls just as the second fetch goes out.
        stack.faults.delay("streams.fetch", 0.02)
        with trio.fail_after(NO_HANG):  # a stalled link must not hang the request
            async with trio.open_nursery() as nursery:
                replies = in_background(
                    nursery, lambda: stack.alice.history(room_id, "limit=4"))
                await calls_reached(stack, "streams.fetch", 2)
                stack.proxy.stall()
        reply = replies[0]
        stack.proxy.resume()
        stack.faults.heal()
    assert_unavailable(reply)
    assert stack.log.ops.count("streams.fetch") == 2

    retry = await stack.alice.history(room_id, "limit=4")
    assert retry.status == 200, retry
    assert decoded(retry) == page
    await assert_r1(stack)
    survived(stack, "timeout mid-batch (fetch)")


def decoded(reply: Reply) -> list[bytes]:
    return [base64.b64decode(m) for m in reply.json()["messages"]]


# --- the connection dropped mid-request ----------------------------------------------------


async def test_a_connection_dropped_mid_create_is_a_503_without_an_orphan(
    stack: Stack,
) -> None:
    """The stream is ensured, then the link to NATS goes away before the record is
    written: 503, no room record (the leftover stream is harmless), and once NATS is
    back the retry creates the room."""
    if stack.proxy is None:
        dropped = nats_failure(nats.errors.ConnectionReconnectingError(), "put room")
        stack.faults.fail("rooms.put", nth=1, error=dropped)
        reply = await stack.alice.create_room("dropped")
    else:
        stack.faults.delay("rooms.put", 0.1)
        with trio.fail_after(NO_HANG):
            async with trio.open_nursery() as nursery:
                replies = in_background(
                    nursery, lambda: stack.alice.create_room("dropped"))
                await calls_reached(stack, "rooms.put", 1)
                stack.proxy.sever(refuse=True)
        reply = replies[0]
        stack.faults.heal()
    assert_unavailable(reply)
    assert stack.log.ops[-2:] == ["streams.ensure", "rooms.put"]
    if stack.proxy is not None:
        stack.proxy.resume()
        await stack.wait_ready()
    assert await room_ids(stack) == set()
    await assert_r1(stack)

    retry = await stack.alice.create_room("dropped")
    assert retry.status == 201, retry
    assert await room_ids(stack) == {retry.json()["id"]}
    await assert_r1(stack)
    survived(stack, "connection dropped mid-request")
