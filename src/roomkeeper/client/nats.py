"""``RoomsNats``: put frames into rooms and watch them live, over NATS, from Trio.

Subjects and stream names come from the core (``subject_for_room``,
``stream_name_for_room``, R8), never from a copy here. Two ways to publish:

- ``publish``: a plain core-NATS publish, as a browser client does. No JetStream call
  at all; the room's stream captures it all the same (R3).
- ``publish_jetstream``: a JetStream publish that waits for the stream's ack and returns
  the sequence. It carries ``Nats-Msg-Id`` = the frame nonce in hex, so a retry within
  the stream's duplicate window is stored once.

(The third way, through the server, is ``RoomsClient.publish``.)

nats-py is asyncio-only: it runs on a private loop thread (``_aio.LoopThread``, the
same crossing the server's bridge uses); each operation crosses once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final, TypeVar, TypeVarTuple

import nats.js.errors
import trio
from nats.aio.client import Client
from nats.aio.msg import Msg

from roomkeeper.core import (
    BackendUnavailable,
    NotFound,
    RoomId,
    stream_name_for_room,
    subject_for_room,
)

from ._aio import DEFAULT_BUFFER, LoopThread, TrioInbox
from ._natsio import UNAVAILABLE, drain_quietly, forward_subscription, publish_flushed
from .errors import ServerUnreachable, describe
from .frames import MIN_FRAME_BYTES, NONCE_BYTES

__all__ = ["DEFAULT_NATS_URL", "LiveFrames", "RoomsNats", "frame_msg_id"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_NATS_URL: Final = "nats://127.0.0.1:4222"
#: Seconds to wait for a flush or a JetStream ack.
REQUEST_TIMEOUT: Final = 5
#: Where the nonce sits in a version 1 frame (see ``roomkeeper.client.frames``).
_NONCE_AT: Final = 1 + 32


def frame_msg_id(frame: bytes) -> str:
    """The ``Nats-Msg-Id`` of a frame: its 24-byte nonce in hex. Unique per frame, and
    the same for every retry of it."""
    if len(frame) < MIN_FRAME_BYTES:
        raise ValueError("not a frame: too short to hold a nonce")
    return frame[_NONCE_AT:_NONCE_AT + NONCE_BYTES].hex()


class RoomsNats:
    """One NATS connection for room frames. Make it with ``RoomsNats.connect(url)``."""

    def __init__(self, loop: LoopThread, client: Client, url: str) -> None:
        self._loop = loop
        self._client = client
        self._url = url

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str = DEFAULT_NATS_URL, *, name: str = "roomkeeper-client",
                      connect_timeout: float = 5.0) -> AsyncIterator[RoomsNats]:
        """Connected for the duration of the block, drained on exit. A server that does
        not answer within ``connect_timeout`` is ``ServerUnreachable``."""
        loop = LoopThread("roomkeeper-client-nats")
        loop.start()
        try:
            client = await loop.call(_connect, url, name, connect_timeout)
            try:
                yield cls(loop, client, url)
            finally:
                with trio.move_on_after(loop.cleanup_timeout, shield=True):
                    await loop.call(drain_quietly, client)
        finally:
            loop.close()

    @property
    def url(self) -> str:
        return self._url

    async def publish(self, room_id: RoomId, frame: bytes) -> None:
        """A core-NATS publish on the room's subject, flushed: when this returns the
        server has the frame. No JetStream involved."""
        subject = subject_for_room(room_id)
        await self._call(publish_flushed, self._client, subject, frame)

    async def publish_jetstream(self, room_id: RoomId, frame: bytes) -> int:
        """A JetStream publish into the room's stream; the stream sequence once stored.
        ``NotFound(code="stream_not_found")`` when the room has no stream (ephemeral, or
        no JetStream on the server)."""
        headers = {"Nats-Msg-Id": frame_msg_id(frame)}
        js = self._client.jetstream(timeout=REQUEST_TIMEOUT)
        try:
            ack = await self._call(js.publish, subject_for_room(room_id), frame,
                                   REQUEST_TIMEOUT, stream_name_for_room(room_id), headers)
        except nats.js.errors.NoStreamResponseError:
            raise NotFound(f"room {room_id} has no stream", code="stream_not_found") from None
        seq: int = ack.seq
        return seq

    @asynccontextmanager
    async def subscribe_room(self, room_id: RoomId, *, buffer: float = DEFAULT_BUFFER,
                             ) -> AsyncIterator[LiveFrames]:
        """Frames published on the room's subject from now on (the subscription is
        registered with the server before this yields), until the block exits. At most
        ``buffer`` frames wait for the reader; more are dropped and counted in
        ``dropped`` (``follow_room`` keeps reading, so it never falls that far behind)."""
        subject = subject_for_room(room_id)
        async with forward_subscription(self._loop, self._client, subject, buffer=buffer,
                                        errors=self._unavailable) as inbox:
            yield LiveFrames(inbox)

    async def _call(self, fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
        with self._unavailable():
            return await self._loop.call(fn, *args)

    @contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except UNAVAILABLE as exc:
            raise BackendUnavailable(f"NATS at {self._url}: {describe(exc)}",
                                     code="nats_unavailable") from exc


class LiveFrames:
    """The frames of one room subscription, in order. ``dropped`` counts frames lost
    because the reader fell ``buffer`` frames behind."""

    def __init__(self, inbox: TrioInbox[Msg]) -> None:
        self._inbox = inbox

    @property
    def dropped(self) -> int:
        return self._inbox.dropped

    def __aiter__(self) -> LiveFrames:
        return self

    async def __anext__(self) -> bytes:
        try:
            msg = await self._inbox.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        data: bytes = msg.data
        return data


async def _connect(url: str, name: str, deadline: float) -> Client:
    """A connected client. nats-py would retry a first connection until ``deadline``;
    a client is better off hearing at once that the server refused, so the first error
    reported before the connection is up ends the attempt."""
    client = Client()
    first_error: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        if not first_error.done():
            first_error.set_result(exc)

    connecting = asyncio.ensure_future(client.connect(
        url, name=name, error_cb=on_error, allow_reconnect=True, max_reconnect_attempts=-1,
        reconnect_time_wait=1, connect_timeout=max(1, round(deadline))))
    racing: set[asyncio.Future[Any]] = {connecting, first_error}
    try:
        await asyncio.wait(racing, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        # Cancelled: the connect runs as its own task, which would go on retrying.
        await _give_up(client, connecting)
        raise
    if connecting.done() and connecting.exception() is None:
        first_error.cancel()  # later errors are reconnects: nats-py handles those
        return client
    await _give_up(client, connecting)
    raise ServerUnreachable(url, _failure(first_error, connecting, deadline))


async def _give_up(client: Client, connecting: asyncio.Future[None]) -> None:
    connecting.cancel()
    await asyncio.gather(connecting, return_exceptions=True)
    await client.close()


def _failure(first_error: asyncio.Future[Exception], connecting: asyncio.Future[None],
             deadline: float) -> str:
    if first_error.done() and not first_error.cancelled():
        return describe(first_error.result())
    error = None if connecting.cancelled() else connecting.exception()
    if error is not None:
        return describe(error)
    return f"no answer within {deadline:g}s"
