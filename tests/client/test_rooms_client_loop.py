"""The SDK's private asyncio loop thread (nats-py runs there), and room-key text."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import trio

from roomkeeper.client import Identity, accept_text, frame_msg_id, new_room_key, share_text
from roomkeeper.client._aio import LoopThread, TrioInbox
from roomkeeper.client.frames import RoomKeyUnsealFailed, seal_frame


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


def test_close_is_idempotent() -> None:
    thread = LoopThread()
    thread.start()
    thread.close()
    thread.close()


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
