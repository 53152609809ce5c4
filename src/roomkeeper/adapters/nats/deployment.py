"""The NATS deployment: every port on one NATS connection (one bridge thread).

Two ways in:

- ``open_nats_deployment(url)``: an async context manager that connects, ensures the
  KV buckets and yields a ready Deployment; it drains the connection on exit.
- ``nats_deployment(url)`` / ``nats_deployment(server=NatsServerProcess(...))``: a
  Deployment built synchronously whose ``lifespan`` does the above (starting the bundled
  nats-server first when one is given). This is the shape the HTTP app factory takes:
  its ports answer BackendUnavailable(code="not_connected") outside the lifespan.

Connection policy: a NATS that cannot be reached at startup is a StartupError within
``connect_timeout``, never a hang. Once connected, nats-py reconnects forever with a
short wait, so roomkeeper recovers by itself when NATS restarts; meanwhile every
JetStream request gives up after ``request_timeout`` and the ports raise
BackendUnavailable (503), and ``check_ready`` fails at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial

import nats.errors
import nats.js.errors
import trio

from roomkeeper.core import (
    BackendUnavailable,
    KeyId,
    Room,
    RoomId,
    StoredMessage,
    StreamLimits,
    StreamSpec,
    StreamState,
    VersionedRoom,
)
from roomkeeper.ports import Deployment, StreamStore

from .bridge import NatsConnection, open_connection
from .bus import NatsBus
from .errors import describe, translate_errors
from .nonces import open_nonce_store
from .rooms import open_room_store
from .server import NatsServerError, NatsServerProcess
from .streams import NatsStreamStore

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "StartupError",
    "nats_deployment",
    "open_nats_deployment",
]

#: Seconds to reach NATS at startup before giving up with a StartupError.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds a JetStream request may take: bounds how long a request hangs while NATS is
#: away before it becomes a 503.
DEFAULT_REQUEST_TIMEOUT = 3.0

_NO_LIMITS = StreamLimits()


class StartupError(RuntimeError):
    """roomkeeper cannot start on this NATS. The message is one line for the operator,
    naming the URL and the reason."""


@asynccontextmanager
async def open_nats_deployment(
    url: str,
    *,
    replicas: int = 1,
    limits: StreamLimits = _NO_LIMITS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    clock: Callable[[], float] = time.time,
    entropy: Callable[[int], bytes] = os.urandom,
) -> AsyncIterator[Deployment]:
    """A connected, ready Deployment on the NATS at ``url``. The KV buckets are
    replicated like the room streams (R8): both use ``replicas``."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    async with AsyncExitStack() as stack:
        conn = await _connect(stack, url, connect_timeout, request_timeout)
        try:
            rooms = await open_room_store(conn, replicas=replicas)
            nonces = await open_nonce_store(conn, replicas=replicas, clock=clock)
        except (BackendUnavailable, nats.js.errors.APIError) as exc:
            raise StartupError(
                f"cannot set up the JetStream KV buckets on NATS at {url}: {_reason(exc)}"
            ) from exc
        yield Deployment(
            rooms=rooms, nonces=nonces, bus=NatsBus(conn), streams=NatsStreamStore(conn),
            clock=clock, entropy=entropy, replicas=replicas, limits=limits,
            check_ready=partial(check_ready, conn),
        )


async def _connect(
    stack: AsyncExitStack, url: str, connect_timeout: float, request_timeout: float
) -> NatsConnection:
    opening = open_connection(url, connect_timeout=connect_timeout,
                              request_timeout=request_timeout)
    try:
        return await stack.enter_async_context(opening)
    except BackendUnavailable as exc:
        # The bridge's message already reads "could not connect to NATS at <url>
        # within <t>s: <cause>".
        raise StartupError(_one_line(exc.message)) from exc


