"""The NATS deployment: every port on one NATS connection (one bridge thread).

- ``open_nats_deployment(url)``: an async context manager that connects, ensures the
  KV buckets and yields a ready Deployment; it drains the connection on exit.
- ``run_bundled_server(server)``: the bundled nats-server for the duration of a block,
  so that ``roomkeeper serve`` opens the default deployment as
  ``run_bundled_server(server)`` then ``open_nats_deployment(server.url)``.

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
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import nats.errors
import nats.js.errors
import trio

from roomkeeper.core import BackendUnavailable, StreamLimits
from roomkeeper.ports import Deployment

from .bridge import NatsConnection, open_connection
from .bus import NatsBus
from .errors import translate_errors
from .nonces import open_nonce_store
from .rooms import open_room_store
from .server import DataDirInUse, NatsServerError, NatsServerProcess
from .streams import NatsStreamStore

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "StartupError",
    "open_nats_deployment",
    "run_bundled_server",
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
        except BackendUnavailable as exc:
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


def _reason(exc: BackendUnavailable) -> str:
    cause = exc.__cause__
    if isinstance(cause, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
        # What a server without JetStream (or a cluster without a quorum) answers.
        return "JetStream is not enabled or not available there"
    if isinstance(cause, nats.js.errors.APIError) and cause.description:
        return _one_line(f"{cause.description} (JetStream err_code {cause.err_code})")
    return _one_line(exc.message)


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def check_ready(conn: NatsConnection) -> None:
    """One JetStream round trip; BackendUnavailable at once while disconnected (a
    request would otherwise wait out its timeout while nats-py reconnects)."""
    with translate_errors("readiness check"):
        await conn.call(conn.js.account_info)


@asynccontextmanager
async def run_bundled_server(server: NatsServerProcess) -> AsyncIterator[None]:
    """The bundled nats-server for the duration of the block; StartupError (one line,
    with the reason from its log) when it cannot start.

    It is launched on this thread, the Trio thread, which in ``roomkeeper serve`` is
    the main thread: that lets the server die with the process (``die_with_parent``).
    Launching takes milliseconds; waiting for it and stopping it block for longer, so
    they run in a worker thread."""
    try:
        try:
            server.launch()
            await trio.to_thread.run_sync(server.wait_ready)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(server.stop)
            raise
    except DataDirInUse as exc:
        raise StartupError(str(exc)) from exc
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
