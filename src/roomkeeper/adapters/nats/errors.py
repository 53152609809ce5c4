"""nats-py errors -> core errors, in one place.

Adapters signal an unreachable backend with BackendUnavailable (ports.py). What counts
as "unreachable": the connection is closed, lost, reconnecting or draining; no server
answers; a request or flush timed out; JetStream says it is unavailable or nobody answers
its API subject; a cluster cannot place a replicated stream because a peer is offline.
A publish that no stream captures is NotFound(code="stream_not_found").
Everything else propagates unchanged: it is a bug, and hiding it as a 503 would make it
look like an outage.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from roomkeeper.core import BackendUnavailable, NotFound

__all__ = [
    "JS_NO_PEERS_FOR_PLACEMENT",
    "JS_STREAM_NAME_IN_USE",
    "JS_STREAM_NOT_FOUND",
    "JS_SUBJECTS_OVERLAP",
    "UNAVAILABLE",
    "check_connected",
    "describe",
    "is_stream_not_found",
    "translate_errors",
    "translate_kv_errors",
]

#: JetStream err_code: "stream not found".
JS_STREAM_NOT_FOUND = 10059
#: JetStream err_code: "stream name already in use with a different configuration".
JS_STREAM_NAME_IN_USE = 10058
#: JetStream err_code: "subjects overlap with an existing stream".
JS_SUBJECTS_OVERLAP = 10065
#: JetStream err_code: "no suitable peers for placement". A cluster answers it (as a 400)
#: to a replicated stream create while a node is down: an outage, not a bad request.
JS_NO_PEERS_FOR_PLACEMENT = 10005

#: Exceptions that mean "the backend did not answer" rather than "we did something wrong".
UNAVAILABLE: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
    TimeoutError,  # asyncio.TimeoutError is the same class on 3.11
    ConnectionError,
)


def describe(exc: BaseException) -> str:
    """A one-line description that keeps the exception type (nats-py messages alone are
    often just "nats: timeout")."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_connected(client: Client) -> None:
    """Fail fast while the client is not connected. nats-py would buffer a request
    through a reconnect and the caller would wait out its whole timeout; a quick 503
    with Retry-After serves an HTTP caller better."""
    if client.is_closed:
        raise nats.errors.ConnectionClosedError
    if not client.is_connected:
        raise nats.errors.ConnectionReconnectingError


def is_stream_not_found(exc: BaseException) -> bool:
    return isinstance(exc, nats.js.errors.APIError) and exc.err_code == JS_STREAM_NOT_FOUND


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Map nats-py errors raised inside the block; ``what`` names the operation in the
    message, e.g. ``"fetch ROOM_x"``."""
    try:
        yield
    except nats.js.errors.NoStreamResponseError as exc:
        # nats-py's name for "no responders" on a JetStream publish: nothing captures
        # the subject.
        raise NotFound(f"{what}: no stream captures the subject",
                       code="stream_not_found") from exc
    except UNAVAILABLE as exc:
        raise BackendUnavailable(f"{what}: {describe(exc)}") from exc
    except nats.js.errors.APIError as exc:
        if exc.err_code == JS_NO_PEERS_FOR_PLACEMENT:
            raise BackendUnavailable(f"{what}: {describe(exc)}") from exc
        raise


@contextmanager
def translate_kv_errors(what: str) -> Iterator[None]:
    """translate_errors for writes to a KV bucket, which exists (it is ensured at
    startup). No stream answering the bucket's subject means its stream has no leader
    right now, as while a cluster elects one: an outage, not a missing stream."""
    with translate_errors(what):
        try:
            yield
        except nats.js.errors.NoStreamResponseError as exc:
            raise BackendUnavailable(f"{what}: the KV bucket's stream did not answer") from exc
