"""Reading a range of a stream without a consumer (R6). Runs on the bridge loop.

Batch direct get (nats-server 2.11+, ``allow_direct`` on): one request to
``$JS.API.DIRECT.GET.<stream>`` with ``{"seq": s, "batch": n}``, answered on our inbox
by one message per stored message (headers ``Nats-Sequence`` and ``Nats-Num-Pending``),
then an empty ``204 EOB`` status carrying ``Nats-Num-Pending``. Deleted sequences are
skipped, so ``batch`` counts messages, not sequences. What the server does, from its
source (``stream.go``, ``getDirectRequest``):

- ``up_to_seq`` is honoured only by multi-subject requests, not by a sequence batch:
  we send it (harmless, and bounds the reply on a server that honours it) but filter
  by ``Nats-Sequence`` anyway; a range with k deletions reads at most k extra messages.
- The reply stops early once it has sent ``max_bytes`` of stored bytes (default: the
  server's max_pending, 64 MiB), so it may overshoot by one message. We ask for
  ``BATCH_MAX_BYTES`` and continue after the last sequence while the EOB says more is
  pending.
- ``404`` with no messages: nothing stored at or after ``seq``.
- ``408``: the request was malformed (a bug here) and propagates as an APIError.
- An old server ignores ``batch`` and answers one message without
  ``Nats-Num-Pending`` and without EOB: the caller falls back.
- ``503`` (no responders): allow_direct is off, the stream is missing, or its replicas
  are moving; the caller finds out which.

``BatchReader`` does this for one connection: one wildcard inbox subscription serves
every round (a round is one request; its replies come on a subject of their own, so a
late reply to an abandoned round never lands in another), and the replies skip
nats-py's header parsing (``replies.py``) where this nats-py allows it.

Bytes in flight. The server queues replies for a connection until it reads them, and
drops a connection with more than its max_pending (64 MiB by default) queued as a slow
consumer: eight concurrent pages of 1000 x 64 KiB frames did exactly that, and every
read timed out. So a round first takes its worst case (``max_bytes``, one more message
of the largest size the server accepts, or as many of those as it asks for if that
is less, and the headers of every message it may return) from the reader's
``IN_FLIGHT_BYTES`` budget, and gives it back when its EOB is in. Rounds beyond the
budget queue, in order, rather than fail; a page's rounds and concurrent pages
interleave under it.

Timeouts are per round and count silence, not size: a round fails once a whole
``round_timeout`` window went by without one of its replies (so between one and two
timeouts after the last one), however long a large round takes while its replies keep
coming. Time queued for the budget does not count.

Tail order. nats-server's file store drops a block's cache when a lookup reaches the
block's last message right after the one before it: the end of a sequential scan
(``filestore.go``: ``expireOk`` in ``firstMatching`` and ``fetchMsgEx``, then
``tryForceExpireCache``). A newest page is exactly such a scan of the stream's active
block, so every read of it made the next one load that block from disk again: about
3 ms of a 1000-message read here. When the range reaches the stream's last sequence
``tail`` (as the latest stream info said), it is read as three concurrent requests,
sent in this order: up to ``tail - 2``, then from ``tail``, then ``tail - 1`` alone. The
lookup of ``tail`` then never directly follows ``tail - 1``, and the block stays
cached for the next read, as it does for any read within the store's cache expiry
(10 s by default). Same messages, same page; on a server without that heuristic it
costs two small extra requests.

Get-by-sequence (the fallback): ``$JS.API.STREAM.MSG.GET`` per sequence, pipelined
with bounded concurrency, within the range that stream info reports.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
from collections.abc import Iterator
from typing import Any

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from roomkeeper.core import BackendUnavailable, StoredMessage

from .budget import ByteBudget
from .replies import has_header, route_raw, stored_sequence

__all__ = [
    "BATCH_MAX_BYTES",
    "IN_FLIGHT_BYTES",
    "BatchReader",
    "ByteBudget",
    "ReadMode",
    "fetch_by_sequence",
]

#: The ``max_bytes`` of one batch round (see the module docstring).
BATCH_MAX_BYTES = 8 * 1024 * 1024
#: Reply bytes one connection's batch rounds may have outstanding at once: well under
#: the server's default max_pending (64 MiB), so it never drops us as a slow consumer.
IN_FLIGHT_BYTES = 40 * 1024 * 1024
#: Per-message allowance for what a reply adds to the stored bytes: the server's six
#: headers and the HMSG line come to about 300 bytes.
REPLY_OVERHEAD = 512
_STATUS = "Status"
_EOB, _NOT_FOUND, _NO_RESPONDERS = "204", "404", "503"
_SEQUENCE_KEY, _NUM_PENDING_KEY = "Nats-Sequence", "Nats-Num-Pending"
_NUM_PENDING = _NUM_PENDING_KEY.encode()


class ReadMode(enum.Enum):
    #: Batch direct get works on this stream.
    BATCH = "batch"
    #: Get-by-sequence: allow_direct is off, or the server does not know batches.
    BY_SEQUENCE = "by_sequence"
    #: The stream does not exist (an answer for one read, never remembered).
    MISSING = "missing"


class BadReply(ValueError):
    """A batch reply without the headers every stored message carries: the server is
    not speaking the protocol this module reads."""


class _Round:
    """The replies to one batch request, as they arrive."""

    __slots__ = ("batch_ignored", "done", "messages", "pending", "replies", "status")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        #: Replies received, deliberately late or not: the sign of life timeouts watch.
        self.replies = 0
        self.messages: list[StoredMessage] = []
        self.status: str | None = None
        self.pending = 0
        self.batch_ignored = False

    def on_data(self, seq: int | None, has_pending: bool, data: bytes) -> None:
        self.replies += 1
        if not self.messages and not has_pending:
            # An old server: one plain direct-get reply, no batch, no EOB to wait for.
            self.batch_ignored = True
            self.done.set_result(None)
            return
        if seq is None:
            raise BadReply("a batch reply without Nats-Sequence")
        self.messages.append(StoredMessage(seq, data))

    def on_status(self, headers: dict[str, str]) -> None:
        self.replies += 1
        status = headers.get(_STATUS, "")
        if status not in (_EOB, _NOT_FOUND, _NO_RESPONDERS):
            description = headers.get("Description", "")
            raise nats.js.errors.APIError(code=int(status), description=description)
        self.status = status
        self.pending = int(headers.get("Nats-Num-Pending", 0))
        self.done.set_result(None)

    def fail(self, exc: Exception) -> None:
        # Surfaced in the waiting read, never in nats-py's read loop or error callback.
        # A reply we cannot parse (a non-numeric Status or Nats-Sequence, BadReply) is
        # the backend's fault, not the client's: a 503, not a 500.
        if isinstance(exc, ValueError):
            failure = BackendUnavailable(f"a malformed JetStream batch reply: {exc}",
                                         code="jetstream_error")
            failure.__cause__ = exc
            exc = failure
        if not self.done.done():
            self.done.set_exception(exc)


class BatchReader:
    """Batch direct gets on one connection (see the module docstring). ``fast=False``
    keeps nats-py's own header parsing, which the tests compare with the fast path."""

    def __init__(
        self, client: Client, *, fast: bool = True, in_flight_bytes: int = IN_FLIGHT_BYTES
    ) -> None:
        self._client = client
        self.budget = ByteBudget(in_flight_bytes)
        self._want_fast = fast
        self._fast = False
        self._prefix = ""
        self._ids = itertools.count()
        self._rounds: dict[bytes, _Round] = {}
        self._sub: Any = None
        self._starting: asyncio.Lock | None = None

    @property
    def fast(self) -> bool:
        """Whether replies skip nats-py's header parsing (known after the first fetch)."""
        return self._fast

    async def fetch(
        self, name: str, start_seq: int, count: int, round_timeout: float,
        tail: int | None = None,
    ) -> tuple[tuple[StoredMessage, ...] | None, ReadMode]:
        """Stored messages in [start_seq, start_seq + count), or (None, mode) when batch
        direct get is not available: mode BATCH for "no responders", BY_SEQUENCE for a
        server that ignored ``batch``. ``tail``: the stream's last sequence, if known
        (see "Tail order")."""
        await self._start()
        parts = _read_order(max(start_seq, 1), start_seq + count, tail)
        if len(parts) == 1:
            return await self._range(name, *parts[0], round_timeout)
        reads = [asyncio.ensure_future(self._range(name, lo, end, round_timeout))
                 for lo, end in parts]
        try:
            answers = await asyncio.gather(*reads)
        finally:
            for read in reads:  # on failure, stop the others before reporting it
                read.cancel()
            await asyncio.gather(*reads, return_exceptions=True)
        found: list[StoredMessage] = []
        ascending = sorted(zip(parts, answers, strict=True), key=lambda pair: pair[0])
        for _, (messages, mode) in ascending:
            if messages is None:
                return None, mode
            found.extend(messages)
        return tuple(found), ReadMode.BATCH

    async def _range(
        self, name: str, seq: int, end: int, round_timeout: float
    ) -> tuple[tuple[StoredMessage, ...] | None, ReadMode]:
        """fetch() of [seq, end) in as many rounds as max_bytes makes it."""
        found: list[StoredMessage] = []
        while seq < end:
            batch = await self._round(name, seq, end, round_timeout)
            if batch.status == _NO_RESPONDERS:
                return None, ReadMode.BATCH
            if batch.batch_ignored:
                return None, ReadMode.BY_SEQUENCE
            found.extend(m for m in batch.messages if m.seq < end)
            if not _truncated(batch, end - seq):
                break
            seq = batch.messages[-1].seq + 1
        return tuple(found), ReadMode.BATCH

    async def _start(self) -> None:
        # The subscription lives as long as the connection: nats-py renews it after a
        # reconnect and drains it on close.
        if self._sub is not None:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._sub is not None:
                return
            prefix = self._client.new_inbox()
            sub = await self._client.subscribe(f"{prefix}.*", cb=self._on_msg)
            self._fast = self._want_fast and route_raw(self._client, sub._id, self)
            self._prefix, self._sub = prefix + ".", sub

    async def _round(self, name: str, seq: int, end: int, round_timeout: float) -> _Round:
        count, max_payload = end - seq, self._client.max_payload
        # No round returns more than max_bytes and one more message, nor more than
        # ``count`` messages of the largest size the server accepts: a part of one
        # message (see "Tail order") books one message, not max_bytes.
        stored = min(BATCH_MAX_BYTES + max_payload, count * max_payload)
        max_bytes = min(BATCH_MAX_BYTES, stored)
        request = {"seq": seq, "batch": count, "up_to_seq": end - 1,
                   "max_bytes": max_bytes}
        worst = stored + count * REPLY_OVERHEAD
        async with self.budget.hold(worst):
            reply = f"{self._prefix}{next(self._ids)}"
            key = reply.encode()
            batch = _Round(asyncio.get_running_loop().create_future())
            self._rounds[key] = batch
            try:
                await self._client.publish(f"$JS.API.DIRECT.GET.{name}",
                                           json.dumps(request).encode(), reply=reply)
                await _until_done(batch, round_timeout)
            finally:
                del self._rounds[key]
        return batch

    # -- replies, on nats-py's read loop (fast) or the subscription's task ---------
    # A reply that carries Nats-Sequence is a stored message, whatever else it says: a
    # publisher may have stored a "Status" header, even a status line, of its own. Only
    # the server's own status replies (EOB, 404, 503, ...) come without one.

    def on_raw(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
        # The per-message hot path: kept to a few calls on purpose.
        batch = self._rounds.get(subject)
        if batch is None or batch.done.done():
            return True  # a late reply to a round that gave up
        try:
            seq = stored_sequence(headers)
            if seq is None:
                return False  # a status reply, or an odd one: nats-py parses it
            if batch.messages:
                batch.replies += 1
                batch.messages.append(StoredMessage(seq, data))
            else:
                batch.on_data(seq, has_header(headers, _NUM_PENDING), data)
        except Exception as exc:
            batch.fail(exc)
        return True

    async def _on_msg(self, msg: Msg) -> None:
        """The same replies through nats-py's parsed headers (``fast`` off)."""
        self.on_parsed(msg.subject.encode(), msg.headers or {}, msg.data)

    def on_parsed(self, subject: bytes, headers: dict[str, str], data: bytes) -> None:
        batch = self._rounds.get(subject)
        if batch is None or batch.done.done():
            return
        try:
            seq = headers.get(_SEQUENCE_KEY)
            if seq is None and _STATUS in headers:
                batch.on_status(headers)
            else:
                batch.on_data(None if seq is None else int(seq),
                              _NUM_PENDING_KEY in headers, data)
        except Exception as exc:
            batch.fail(exc)


def _read_order(first: int, end: int, tail: int | None) -> list[tuple[int, int]]:
    """The half-open ranges that read [first, end), in the order they are requested
    (see "Tail order")."""
    if tail is None or not first + 2 <= tail < end:
        return [(first, end)]
    return [(first, tail - 1), (tail, end), (tail - 1, tail)]


async def _until_done(batch: _Round, idle_timeout: float) -> None:
    """Wait for the round's end; TimeoutError once a whole ``idle_timeout`` window
    passed without one of its replies. Counting replies per window, rather than timing
    each one, keeps the per-message path free of clock reads."""
    seen = -1
    while batch.replies != seen:
        seen = batch.replies
        done, _ = await asyncio.wait({batch.done}, timeout=idle_timeout)
        if done:
            batch.done.result()  # raises what the replies failed with
            return
    raise TimeoutError(f"no batch reply for {idle_timeout:g} s")


def _truncated(batch: _Round, asked: int) -> bool:
    """The server stopped at max_bytes with messages still pending."""
    return 0 < len(batch.messages) < asked and batch.pending > 0


async def fetch_by_sequence(
    js: JetStreamContext, name: str, start_seq: int, count: int, concurrency: int
) -> tuple[StoredMessage, ...]:
    """The same page as fetch_batch, by one get per sequence, ``concurrency`` at a
    time; () when the stream is missing."""
    try:
        state = (await js.stream_info(name)).state
    except nats.js.errors.NotFoundError:
        return ()
    low = max(start_seq, state.first_seq, 1)
    high = min(start_seq + count - 1, state.last_seq)
    if low > high:
        return ()
    found: dict[int, bytes] = {}
    sequences = iter(range(low, high + 1))
    workers = [asyncio.ensure_future(_worker(js, name, sequences, found))
               for _ in range(min(concurrency, high - low + 1))]
    try:
        await asyncio.gather(*workers)
    finally:
        for worker in workers:  # on failure, stop the rest before reporting it
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return tuple(StoredMessage(seq, found[seq]) for seq in sorted(found))


async def _worker(
    js: JetStreamContext, name: str, sequences: Iterator[int], found: dict[int, bytes]
) -> None:
    # The workers share one iterator: each takes the next sequence when it is free.
    for seq in sequences:
        try:
            raw = await js.get_msg(name, seq)
        except nats.js.errors.NotFoundError:
            continue  # deleted or expired (10037), or the stream went away (10059)
        found[seq] = raw.data or b""