def _reason(exc: BackendUnavailable | nats.js.errors.APIError) -> str:
    cause = exc.__cause__ if isinstance(exc, BackendUnavailable) else exc
    if isinstance(cause, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
        # What a server without JetStream (or a cluster without a quorum) answers.
        return "JetStream is not enabled or not available there"
    if isinstance(cause, nats.js.errors.APIError) and cause.description:
        return _one_line(f"{cause.description} (JetStream err_code {cause.err_code})")
    return _one_line(exc.message if isinstance(exc, BackendUnavailable) else describe(exc))


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def check_ready(conn: NatsConnection) -> None:
    """One JetStream round trip; BackendUnavailable at once while disconnected (a
    request would otherwise wait out its timeout while nats-py reconnects)."""
    with translate_errors("readiness check"):
        await conn.call(conn.js.account_info)


def nats_deployment(
    url: str | None = None,
    *,
    server: NatsServerProcess | None = None,
    replicas: int = 1,
    limits: StreamLimits = _NO_LIMITS,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    clock: Callable[[], float] = time.time,
    entropy: Callable[[int], bytes] = os.urandom,
) -> Deployment:
    """A Deployment whose ``lifespan`` starts ``server`` (when given), connects to
    ``url`` (default: the server's) and stops them again. Exactly one of the two."""
    opener = partial(open_nats_deployment, _target(url, server), replicas=replicas, limits=limits,
                     connect_timeout=connect_timeout, request_timeout=request_timeout,
                     clock=clock, entropy=entropy)
    slot = _Slot()

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with _running(server), opener() as live:
            slot.live = live
            try:
                yield
            finally:
                slot.live = None

    return Deployment(
        rooms=_LateRooms(slot), nonces=_LateNonces(slot), bus=_LateBus(slot),
        streams=_LateStreams(slot), clock=clock, entropy=entropy, replicas=replicas,
        limits=limits, check_ready=slot.check_ready, lifespan=lifespan,
    )


def _target(url: str | None, server: NatsServerProcess | None) -> str:
    if url is not None and server is None:
        return url
    if server is not None and url is None:
        return server.url
    raise ValueError("give either a NATS url or a server to start")


def _running(server: NatsServerProcess | None) -> AbstractAsyncContextManager[None]:
    return _run_server(server) if server is not None else _nothing()


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


@asynccontextmanager
async def _run_server(server: NatsServerProcess) -> AsyncIterator[None]:
    """The bundled nats-server for the duration; start and stop block, so they run in
    a worker thread."""
    try:
        await trio.to_thread.run_sync(server.start)
    except NatsServerError as exc:
        raise StartupError(
            f"cannot start the bundled nats-server: {_server_failure(exc)} "
            f"(log: {server.log_path})"
        ) from exc
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(server.stop)


def _server_failure(exc: NatsServerError) -> str:
    """The launcher's first line and the log line that says why, as one line. The
    launcher quotes the log's tail; a fatal or error line in it is the reason (such as
    "listen tcp 127.0.0.1:4222: bind: address already in use"), else its last line."""
    head, _, tail = str(exc).partition("\n")
    lines = [line for line in tail.splitlines() if line.strip()]
    reasons = [line for line in lines if "[FTL]" in line or "[ERR]" in line] or lines[-1:]
    if not reasons:
        return _one_line(head)
    reason = reasons[-1]
    for level in ("[FTL] ", "[ERR] "):
        reason = reason.partition(level)[2] or reason  # drop "[pid] date time [FTL] "
    return _one_line(f"{head.rstrip(':')}: {reason}")


# Ports that forward to the live deployment while the lifespan runs.


class _Slot:
    def __init__(self) -> None:
        self.live: Deployment | None = None

    def get(self) -> Deployment:
        if self.live is None:
            raise BackendUnavailable("NATS is not connected: the deployment is not running",
                                     code="not_connected")
        return self.live

    def streams(self) -> StreamStore:
        streams = self.get().streams
        assert streams is not None, "a NATS deployment always has JetStream"
        return streams

    async def check_ready(self) -> None:
        await self.get().check_ready()


class _LateRooms:
    def __init__(self, slot: _Slot) -> None:
        self._slot = slot

    async def get(self, room_id: RoomId) -> VersionedRoom | None:
        return await self._slot.get().rooms.get(room_id)

    async def put(self, room: Room, expected_revision: int | None) -> int:
        return await self._slot.get().rooms.put(room, expected_revision)

    async def delete(self, room_id: RoomId) -> None:
        await self._slot.get().rooms.delete(room_id)

    async def list_by_member(self, keyid: KeyId) -> tuple[Room, ...]:
        return await self._slot.get().rooms.list_by_member(keyid)


class _LateNonces:
    def __init__(self, slot: _Slot) -> None:
        self._slot = slot

    async def add(self, keyid: KeyId, nonce: str, expires_at: float) -> bool:
        return await self._slot.get().nonces.add(keyid, nonce, expires_at)


class _LateBus:
    def __init__(self, slot: _Slot) -> None:
        self._slot = slot

    async def publish(self, subject: str, data: bytes) -> None:
        await self._slot.get().bus.publish(subject, data)

    def subscribe(self, subject: str) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        return self._slot.get().bus.subscribe(subject)


class _LateStreams:
    def __init__(self, slot: _Slot) -> None:
        self._slot = slot

    async def ensure(self, spec: StreamSpec) -> None:
        await self._slot.streams().ensure(spec)

    async def info(self, name: str) -> StreamState | None:
        return await self._slot.streams().info(name)

    async def fetch(self, name: str, start_seq: int, count: int) -> tuple[StoredMessage, ...]:
        return await self._slot.streams().fetch(name, start_seq, count)

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        return await self._slot.streams().publish(subject, data, msg_id)

    async def delete_message(self, name: str, seq: int) -> None:
        await self._slot.streams().delete_message(name, seq)

    async def delete(self, name: str) -> None:
        await self._slot.streams().delete(name)
