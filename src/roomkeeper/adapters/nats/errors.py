"""nats-py errors -> core errors, in one place.

Adapters signal an unreachable backend with BackendUnavailable (ports.py). What counts
as "unreachable": the connection is closed, lost, reconnecting or draining; no server
answers; a request or flush timed out; JetStream says it is unavailable or nobody answers
its API subject; a cluster cannot place a replicated stream because a peer is offline.
A publish that no stream captures is NotFound(code="stream_not_found"). A message larger
than the NATS server's max_payload (or a stream's maximum message size) is
PayloadTooLarge.

Any other JetStream API error is a 503 too, logged at error with its err_code: an
account or server limit reached (streams, storage, memory) is for the operator to fix,
not the caller, and so is anything JetStream refuses that we do not classify. The code
tells them apart: "jetstream_limit" or "jetstream_error". Exceptions that are not NATS
errors propagate unchanged: they are bugs, and hiding them as a 503 would make them look
like an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from roomkeeper.client._natsio import UNAVAILABLE
from roomkeeper.client.errors import describe
from roomkeeper.core import BackendUnavailable, NotFound, PayloadTooLarge, RoomkeeperError

__all__ = [
    "JS_LIMITS",
    "JS_MESSAGE_TOO_LARGE",
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
#: JetStream err_code: "message size exceeds maximum allowed" (a stream's max_msg_size).
JS_MESSAGE_TOO_LARGE = 10054
#: JetStream err_codes for an account, server or stream limit: resource limits exceeded
#: for the account (10002), insufficient resources (10023), maximum consumers (10026)
#: or streams (10027) reached, insufficient memory (10028) or storage (10047), a stream
#: limit (10053), storing a message failed (10077, e.g. "maximum bytes exceeded"), the
#: account requires max_bytes (10113), no applicable limits (10120), max_bytes above
#: the account's (10122).
JS_LIMITS = frozenset(
    {10002, 10023, 10026, 10027, 10028, 10047, 10053, 10077, 10113, 10120, 10122}
)

log = logging.getLogger("roomkeeper.nats")

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
def translate_errors(what: str, *, log_refusals: bool = True) -> Iterator[None]:
    """Map nats-py errors raised inside the block; ``what`` names the operation in the
    message, e.g. ``"fetch ROOM_x"``. ``log_refusals=False`` leaves JetStream's
    refusals unlogged, for a caller that reports the failure itself (startup does, in
    one line)."""
    try:
        yield
    except nats.js.errors.NoStreamResponseError as exc:
        # nats-py's name for "no responders" on a JetStream publish: nothing captures
        # the subject.
        raise NotFound(f"{what}: no stream captures the subject",
                       code="stream_not_found") from exc
    except nats.js.errors.APIError as exc:
        # Before UNAVAILABLE: a limit can come as a 503 (ServiceUnavailableError), and
        # it must be logged for the operator all the same.
        raise _api_failure(what, exc, log_refusals) from exc
    except UNAVAILABLE as exc:
        raise BackendUnavailable(f"{what}: {describe(exc)}") from exc
    except nats.errors.MaxPayloadError as exc:
        # nats-py refuses to send it: the server announced a smaller max_payload.
        raise _too_large(what, "the NATS server's max_payload is smaller") from exc


def _api_failure(
    what: str, exc: nats.js.errors.APIError, log_refusals: bool
) -> RoomkeeperError:
    """The core error for a JetStream API error that reached a port."""
    if exc.err_code == JS_MESSAGE_TOO_LARGE:
        return _too_large(what, "the stream's maximum message size is smaller")
    if exc.err_code in JS_LIMITS:
        code = "jetstream_limit"
    elif (exc.err_code == JS_NO_PEERS_FOR_PLACEMENT
          or isinstance(exc, nats.js.errors.ServiceUnavailableError)):
        # An outage (a node down, no leader right now): it passes by itself.
        return BackendUnavailable(f"{what}: {describe(exc)}")
    else:
        code = "jetstream_error"
    if log_refusals:
        log.error("%s: JetStream refused it: status %s, err_code %s: %s",
                  what, exc.code, exc.err_code, exc.description)
    return BackendUnavailable(f"{what}: {describe(exc)}", code=code)


def _too_large(what: str, why: str) -> PayloadTooLarge:
    return PayloadTooLarge(f"{what}: the message is too large: {why}",
                           code="payload_too_large")


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
