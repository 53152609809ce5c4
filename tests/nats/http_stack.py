"""The HTTP app on a real NATS deployment, and NATS clients that are not roomkeeper.

``open_api(url)`` serves ``create_app`` on ``open_nats_deployment(url)`` through Quart's
test client, with two callers (alice and bob) whose keys are fresh for each test, so
that rooms other tests left in the session server's KV never show up. The room records
the callers made are deleted on exit; the streams are left to the ``nats_conn`` fixture,
which deletes every stream a test created.

``plain_publish`` is a client with nothing of roomkeeper in it: its own nats-py
connection on its own asyncio loop (in a worker thread), core publishes only, as a
browser on the websocket port would do.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import nats
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.nats import NatsConnection
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.client.signer import RequestSigner
from roomkeeper.core import RoomId, StreamLimits, stream_name_for_room
from roomkeeper.ports import Deployment
from tests.http.conftest import AUTHORITY, ApiClient, Reply

__all__ = [
    "Reply",
    "Stack",
    "decode",
    "fill",
    "frames",
    "open_api",
    "plain_publish",
    "wait_for_messages",
]

#: Seconds a JetStream request may take here: a NATS that is away costs at most this.
REQUEST_TIMEOUT = 1.0


@dataclass
class Stack:
    api: ApiClient
    deployment: Deployment

    async def create_room(self, mode: str = "matrix") -> str:
        room = await self.api.create_room("on nats", mode=mode)
        room_id: str = room["id"]
        return room_id

    async def page(self, room_id: str, query: str = "", *, as_: str = "alice") -> dict[str, Any]:
        reply = await self.api.history(room_id, query, as_=as_)
        assert reply.status == 200, reply
        page: dict[str, Any] = reply.json()
        return page

    async def frames(self, room_id: str, query: str = "") -> list[bytes]:
        return decode((await self.page(room_id, query))["messages"])


def decode(messages: list[str]) -> list[bytes]:
    return [base64.b64decode(m, validate=True) for m in messages]


@asynccontextmanager
async def open_api(url: str, *, limits: StreamLimits | None = None) -> AsyncIterator[Stack]:
    signers = {who: RequestSigner(os.urandom(32), authority=AUTHORITY) for who in ("alice", "bob")}
    async with open_nats_deployment(url, limits=limits or StreamLimits(), connect_timeout=2,
                                    request_timeout=REQUEST_TIMEOUT) as deployment:
        app = create_app(deployment, public_authority=AUTHORITY)
        async with app.test_app() as test_app:
            stack = Stack(ApiClient(test_app.test_client(), deployment, signers), deployment)
            try:
                yield stack
            finally:
                with trio.CancelScope(shield=True):
                    await _forget_rooms(deployment, signers)


async def _forget_rooms(deployment: Deployment, signers: dict[str, RequestSigner]) -> None:
    """The session server's KV outlives the test; a NATS that is down keeps its rooms."""
    try:
        await deployment.check_ready()
    except Exception:
        return
    for signer in signers.values():
        for room in await deployment.rooms.list_by_member(signer.keyid):
            await deployment.rooms.delete(room.id)


def frames(count: int, size: int = 24) -> list[bytes]:
    """Distinct frames, not valid UTF-8, with a zero byte: opaque bytes, as R9 says."""
    return [b"\x00\xff" + i.to_bytes(4, "big") + os.urandom(size - 6) for i in range(count)]


async def fill(conn: NatsConnection, room_id: str, data: Sequence[bytes]) -> int:
    """Core publishes into the room's subject, the last one as a request: JetStream
    acks it once stored, and a stream stores in order, so the ack (its seq returned)
    means every frame is in."""

    async def publish_all() -> int:
        subject = f"rooms.{room_id}"
        for frame in data[:-1]:
            await conn.client.publish(subject, frame)
        reply = await conn.client.request(subject, data[-1], timeout=5)
        ack = json.loads(reply.data)
        assert ack["stream"] == stream_name_for_room(RoomId(room_id)), ack
        return int(ack["seq"])

    return await conn.call(publish_all)


async def plain_publish(url: str, subject: str, data: Sequence[bytes]) -> None:
    """Core NATS publishes from a client of its own: no JetStream, no roomkeeper."""

    async def publish() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            for frame in data:
                await nc.publish(subject, frame)
            await nc.flush(timeout=2)
        finally:
            await nc.close()

    await trio.to_thread.run_sync(lambda: asyncio.run(publish()))


async def wait_for_messages(stack: Stack, room_id: str, count: int,
                            within: float = 2.0) -> dict[str, Any]:
    """A plain publish has no ack: the history page, once it holds ``count`` frames."""
    with trio.fail_after(within):
        while True:
            page = await stack.page(room_id, f"limit={max(count, 1)}")
            if len(page["messages"]) >= count:
                return page
            await trio.sleep(0.01)

