"""A private asyncio loop on a daemon thread, so the SDK can drive nats-py from Trio.

The server has a full bridge in ``roomkeeper.adapters.nats.bridge``; the client may not
import adapters (the layers contract), and needs only a sliver of it: run a coroutine
function on the loop and wait for it without blocking Trio, and forward a subscription
into a Trio channel. One crossing per operation, never one per message of a batch.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

import trio

__all__ = ["LoopThread", "TrioInbox"]

T = TypeVar("T")

#: Bound on waiting for the asyncio side after the Trio side was cancelled.
CLEANUP_TIMEOUT = 5.0


class LoopThread:
    """Owns one asyncio loop running on a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="roomkeeper-client-nats", daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the loop; its result or exception comes back here.
        Cancelling the Trio side cancels the asyncio task and waits for it to end."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        tasks: list[asyncio.Task[T]] = []

        def finished(_: asyncio.Task[T]) -> None:
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        def start() -> None:
            # A task's done callback fires however it ends, even cancelled before its
            # first step; a coroutine's own ``finally`` would not run then.
            tasks.append(self._loop.create_task(_invoke(fn, *args)))
            tasks[0].add_done_callback(finished)

        self._loop.call_soon_threadsafe(start)
        try:
            await done.wait()
        finally:
            if not done.is_set():
                # Scheduled after start() (the loop runs callbacks in order).
                self._loop.call_soon_threadsafe(lambda: tasks[0].cancel())
                with trio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                    await done.wait()
        return _outcome(tasks[0])

    def close(self) -> None:
        """Cancel what still runs, stop the loop and join the thread. Idempotent."""
        if self._loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _outcome(task: asyncio.Task[T]) -> T:
    if task.cancelled():
        # Not by us (that raised trio.Cancelled above): the loop is shutting down.
        raise RuntimeError("the NATS loop closed during a call")
    return task.result()


async def _invoke(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    # Called on the loop thread, so even fn's synchronous prologue runs there.
    return await fn(*args)


async def _cancel_others() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class TrioInbox:
    """Payloads pushed from the loop thread, received in Trio, in order.

    The buffer is unbounded on purpose: a follower reads a whole backlog before it
    drains its live frames, and dropping a frame then would open a gap. Core NATS
    protects itself: a client too slow to read is cut off by the server.
    """

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._send, self.receive = trio.open_memory_channel[bytes](math.inf)

    async def push(self, data: bytes) -> None:
        """The nats-py callback (it runs on the loop thread)."""
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        with suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            self._send.send_nowait(data)

    def close(self) -> None:
        self._send.close()
