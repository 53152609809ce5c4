"""Following a room: its history, then its live frames, with no gap and no duplicate.

The order of operations is what closes the seam between the two:

1. Subscribe to the room's subject first, and buffer what arrives (unbounded, in a
   background task, so a long backlog read cannot make the subscription drop frames).
2. Then read the history: backwards from the newest frame with ``before`` until the
   backlog asked for is covered, then forwards with ``after`` from the newest frame seen
   until the server has nothing newer. The forward pass picks up what was stored while
   the backward pass ran.
3. Yield the history, oldest to newest; then the buffered live frames; then live frames
   as they arrive.

Every frame published after step 1 arrives live, and every frame stored before step 2
finishes is in the history; a frame in both is yielded once, because frames are
de-duplicated by nonce. De-duplication happens *after* verification, so a forged frame
that copies a real frame's nonce cannot suppress the real one. Frames that fail
verification are never yielded; they are listed in ``Follower.rejected``.

The live source is any ``LiveFeed``: ``RoomsNats`` (core NATS, as a browser would),
``SubjectFeed`` around anything with a Bus-like ``subscribe(subject)``, such as the
in-memory deployment's bus, or ``PollingFeed``, which polls the history over HTTP for
clients that cannot reach NATS (persisted rooms only: it sees what the stream stores).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol

import trio

from roomkeeper.core import MAX_LIMIT, RoomId, subject_for_room

from .history import Origin, ReceivedMessage, RejectedFrame, open_frame_or_reject
from .http import RoomsClient

__all__ = [
    "DEFAULT_BACKLOG",
    "Follower",
    "LiveFeed",
    "PollingFeed",
    "SubjectFeed",
    "SubjectSubscriber",
    "follow_room",
    "read_backlog",
]

#: Frames of history a follower starts with, unless told otherwise.
DEFAULT_BACKLOG: Final = 200


class LiveFeed(Protocol):
    def subscribe_room(
        self, room_id: RoomId
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """Frames published in the room from now on: by the time the context is
        entered, nothing published later can be missed."""
        ...


class SubjectSubscriber(Protocol):
    def subscribe(self, subject: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]: ...


class SubjectFeed:
    """A LiveFeed over anything that subscribes by subject (the ``Bus`` port's shape)."""

    def __init__(self, subscriber: SubjectSubscriber) -> None:
        self._subscriber = subscriber

    def subscribe_room(
        self, room_id: RoomId
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._subscriber.subscribe(subject_for_room(room_id))


class PollingFeed:
    """A LiveFeed that polls ``history?after=`` every ``interval`` seconds. The stream
    sequence is the cursor, so nothing stored is skipped; frames come late by up to
    ``interval``, and a room without history yields nothing."""

    def __init__(self, client: RoomsClient, interval: float = 1.0,
                 page_size: int = MAX_LIMIT) -> None:
        self._client = client
        self._interval = interval
        self._page_size = page_size

    @asynccontextmanager
    async def subscribe_room(self, room_id: RoomId) -> AsyncIterator[AsyncIterator[bytes]]:
        # "From now on" means after the newest frame stored at this moment.
        newest = (await self._client.history(room_id, limit=1)).last_seq or 0
        send, receive = trio.open_memory_channel[bytes](math.inf)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._poll, room_id, newest, send)
            try:
                yield receive
            finally:
                nursery.cancel_scope.cancel()

    async def _poll(self, room_id: RoomId, after: int,
                    send: trio.MemorySendChannel[bytes]) -> None:
        while True:
            page = await self._client.history(room_id, limit=self._page_size, after=after)
            for frame in page.frames:
                send.send_nowait(frame)
            after = page.last_seq or after
            if not page.has_more:
                await trio.sleep(self._interval)


async def read_backlog(client: RoomsClient, room_id: str,
                       backlog: int | None = DEFAULT_BACKLOG, *,
                       page_size: int = MAX_LIMIT) -> list[bytes]:
    """The newest ``backlog`` frames (None: all of them) plus whatever was stored while
    they were read, oldest to newest, reading at most ``page_size`` frames a request."""
    if backlog is not None and backlog <= 0:
        return []
    pages = [page async for page in
             client.iter_history(room_id, page_size, max_frames=backlog)]
    frames = [frame for page in reversed(pages) for frame in page.frames]
    # Pages come newest first; with none at all, the forward pass reads from the start.
    newest = (pages[0].last_seq or 0) if pages else 0
    frames.extend(await _read_forwards(client, room_id, newest, page_size))
    return frames


async def _read_forwards(client: RoomsClient, room_id: str, after: int,
                         page_size: int) -> list[bytes]:
    frames: list[bytes] = []
    while True:
        page = await client.history(room_id, limit=page_size, after=after)
        frames.extend(page.frames)
        if not page.has_more or page.last_seq is None:
            return frames
        after = page.last_seq


class Follower:
    """An async iterator of ``ReceivedMessage``: the backlog, then live messages, each
    once. It ends when the live feed ends; usually the caller stops it by leaving the
    ``follow_room`` block."""

    def __init__(self, backlog: list[bytes], live: trio.MemoryReceiveChannel[bytes],
                 room_id: str, room_key: bytes) -> None:
        self._backlog = deque(backlog)
        self._live = live
        self._room_id = room_id
        self._room_key = room_key
        self._seen: set[bytes] = set()
        #: Frames that failed verification, in the order they were met.
        self.rejected: list[RejectedFrame] = []
        #: Frames that were dropped as already seen (the history/live overlap).
        self.duplicates = 0

    def __aiter__(self) -> Follower:
        return self

    async def __anext__(self) -> ReceivedMessage:
        while True:
            frame, origin = await self._next_frame()
            message = self._accept(frame, origin)
            if message is not None:
                return message

    async def _next_frame(self) -> tuple[bytes, Origin]:
        if self._backlog:
            await trio.lowlevel.checkpoint()
            return self._backlog.popleft(), "history"
        try:
            return await self._live.receive(), "live"
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def _accept(self, frame: bytes, origin: Origin) -> ReceivedMessage | None:
        result = open_frame_or_reject(frame, self._room_key, self._room_id, origin)
        if isinstance(result, RejectedFrame):
            self.rejected.append(result)
            return None
        if result.nonce in self._seen:
            self.duplicates += 1
            return None
        self._seen.add(result.nonce)
        return result


@asynccontextmanager
async def follow_room(client: RoomsClient, feed: LiveFeed, room_id: RoomId, room_key: bytes,
                      *, backlog: int | None = DEFAULT_BACKLOG,
                      page_size: int = MAX_LIMIT) -> AsyncIterator[Follower]:
    """Subscribe, read the backlog, and yield a ``Follower`` (see the module doc).
    ``backlog`` is how many frames of history to start with; None means all of them."""
    send, receive = trio.open_memory_channel[bytes](math.inf)
    async with feed.subscribe_room(room_id) as live, trio.open_nursery() as nursery:
        nursery.start_soon(_pump, live, send)
        frames = await read_backlog(client, room_id, backlog, page_size=page_size)
        try:
            yield Follower(frames, receive, room_id, room_key)
        finally:
            nursery.cancel_scope.cancel()


async def _pump(live: AsyncIterator[bytes], send: trio.MemorySendChannel[bytes]) -> None:
    async with send:
        async for frame in live:
            send.send_nowait(frame)
