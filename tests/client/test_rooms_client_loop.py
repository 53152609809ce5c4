"""The SDK's private asyncio loop thread (nats-py runs there), and room-key text."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import suppress

import pytest
import trio

from roomkeeper.client import Identity, accept_text, frame_msg_id, new_room_key, share_text
from roomkeeper.client import nats as client_nats
from roomkeeper.client._aio import LoopThread, TrioInbox
from roomkeeper.client.frames import RoomKeyUnsealFailed, seal_frame
from roomkeeper.core import BackendUnavailable


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread("test-loop")
    thread.start()
    yield thread
    thread.close()


async def test_call_returns_the_result_from_the_loop_thread(loop: LoopThread) -> None:
    async def where() -> bool:
        await asyncio.sleep(0)
        return asyncio.get_running_loop() is not None

    assert await loop.call(where) is True


async def test_call_raises_the_coroutines_exception(loop: LoopThread) -> None:
    async def fail(text: str) -> None:
        raise LookupError(text)

    with pytest.raises(LookupError, match="nope"):
        await loop.call(fail, "nope")


async def test_cancelling_the_trio_side_cancels_the_asyncio_task(loop: LoopThread) -> None:
    seen: list[str] = []

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    with trio.move_on_after(0.05) as scope:
        await loop.call(slow)
    assert scope.cancelled_caught
    assert seen == ["cancelled"]  # finished on the loop before call() returned


async def test_inbox_delivers_in_order_from_the_loop_thread(loop: LoopThread) -> None:
    inbox = TrioInbox[bytes]()

    async def push_all() -> None:
        for i in range(100):
            inbox.push(b"%d" % i)

    await loop.call(push_all)
    inbox.close()
    assert [frame async for frame in inbox] == [b"%d" % i for i in range(100)]


async def test_close_does_not_wait_forever_for_a_task_that_ignores_cancellation() -> None:
    loop = LoopThread("test-stubborn", cleanup_timeout=0.05)
    loop.start()
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()
    outcome: list[str] = []

    async def stubborn() -> None:
        token.run_sync_soon(started.set)
        while True:
            with suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    async def caller() -> None:
        with pytest.raises(BackendUnavailable) as caught:
            await loop.call(stubborn)
        outcome.append(caught.value.code)

    with trio.fail_after(2):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller)
            await started.wait()
            before = time.monotonic()
            loop.close()
            closed_in = time.monotonic() - before
    assert closed_in < 1  # about cleanup_timeout, not the task's 10 s (or forever)
    assert outcome == ["bridge_closed"]  # the caller was let go, not left parked
    assert loop._loop is not None and loop._loop.is_closed()


def test_close_does_not_wait_forever_for_a_blocked_loop_thread() -> None:
    loop = LoopThread("test-blocked", cleanup_timeout=0.05)
    loop.start()
    entered, release = threading.Event(), threading.Event()

    async def blocking() -> None:
        entered.set()
        release.wait(5)  # blocks the whole loop thread, as a buggy callback would

    asyncio.run_coroutine_threadsafe(blocking(), loop.loop)
    assert entered.wait(5)
    before = time.monotonic()
    loop.close()
    assert time.monotonic() - before < 1
    [thread] = [t for t in threading.enumerate() if t.name == "test-blocked"]
    release.set()
    thread.join(5)
    assert not thread.is_alive()


async def _cancel_once_started(loop: LoopThread, fn: Callable[[trio.Event], Awaitable[str]],
                               ) -> tuple[trio.CancelScope, list[str]]:
    """Call ``fn(started)`` on the loop and cancel the Trio side once it has started;
    what the call returned, and the scope (was the cancellation delivered?)."""
    started = trio.Event()
    scope = trio.CancelScope()
    returned: list[str] = []

    async def caller() -> None:
        with scope:
            returned.append(await loop.call(fn, started))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await started.wait()
        scope.cancel()
    return scope, returned


async def test_a_result_that_arrives_as_the_caller_is_cancelled_is_returned(
    loop: LoopThread,
) -> None:
    token = trio.lowlevel.current_trio_token()

    async def completes_anyway(started: trio.Event) -> str:
        token.run_sync_soon(started.set)
        # The work gets done just as the cancel comes: a resource exists now.
        with suppress(asyncio.CancelledError):
            await asyncio.sleep(10)
        return "subscription"

    scope, returned = await _cancel_once_started(loop, completes_anyway)
    # Handed back for the caller to release (the cancellation then comes at its next
    # checkpoint), rather than dropped while it still holds a resource.
    assert returned == ["subscription"]
    assert scope.cancelled_caught


async def test_a_task_that_fails_after_the_cancel_raises_the_cancellation(
    loop: LoopThread,
) -> None:
    token = trio.lowlevel.current_trio_token()

    async def fails_on_cancel(started: trio.Event) -> str:
        token.run_sync_soon(started.set)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise LookupError("cleanup went wrong") from None
        return "unreachable"  # pragma: no cover

    scope, returned = await _cancel_once_started(loop, fails_on_cancel)
    assert returned == []
    assert scope.cancelled_caught  # Cancelled, not a LookupError escaping the scope


async def test_a_cancelled_connect_leaves_nothing_running_on_the_loop(
    loop: LoopThread,
) -> None:
    async def others() -> list[asyncio.Task[object]]:
        current = asyncio.current_task()
        return [task for task in asyncio.all_tasks() if task is not current]

    with socket.socket() as silent:  # accepts, never says INFO: the connect hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"nats://127.0.0.1:{silent.getsockname()[1]}"
        with trio.move_on_after(0.1) as scope:
            await loop.call(client_nats._connect, url, "test", 5.0)
        assert scope.cancelled_caught
        assert await loop.call(others) == []


async def test_close_stops_the_thread_and_later_calls_fail_cleanly() -> None:
    thread = LoopThread("test-close")
    thread.start()
    loop = thread.loop
    thread.close()
    assert loop.is_closed()
    assert not any(t.name == "test-close" for t in threading.enumerate())
    thread.close()  # idempotent: nothing left to do, and no error
    with pytest.raises(BackendUnavailable) as caught:
        await thread.call(asyncio.sleep, 0)
    assert caught.value.code == "bridge_closed"


def test_room_key_text_round_trip() -> None:
    bob = Identity.generate()
    key = new_room_key()
    text = share_text(key, bob.keyid)
    assert text.isascii() and "=" not in text
    assert accept_text(text, bob) == key
    wrapped = "\n".join(text[i:i + 20] for i in range(0, len(text), 20))
    assert accept_text(wrapped, bob) == key  # a pasted, line-wrapped key still works


@pytest.mark.parametrize("text", ["", "***", "AAAA"])
def test_room_key_text_that_is_not_a_sealed_key(text: str) -> None:
    with pytest.raises(RoomKeyUnsealFailed):
        accept_text(text, Identity.generate())


def test_frame_msg_id_is_the_nonce_and_refuses_non_frames() -> None:
    nonce = bytes(range(24))
    frame = seal_frame(Identity.generate(), new_room_key(), b"x", room_id="a" * 26,
                       nonce=nonce)
    assert frame_msg_id(frame) == nonce.hex()
    with pytest.raises(ValueError, match="not a frame"):
        frame_msg_id(b"\x01short")
