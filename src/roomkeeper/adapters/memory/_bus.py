"""MemoryBus: core NATS publish/subscribe over the shared MemoryServer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio.lowlevel import checkpoint

from ._server import MemoryServer

__all__ = ["DEFAULT_SUBSCRIPTION_BUFFER", "MemoryBus", "Subscription"]

#: Frames a subscriber may fall behind by before new frames are dropped for it.
DEFAULT_SUBSCRIPTION_BUFFER = 1024


class Subscription:
    """The frames published on one subscribed subject, in order.

    Publishers never wait for subscribers (core NATS is fire-and-forget). When this
    subscriber's buffer is full, further frames are dropped for it alone and counted
    in ``dropped``, as the NATS server does to a slow consumer.
    """

    def __init__(self, buffer: int) -> None:
        self._send, self._receive = trio.open_memory_channel[bytes](buffer)
        self.dropped = 0

    def offer(self, data: bytes) -> None:
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            self.dropped += 1

    def close(self) -> None:
        # Only the sending side: a reader still drains what was buffered, then its
        # iteration ends instead of failing.
        self._send.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class MemoryBus:
    def __init__(self, server: MemoryServer, *, buffer: int = DEFAULT_SUBSCRIPTION_BUFFER) -> None:
        self._server = server
        self._buffer = buffer

    async def publish(self, subject: str, data: bytes) -> None:
        await checkpoint()
        self._server.publish(subject, data)

    @asynccontextmanager
    async def subscribe(self, subject: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(self._buffer)
        token = self._server.subscribe(subject, subscription.offer)
        try:
            await checkpoint()
            yield subscription
        finally:
            self._server.unsubscribe(token)
            subscription.close()
