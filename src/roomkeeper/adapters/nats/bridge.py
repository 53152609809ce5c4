"""The trio <-> asyncio bridge: nats-py runs on its own asyncio loop in a daemon thread.

The crossing itself is the client's ``roomkeeper.client._aio.LoopThread``, which the
SDK's NATS connection uses too; its docstring says how a call crosses, what cancelling
it does and what ``close`` waits for. ``NatsBridge`` is that loop thread plus
``subscribe``, which forwards a nats-py subscription into a bounded Trio memory channel:
when the Trio side falls behind and the buffer is full, new messages are dropped and
counted in ``BridgedSubscription.dropped``, since core NATS is at-most-once and drops for
slow consumers itself, and blocking the loop would stall every other call.

A crossing costs ~150-250 us, so adapters make them coarse: one per port method (a whole
batch read is one crossing), never one per message.

``open_connection`` is the usual entry point: a bridge plus a connected client and its
JetStream context, drained on exit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias, TypeVar, TypeVarTuple, Unpack

import nats.errors
import trio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from roomkeeper.client._aio import CLEANUP_TIMEOUT, DEFAULT_BUFFER, LoopThread, TrioInbox
from roomkeeper.client._natsio import drain_quietly, forward_subscription
from roomkeeper.client.errors import describe
from roomkeeper.core import BackendUnavailable

from .errors import check_connected, translate_errors

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
DEFAULT_SUBSCRIPTION_BUFFER = DEFAULT_BUFFER

#: An async iterator of nats-py ``Msg`` objects received on the Trio side; ``dropped``
#: counts those lost to a full buffer.
BridgedSubscription: TypeAlias = TrioInbox[Msg]


class NatsBridge(LoopThread):
    """Owns the asyncio loop thread. ``start``/``close`` are synchronous; from Trio prefer
    ``async with open_bridge() as bridge``."""

    def __init__(self) -> None:
        super().__init__("roomkeeper-nats")

    @asynccontextmanager
    async def subscribe(
        self, client: Client, subject: str, *, buffer: int = DEFAULT_SUBSCRIPTION_BUFFER
    ) -> AsyncIterator[BridgedSubscription]:
        """Messages published on ``subject`` from now on (the SUB is flushed to the server
        before this yields), delivered into Trio until the context exits."""
        async with forward_subscription(
            self, client, subject, buffer=buffer,
            errors=lambda: translate_errors(f"subscribe to {subject}"),
        ) as inbox:
            yield inbox


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
                await active.call(drain_quietly, client)


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
    except BaseException:
        # Cancelled: without a close nats-py's connect and reconnect tasks run on.
        await client.close()
        raise
    connected = True
    return client
