"""nats-py plumbing shared by the SDK's ``RoomsNats`` and the server's NATS adapters.

The coroutines run on a ``LoopThread`` (see ``_aio``), one crossing each;
``forward_subscription`` runs in Trio and does the crossing itself. Not part of the
SDK's public API: the server's bridge (``roomkeeper.adapters.nats.bridge``) imports it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from typing import Final

import nats.errors
import nats.js.errors
import trio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ._aio import DEFAULT_BUFFER, LoopThread, TrioInbox
from .errors import describe

__all__ = [
    "FLUSH_TIMEOUT",
    "UNAVAILABLE",
    "drain_quietly",
    "forward_subscription",
    "publish_flushed",
    "subscribe_flushed",
    "unsubscribe_quietly",
]

log = logging.getLogger("roomkeeper.nats")

#: Seconds a flush (a PING answered by a PONG) may take.
FLUSH_TIMEOUT: Final = 5

#: nats-py's exceptions that mean "the server did not answer" rather than "we did
#: something wrong": the connection is closed, lost, reconnecting or draining; no server
#: or responder answers; a request or flush timed out; JetStream is unavailable.
UNAVAILABLE: Final[tuple[type[BaseException], ...]] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,  # asyncio.TimeoutError is the same class on 3.11
    ConnectionError,
)


@asynccontextmanager
async def forward_subscription(
    loop: LoopThread, client: Client, subject: str, *, buffer: float = DEFAULT_BUFFER,
    errors: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> AsyncIterator[TrioInbox[Msg]]:
    """Messages published on ``subject`` from now on (the SUB is flushed to the server
    before this yields), delivered into Trio until the block exits, at most ``buffer``
    waiting (see ``TrioInbox``). ``errors`` wraps the subscribing crossing only, to
    translate nats-py's exceptions; those of the caller's block pass unchanged."""
    inbox = TrioInbox[Msg](buffer)

    async def forward(msg: Msg) -> None:
        inbox.push(msg)

    with errors():
        sub = await loop.call(subscribe_flushed, client, subject, forward)
    try:
        yield inbox
    finally:
        inbox.close()
        with trio.move_on_after(loop.cleanup_timeout, shield=True):
            await loop.call(unsubscribe_quietly, sub)


async def subscribe_flushed(
    client: Client, subject: str, cb: Callable[[Msg], Awaitable[None]]
) -> Subscription:
    """A subscription the server has registered: nothing published after this returns
    can be missed. If the flush fails or is cancelled, the subscription is undone:
    nobody would ever unsubscribe it otherwise."""
    sub = await client.subscribe(subject, cb=cb)
    try:
        await client.flush(timeout=FLUSH_TIMEOUT)
    except BaseException:
        # A cancelled task may still await: the cancel has been delivered once.
        await unsubscribe_quietly(sub)
        raise
    return sub


async def unsubscribe_quietly(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except nats.errors.Error as exc:  # closed or draining: the SUB is gone already
        log.debug("unsubscribe after the connection went away: %s", describe(exc))


async def publish_flushed(client: Client, subject: str, data: bytes) -> None:
    """A core publish that the server has processed when this returns. nats-py's own
    ``publish`` only fills a buffer (and keeps buffering while reconnecting), so without
    the flush "returned" would not mean "sent"."""
    await client.publish(subject, data)
    await client.flush(timeout=FLUSH_TIMEOUT)


async def drain_quietly(client: Client) -> None:
    """Drain the connection; close it if even that fails (the server is gone)."""
    try:
        await client.drain()
    except (TimeoutError, nats.errors.Error) as exc:
        log.debug("drain failed, closing: %s", describe(exc))
        await client.close()
