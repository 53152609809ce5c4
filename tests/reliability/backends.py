"""The app over either backend, behind the switchable fault wrapper: the memory
deployment, or the real NATS adapters on the session nats-server reached through a
TcpProxy, so that a test can drop or stall the real connection.

The NATS deployment here answers within ``REQUEST_TIMEOUT`` while NATS is away; the
streams a test created are deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from roomkeeper.adapters.faults import CallLog, Faults, wrap_deployment
from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.adapters.nats import open_connection
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.core import BackendUnavailable
from roomkeeper.ports import Deployment
from tests.reliability.harness import AUTHORITY, Caller, wait_until
from tests.reliability.proxy import TcpProxy

__all__ = ["REQUEST_TIMEOUT", "Stack", "open_stack"]

#: Seconds a NATS request may take here: what a stalled link costs a request.
REQUEST_TIMEOUT = 0.5


@dataclass
class Stack:
    backend: str
    #: The deployment without the wrapper: what is really stored, for the checks.
    inner: Deployment
    faults: Faults
    log: CallLog
    alice: Caller
    bob: Caller
    #: Between roomkeeper and NATS (None on memory).
    proxy: TcpProxy | None

    async def ready(self) -> bool:
        try:
            await self.inner.check_ready()
        except BackendUnavailable:
            return False
        return True

    async def wait_ready(self, within: float = 10.0) -> float:
        return await wait_until(self.ready, within=within, what=f"{self.backend} ready")


@asynccontextmanager
async def open_stack(backend: str, nats_server: Any = None) -> AsyncIterator[Stack]:
    faults, log = Faults(), CallLog()
    async with _deployment(backend, nats_server) as (inner, proxy):
        app = create_app(wrap_deployment(inner, faults, log), public_authority=AUTHORITY)
        async with app.test_app() as test_app:
            client = test_app.test_client()
            stack = Stack(backend, inner, faults, log, Caller(client), Caller(client), proxy)
            try:
                yield stack
            finally:
                with trio.CancelScope(shield=True):
                    await _forget_rooms(stack)


async def _forget_rooms(stack: Stack) -> None:
    """The session server's KV outlives the test: drop the records it wrote."""
    if stack.proxy is not None:
        stack.proxy.resume()
        await stack.wait_ready()
    for caller in (stack.alice, stack.bob):
        for room in await stack.inner.rooms.list_by_member(caller.keyid):
            await stack.inner.rooms.delete(room.id)


@asynccontextmanager
async def _deployment(
    backend: str, nats_server: Any
) -> AsyncIterator[tuple[Deployment, TcpProxy | None]]:
    if backend == "memory":
        yield memory_deployment(), None
        return
    assert backend == "nats", backend
    proxy = TcpProxy(nats_server.port)
    async with trio.open_nursery() as nursery, removing_new_streams(nats_server.url):
        await nursery.start(proxy.serve)
        async with open_nats_deployment(proxy.url, connect_timeout=2,
                                        request_timeout=REQUEST_TIMEOUT) as deployment:
            yield deployment, proxy
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def removing_new_streams(url: str) -> AsyncIterator[None]:
    """Delete the streams created inside the block (directly, not through the proxy)."""
    async with open_connection(url, connect_timeout=2) as conn:

        async def names() -> set[str]:
            return {info.config.name for info in await conn.js.streams_info()}

        before = await conn.call(names)
        try:
            yield
        finally:
            with trio.CancelScope(shield=True):
                for name in await conn.call(names) - before:
                    await conn.call(conn.js.delete_stream, name)
