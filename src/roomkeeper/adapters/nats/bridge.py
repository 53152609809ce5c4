"""The trio <-> asyncio bridge: nats-py runs on its own asyncio loop in a daemon thread.

nats-py is asyncio-only and the HTTP server runs on Trio. Rather than run asyncio inside
Trio (trio-asyncio measured ~3x slower on bulk reads), every NATS operation crosses once:

- ``NatsBridge.call(fn, *args)`` schedules ``fn(*args)`` as a task on the bridge loop and
  parks the calling Trio task with ``wait_task_rescheduled``. The asyncio task's done
  callback wakes it through the caller's ``TrioToken``: no worker thread ever blocks.
- A crossing costs ~150-250 us, so adapters make them coarse: one per port method (a whole
  batch read is one crossing), never one per message.
- Cancelling the Trio side cancels the asyncio task and then waits for it to finish, so
  nothing keeps running on the loop after ``call`` returns or raises.
- ``NatsBridge.subscribe`` forwards a nats-py subscription into a bounded Trio memory
  channel. When the Trio side falls behind and the buffer is full, new messages are
  dropped and counted in ``BridgedSubscription.dropped``: core NATS is at-most-once and
  drops for slow consumers itself, and blocking the loop would stall every other call.

``open_connection`` is the usual entry point: a bridge plus a connected client and its
JetStream context, drained on exit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, TypeVarTuple, Unpack

import nats.errors
import trio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from roomkeeper.core import BackendUnavailable

from .errors import check_connected, describe, translate_errors

__all__ = [
    "DEFAULT_SUBSCRIPTION_BUFFER",
    "BridgedSubscription",
    "NatsBridge",
    "NatsConnection",
    "open_bridge",
    "open_connection",
]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

log = logging.getLogger("roomkeeper.nats")

#: Messages a subscription buffers for a slow Trio consumer before it drops new ones.
DEFAULT_SUBSCRIPTION_BUFFER = 1024
#: Bound on cleanup crossings (unsubscribe, drain) that run shielded from cancellation.
CLEANUP_TIMEOUT = 5.0


class _Crossing(Generic[T]):
    """One call in flight: what the loop side hands back to the parked Trio task."""

    __slots__ = ("aborted", "error", "task", "value")

    def __init__(self) -> None:
        self.task: asyncio.Task[T] | None = None
        self.value: T | None = None
        self.error: BaseException | None = None
        self.aborted = False


async def _invoke(fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
    # fn is called here, on the loop thread, so even its synchronous prologue never runs
    # on the Trio thread.
    return await fn(*args)


class NatsBridge:
    """Owns the asyncio loop thread. ``start``/``close`` are synchronous; from Trio prefer
    ``async with open_bridge() as bridge``."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closing = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._closing:
            raise BackendUnavailable("the NATS bridge is not running", code="bridge_closed")
        return self._loop

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the bridge was already started")
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(ready,), name="roomkeeper-nats", daemon=True
        )
        self._thread.start()
        ready.wait()

    def _run_loop(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        """Cancel whatever still runs on the loop, stop it and join the thread. Close
        clients first (``open_connection`` does): cancelling nats-py's own tasks is a
        last resort. Idempotent."""
        if self._thread is None or self._loop is None or self._closing:
            return
        loop, self._closing = self._loop, True
        cancelled = asyncio.run_coroutine_threadsafe(_cancel_other_tasks(), loop)
        try:
            cancelled.result(timeout=CLEANUP_TIMEOUT)
        except TimeoutError:
            log.warning("tasks on the NATS bridge ignored cancellation; stopping anyway")
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join()

    async def call(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        """Run ``await fn(*args)`` on the bridge loop and return its result (or raise its
        exception) in the calling Trio task."""
        loop = self.loop
        token = trio.lowlevel.current_trio_token()
        trio_task = trio.lowlevel.current_task()
        crossing: _Crossing[T] = _Crossing()

        def wake() -> None:
            trio.lowlevel.reschedule(trio_task)

        def finish() -> None:
            # RunFinishedError: the Trio run is gone, so nobody is waiting any more.
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(wake)

        def on_done(task: asyncio.Task[T]) -> None:
            if task.cancelled():
                crossing.error = asyncio.CancelledError()
            elif (exc := task.exception()) is not None:
                crossing.error = exc
            else:
                crossing.value = task.result()
            finish()

        def start() -> None:
            if self._closing:  # close() has cancelled everything already: don't start
                crossing.error = asyncio.CancelledError()
                finish()
                return
            crossing.task = loop.create_task(_invoke(fn, *args))
            crossing.task.add_done_callback(on_done)

        def cancel() -> None:
            # Runs after start(): call_soon_threadsafe keeps FIFO order.
            if crossing.task is not None:
                crossing.task.cancel()

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            crossing.aborted = True
            # A closed loop has cancelled the task itself (close() waits for that).
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel)
            # FAILED: keep waiting until the asyncio task is really done.
            return trio.lowlevel.Abort.FAILED

        self._schedule(start)
        await trio.lowlevel.wait_task_rescheduled(abort)
        return await self._unwrap(crossing)

    async def _unwrap(self, crossing: _Crossing[T]) -> T:
        error = crossing.error
        if isinstance(error, asyncio.CancelledError):
            if crossing.aborted:
                # Our scope is cancelled: this checkpoint raises trio.Cancelled. (Only a
                # KeyboardInterrupt delivered elsewhere gets past it.)
                await trio.lowlevel.checkpoint()
                raise BackendUnavailable("the call was interrupted", code="call_cancelled")
            raise BackendUnavailable("the NATS bridge closed during a call", code="bridge_closed")
        if error is not None:
            crossing.error = None  # break the traceback <-> crossing cycle
            raise error
        return crossing.value  # type: ignore[return-value]

    def _schedule(self, callback: Callable[[], None]) -> None:
        try:
            self.loop.call_soon_threadsafe(callback)
        except RuntimeError as exc:  # the loop closed under us
            raise BackendUnavailable(
                "the NATS bridge is not running", code="bridge_closed"
            ) from exc

    @asynccontextmanager
    async def subscribe(
        self, client: Client, subject: str, *, buffer: int = DEFAULT_SUBSCRIPTION_BUFFER
    ) -> AsyncIterator[BridgedSubscription]:
        """Messages published on ``subject`` from now on (the SUB is flushed to the server
        before this yields), delivered into Trio until the context exits."""
        send, receive = trio.open_memory_channel[Msg](buffer)
        bridged = BridgedSubscription(receive)
        token = trio.lowlevel.current_trio_token()

        def deliver(msg: Msg) -> None:
            try:
                send.send_nowait(msg)
            except trio.WouldBlock:
                bridged.dropped += 1
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # the Trio side has left the context

        async def forward(msg: Msg) -> None:
            with suppress(trio.RunFinishedError):
                token.run_sync_soon(deliver, msg)

        with translate_errors(f"subscribe to {subject}"):
            sub = await self.call(_subscribe_flushed, client, subject, forward)
        try:
            async with send, receive:
                yield bridged
        finally:
            with trio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                await self.call(_unsubscribe_quietly, sub)


async def _cancel_other_tasks() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _subscribe_flushed(
    client: Client, subject: str, cb: Callable[[Msg], Awaitable[None]]
) -> Any:
    sub = await client.subscribe(subject, cb=cb)
    await client.flush()
    return sub


async def _unsubscribe_quietly(sub: Any) -> None:
    try:
        await sub.unsubscribe()
    except nats.errors.Error as exc:  # the connection is closed or draining: it is gone
        log.debug("unsubscribe after the connection went away: %s", describe(exc))


class BridgedSubscription:
    """An async iterator of nats-py ``Msg`` objects received on the Trio side."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Msg]) -> None:
        self._receive = receive
        #: Messages dropped because the buffer was full (see the module docstring).
        self.dropped = 0

    async def receive(self) -> Msg:
        return await self._receive.receive()

    def __aiter__(self) -> AsyncIterator[Msg]:
        return self._receive.__aiter__()


@asynccontextmanager
async def open_bridge() -> AsyncIterator[NatsBridge]:
    """A running bridge for the duration of the block (usable from Trio)."""
    bridge = NatsBridge()
    bridge.start()
    try:
        yield bridge
    finally:
        bridge.close()


@dataclass(frozen=True)
class NatsConnection:
    """A bridge with a connected nats-py client and its JetStream context. Adapters take
    one of these; every operation on ``client``/``js`` must go through ``bridge.call``."""

    bridge: NatsBridge
    client: Client
    js: JetStreamContext
    #: Seconds a request may take (``js`` was made with the same timeout).
    request_timeout: float = 5.0

    async def call(self, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts) -> T:
        """``bridge.call``, but failing fast (ConnectionClosedError or
        ConnectionReconnectingError, see errors.check_connected) while disconnected."""
        return await self.bridge.call(_when_connected, self.client, fn, *args)


async def _when_connected(
    client: Client, fn: Callable[[Unpack[Ts]], Awaitable[T]], *args: *Ts
) -> T:
    check_connected(client)
    return await fn(*args)


@asynccontextmanager
async def open_connection(
    url: str,
    *,
    bridge: NatsBridge | None = None,
    name: str = "roomkeeper",
    connect_timeout: float = 5.0,
    request_timeout: float = 5.0,
) -> AsyncIterator[NatsConnection]:
    """Connect to ``url`` (opening a private bridge unless one is given) and drain the
    connection on exit. A server that cannot be reached within ``connect_timeout``
    raises BackendUnavailable(code="nats_connect_failed") naming the URL and the cause,
    instead of retrying forever at startup."""
    async with _maybe_bridge(bridge) as active:
        client = await active.call(_connect, url, name, connect_timeout)
        try:
            js = client.jetstream(timeout=request_timeout)
            yield NatsConnection(active, client, js, request_timeout)
        finally:
            with trio.move_on_after(CLEANUP_TIMEOUT, shield=True):
                await active.call(_drain_quietly, client)


@asynccontextmanager
async def _maybe_bridge(bridge: NatsBridge | None) -> AsyncIterator[NatsBridge]:
    if bridge is not None:
        yield bridge
        return
    async with open_bridge() as own:
        yield own


async def _connect(url: str, name: str, deadline: float) -> Client:
    client = Client()
    failures: list[Exception] = []
    connected = False

    async def on_error(exc: Exception) -> None:
        failures.append(exc)
        # Until the first connect succeeds, the failure that ends it is reported once,
        # as the BackendUnavailable below; a warning per attempt would only repeat it.
        log.log(logging.WARNING if connected else logging.DEBUG,
                "NATS error: %s", describe(exc))

    async def on_disconnected() -> None:
        if not client.is_closed:  # a close we asked for is not news
            log.warning("disconnected from NATS; reconnecting")

    async def on_reconnected() -> None:
        log.info("reconnected to NATS at %s", client.connected_url)

    try:
        await asyncio.wait_for(
            client.connect(
                url, name=name, error_cb=on_error, disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected, max_reconnect_attempts=-1,
                reconnect_time_wait=1, connect_timeout=max(1, int(deadline)),
            ),
            deadline,
        )
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        await client.close()
        cause = describe(failures[-1] if failures else exc)
        raise BackendUnavailable(
            f"could not connect to NATS at {url} within {deadline:g}s: {cause}",
            code="nats_connect_failed",
        ) from exc
    connected = True
    return client


async def _drain_quietly(client: Client) -> None:
    try:
        await client.drain()
    except (TimeoutError, nats.errors.Error) as exc:
        log.debug("drain failed, closing: %s", describe(exc))
        await client.close()
