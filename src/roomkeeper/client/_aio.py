"""An asyncio loop on a daemon thread, driven from Trio: the one trio <-> asyncio crossing.

nats-py is asyncio-only; the SDK and the server run on Trio. Rather than run asyncio
inside Trio (trio-asyncio measured ~3x slower on bulk reads), every operation crosses
once. The SDK's ``RoomsNats`` and the server's bridge (``roomkeeper.adapters.nats.bridge``,
which may import the client by the layers contract) both build on this module; it is
not part of the SDK's public API.

- ``LoopThread.call(fn, *args)`` schedules ``fn(*args)`` as a task on the loop and parks
  the calling Trio task with ``wait_task_rescheduled``. The task's done callback wakes
  it through the caller's ``TrioToken``: no worker thread ever blocks.
- A crossing costs ~150-250 us, so callers make them coarse: one per operation (a whole
  batch read is one crossing), never one per message.
- Cancelling the Trio side cancels the asyncio task and waits for it to end, so nothing
  keeps running on the loop after ``call`` returns or raises. If the task completed all
  the same, ``call`` returns its result as Trio's own primitives do (the cancellation
  then surfaces at the caller's next checkpoint): a subscription or a connection made
  just as the caller was cancelled is handed back to be closed, never dropped on the
  floor. A task that failed after the cancel raises the cancellation.
- ``TrioInbox`` forwards items pushed on the loop thread (a subscription's messages)
  into a bounded Trio channel. When the Trio side falls behind and the buffer is full,
  new items are dropped and counted: blocking the loop would stall every other call,
  and core NATS is at-most-once anyway.
- ``close`` cancels whatever still runs and waits for it at most ``cleanup_timeout``
  seconds; calls still waiting then fail with ``BackendUnavailable(code="bridge_closed")``
  rather than hang.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Any, Generic, TypeVar, TypeVarTuple, Unpack

import trio

from roomkeeper.core import BackendUnavailable

from .errors import describe

__all__ = ["CLEANUP_TIMEOUT", "DEFAULT_BUFFER", "LoopThread", "TrioInbox"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger("roomkeeper.nats")

#: Bound on waiting for the asyncio side to let go: cancelled tasks at close, and the
#: cleanup crossings (unsubscribe, drain) that callers run shielded from cancellation.
CLEANUP_TIMEOUT = 5.0
#: Items a ``TrioInbox`` buffers for a slow Trio consumer before it drops new ones.
DEFAULT_BUFFER = 1024


class _Crossing(Generic[T]):
    """One call in flight: what the loop side hands back to the parked Trio task.

    ``finish`` runs on the loop thread only, so "exactly one wake-up" needs no lock."""

    __slots__ = ("_wake", "error", "finished", "raise_cancel", "task", "value")

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self.task: asyncio.Task[T] | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.finished = False
        #: Set (on the Trio thread) when the Trio side was cancelled.
        self.raise_cancel: trio.lowlevel.RaiseCancelT | None = None

    def finish(self, *, value: T | None = None, error: BaseException | None = None) -> None:
        if self.finished:  # abandoned at close, and the stubborn task ended later
            return
        self.finished, self.value, self.error = True, value, error
        self._wake()


class LoopThread:
    """Owns one asyncio loop running on a daemon thread. ``start``/``close`` are
    synchronous; every other use goes through ``call``."""

    def __init__(self, name: str = "roomkeeper-nats", *,
                 cleanup_timeout: float = CLEANUP_TIMEOUT) -> None:
        self.name = name
        self.cleanup_timeout = cleanup_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        # Calls whose task is running. Touched on the loop thread only.
        self._in_flight: set[_Crossing[Any]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._closing:
            raise BackendUnavailable("the NATS loop thread is not running", code="bridge_closed")
        return self._loop

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the loop thread was already started")
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop, ready), name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        self._loop = loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            # Tasks that ignored cancellation: their Trio callers must not wait forever.
            for crossing in list(self._in_flight):
                crossing.finish(error=asyncio.CancelledError())
            # After a close() that timed out, its late _cancel_other_tasks may run now
            # and cancel this very task too: the loop must be closed all the same.
            with suppress(asyncio.CancelledError):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Cancel whatever still runs on the loop, wait for it (at most
        ``cleanup_timeout``), stop the loop and join the thread. Close clients first:
        cancelling nats-py's own tasks is a last resort. Idempotent."""
        if self._thread is None or self._loop is None or self._closing:
            return
        loop, self._closing = self._loop, True
        cancelled = asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), loop)
        try:
            cancelled.result(timeout=self.cleanup_timeout)
        except TimeoutError:
            log.warning("tasks on the %s loop ignored cancellation; stopping anyway", self.name)
            cancelled.cancel()
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=self.cleanup_timeout)
        if self._thread.is_alive():
            log.warning("the %s loop thread is blocked; leaving it behind", self.name)

    async def call(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        """Run ``await fn(*args)`` on the loop and return its result (or raise its
        exception) in the calling Trio task."""
        loop = self.loop
        token = trio.lowlevel.current_trio_token()
        trio_task = trio.lowlevel.current_task()

        def wake() -> None:
            # RunFinishedError: the Trio run is gone, so nobody is waiting any more.
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(trio.lowlevel.reschedule, trio_task)

        crossing: _Crossing[T] = _Crossing(wake)

        def on_done(task: asyncio.Task[T]) -> None:
            self._in_flight.discard(crossing)
            if task.cancelled():
                crossing.finish(error=asyncio.CancelledError())
            elif (exc := task.exception()) is not None:
                crossing.finish(error=exc)
            else:
                crossing.finish(value=task.result())

        def start() -> None:
            if self._closing:  # close() has cancelled everything already: don't start
                crossing.finish(error=asyncio.CancelledError())
                return
            crossing.task = loop.create_task(_invoke(fn, *args))
            self._in_flight.add(crossing)
            crossing.task.add_done_callback(on_done)

        def cancel() -> None:
            # Runs after start(): call_soon_threadsafe keeps FIFO order.
            if crossing.task is not None:
                crossing.task.cancel()

        def abort(raise_cancel: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            crossing.raise_cancel = raise_cancel
            # A closed loop has finished every crossing itself (see _run_loop).
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel)
            # FAILED: keep waiting until the asyncio task is really done.
            return trio.lowlevel.Abort.FAILED

        self._schedule(loop, start)
        await trio.lowlevel.wait_task_rescheduled(abort)
        return _outcome(crossing)

    @staticmethod
    def _schedule(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        try:
            loop.call_soon_threadsafe(callback)
        except RuntimeError as exc:  # the loop closed under us
            raise BackendUnavailable(
                "the NATS loop thread is not running", code="bridge_closed") from exc


def _outcome(crossing: _Crossing[T]) -> T:
    error, crossing.error = crossing.error, None  # break the traceback <-> crossing cycle
    if crossing.raise_cancel is not None and error is not None:
        # The Trio side was cancelled and the task did not complete: report the
        # cancellation (Cancelled, or a KeyboardInterrupt that was being delivered).
        if not isinstance(error, asyncio.CancelledError):
            log.debug("a cancelled call ended with %s", describe(error))
        crossing.raise_cancel()
    if isinstance(error, asyncio.CancelledError):
        # Not cancelled by our caller: the loop is shutting down.
        raise BackendUnavailable("the NATS loop closed during a call", code="bridge_closed")
    if error is not None:
        raise error
    return crossing.value  # type: ignore[return-value]


async def _invoke(fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    # fn is called here, on the loop thread, so even its synchronous prologue never runs
    # on the Trio thread.
    return await fn(*args)


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class TrioInbox(Generic[T]):
    """Items pushed from the loop thread, received in Trio, in order, at most ``buffer``
    of them waiting; ``dropped`` counts what came while the buffer was full. Make it in
    Trio (it remembers the run's token); ``push`` is for the loop thread."""

    def __init__(self, buffer: float = DEFAULT_BUFFER) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._send, self._receive = trio.open_memory_channel[T](buffer)
        #: Items dropped because the buffer was full (see the module docstring).
        self.dropped = 0

    def push(self, item: T) -> None:
        """Hand ``item`` to the Trio side. Call it on the loop thread; it never blocks."""
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._deliver, item)

    def _deliver(self, item: T) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            self.dropped += 1
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the Trio side has stopped listening

    async def receive(self) -> T:
        """The next item; ``trio.EndOfChannel`` once closed and drained."""
        return await self._receive.receive()

    def __aiter__(self) -> AsyncIterator[T]:
        return self._receive.__aiter__()

    def close(self) -> None:
        """Stop delivering: later pushes are discarded, receivers see the end."""
        self._send.close()
