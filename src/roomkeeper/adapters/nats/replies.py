"""Batch-read replies taken before nats-py parses their headers. Runs on the bridge loop.

Why: a batch direct get answers one message per stored message, each carrying six
headers (``Nats-Stream``, ``Nats-Subject``, ``Nats-Sequence``, ``Nats-Time-Stamp``,
``Nats-Num-Pending``, ``Nats-Last-Sequence``). For each one nats-py parses the whole
header block into a dict (``Client._process_headers``), builds a ``Msg``, puts it on the
subscription's queue, and the subscription's task then awaits the callback. Profiled
on 1000 replies of 256 B, the header parse alone was about 60% of the read and the
queue and task hand-off another 10%. A batch read needs one header of a stored
message: its ``Nats-Sequence``.

How: nats-py's protocol parser hands every message to ``Client._process_msg(sid,
subject, reply, data, headers)``, with the payload and the header block already split
apart as bytes. ``route_raw`` wraps that method on one client instance (once), so that
messages of a routed subscription go straight to its ``RawReplies`` without a parse,
a ``Msg`` or a queue; every other subscription goes through nats-py untouched. Status
replies (``NATS/1.0 204 EOB``, ``404``, ``503``, ...) come once per round: the target
declines them, and they go through nats-py's own header parser after all, so their
reading cannot drift from nats-py's.

When this nats-py has no such method, ``route_raw`` says so and the caller keeps its
ordinary subscription callback: the same answers, only slower. The tests compare the
two paths on the same data.
"""

from __future__ import annotations

import inspect
from typing import Protocol

from nats.aio.client import Client

__all__ = [
    "RawReplies",
    "has_header",
    "header_int",
    "is_status",
    "route_raw",
    "stored_sequence",
]

#: ``NATS/1.0`` is followed by a space only in a status line (``NATS/1.0 204 EOB``):
#: the test nats-py makes (``_process_headers``), at the same offset.
_STATUS_MARK_AT = len(b"NATS/1.0")
_HOOK_PARAMETERS = ["self", "sid", "subject", "reply", "data", "headers"]
_SEQUENCE_LINE = b"\r\nNats-Sequence:"


class RawReplies(Protocol):
    """Where a routed subscription's messages go. Called on the loop, inside nats-py's
    read loop: an exception here would end the connection, so implementations must
    not raise."""

    def on_raw(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
        """A message with its raw header block (``NATS/1.0\r\nName: value\r\n...``,
        None when there is none). False: parse it after all, and pass it to on_parsed."""

    def on_parsed(self, subject: bytes, headers: dict[str, str], data: bytes) -> None:
        """A message on_raw declined, its headers parsed by nats-py as for any
        subscription (a status line gives ``Status`` and ``Description``)."""


def is_status(headers: bytes | None) -> bool:
    return headers is not None and headers[_STATUS_MARK_AT:_STATUS_MARK_AT + 1] == b" "


def has_header(headers: bytes | None, name: bytes) -> bool:
    return headers is not None and b"\r\n" + name + b":" in headers


def header_int(headers: bytes | None, name: bytes) -> int | None:
    """The value of header ``name`` as an int, None when absent. When the name occurs
    more than once the last one counts, as in nats-py's dict (the server appends its
    own headers after any the publisher stored). ValueError when it is not a number."""
    if headers is None:
        return None
    return _last_int(headers, b"\r\n" + name + b":")


def stored_sequence(headers: bytes | None) -> int | None:
    """``Nats-Sequence`` of a reply that is not a status reply, else None: header_int
    and is_status in one call, for the one header read on every stored message."""
    if headers is None or headers[_STATUS_MARK_AT:_STATUS_MARK_AT + 1] == b" ":
        return None
    return _last_int(headers, _SEQUENCE_LINE)


def _last_int(headers: bytes, line_start: bytes) -> int | None:
    at = headers.rfind(line_start)
    if at < 0:
        return None
    start = at + len(line_start)
    end = headers.find(b"\r\n", start)
    # int() takes ASCII digits from bytes and ignores the surrounding whitespace, as
    # nats-py's strip() does.
    return int(headers[start:end] if end >= 0 else headers[start:])


def route_raw(client: Client, sid: int, target: RawReplies) -> bool:
    """Deliver the messages of subscription ``sid`` to ``target`` from now on. False
    when this nats-py offers no hook point: the subscription's own callback then keeps
    receiving them."""
    router = _router(client)
    if router is None:
        return False
    router.routes[sid] = target
    return True


def _router(client: Client) -> _Router | None:
    current = getattr(client, "_process_msg", None)
    if isinstance(current, _Router):
        return current
    if not _hookable(client):
        return None
    router = _Router(client)
    # An instance attribute: the parser calls self.nc._process_msg, which finds it first.
    setattr(client, "_process_msg", router)  # noqa: B010 - mypy refuses assigning a method
    return router


def _hookable(client: Client) -> bool:
    method = getattr(type(client), "_process_msg", None)
    if method is None or not inspect.iscoroutinefunction(method):
        return False
    parameters = list(inspect.signature(method).parameters)
    return (parameters == _HOOK_PARAMETERS
            and inspect.iscoroutinefunction(getattr(client, "_process_headers", None))
            and isinstance(getattr(client, "stats", None), dict))


class _Router:
    """Client._process_msg for one client: routed sids first, nats-py for the rest."""

    def __init__(self, client: Client) -> None:
        self.routes: dict[int, RawReplies] = {}
        self._original = client._process_msg
        self._parse_headers = client._process_headers
        self._stats = client.stats

    async def __call__(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        target = self.routes.get(sid)
        if target is None:
            await self._original(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        # The counters nats-py keeps for every message it processes.
        self._stats["in_msgs"] += 1
        self._stats["in_bytes"] += len(data)
        if not target.on_raw(subject, headers, data):
            target.on_parsed(subject, await self._parse_headers(headers) or {}, data)
