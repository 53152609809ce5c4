"""NatsBus: the Bus port on core NATS (no JetStream ack).

Flush policy: ``publish`` returns once the server has processed the message. nats-py's
own ``publish`` only appends to a client-side buffer that a background task writes out
later, and while reconnecting it keeps buffering without complaint; returning then would
report success for a frame that may never leave the process. So each publish is followed
by a flush (PING/PONG) in the same crossing: one extra loopback round trip, which is
small next to the HTTP request that carries the frame, and a flush that cannot complete
becomes BackendUnavailable. A stream that captures the subject has received the message
by then, though storing it is asynchronous on the server, so an immediate stream info
may not count it yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ...client._natsio import publish_flushed
from ...client.nats import LiveFrames
from .bridge import DEFAULT_SUBSCRIPTION_BUFFER, NatsConnection
from .errors import translate_errors

__all__ = ["NatsBus"]


class NatsBus:
    def __init__(
        self, conn: NatsConnection, *, buffer: int = DEFAULT_SUBSCRIPTION_BUFFER
    ) -> None:
        self._conn = conn
        self._buffer = buffer

    async def publish(self, subject: str, data: bytes) -> None:
        with translate_errors(f"publish to {subject}"):
            await self._conn.call(publish_flushed, self._conn.client, subject, data)

    @asynccontextmanager
    async def subscribe(self, subject: str) -> AsyncIterator[LiveFrames]:
        bridge = self._conn.bridge
        async with bridge.subscribe(self._conn.client, subject, buffer=self._buffer) as sub:
            # The client's reader: it counts drops and ends when the subscription does.
            yield LiveFrames(sub)
