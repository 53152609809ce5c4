"""The contract suites' "nats" backend: every port on one connection to the session
nats-server (tests/contract/conftest.py lists it next to "memory").

Time is real here: ``advance`` sleeps, so the suites keep every age at a second or two.
Streams and KV buckets the test created are deleted afterwards.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.bus import NatsBus
from roomkeeper.adapters.nats.nonces import open_nonce_store
from roomkeeper.adapters.nats.rooms import open_room_store
from roomkeeper.adapters.nats.streams import NatsStreamStore
from tests.contract.backend import Backend

__all__ = ["nats_backend"]


async def _stream_names(conn: NatsConnection) -> set[str]:
    async def names() -> set[str]:
        return {info.config.name for info in await conn.js.streams_info()}

    return await conn.call(names)


@asynccontextmanager
async def nats_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    server = request.getfixturevalue("nats_server")
    async with open_connection(server.url, connect_timeout=2) as conn:
        before = await _stream_names(conn)
        try:
            yield Backend(
                streams=NatsStreamStore(conn),
                rooms=await open_room_store(conn),
                nonces=await open_nonce_store(conn),
                bus=NatsBus(conn),
                now=time.time,
                advance=trio.sleep,
            )
        finally:
            with trio.CancelScope(shield=True):
                for name in await _stream_names(conn) - before:
                    await conn.call(conn.js.delete_stream, name)
