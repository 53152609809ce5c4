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
- The reply stops early once it has sent ``max_bytes`` (default: the server's
  max_pending, 64 MiB). We ask for ``BATCH_MAX_BYTES`` so that one burst stays well
  under nats-py's per-subscription pending limit, and continue after the last sequence
  while the EOB says more is pending.
- ``404`` with no messages: nothing stored at or after ``seq``.
- ``408``: the request was malformed (a bug here) and propagates as an APIError.
- An old server ignores ``batch`` and answers one message without
  ``Nats-Num-Pending`` and without EOB: the caller falls back.
- ``503`` (no responders): allow_direct is off, the stream is missing, or its replicas
  are moving; the caller finds out which.

Get-by-sequence (the fallback): ``$JS.API.STREAM.MSG.GET`` per sequence, pipelined
with bounded concurrency, within the range that stream info reports.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from roomkeeper.core import StoredMessage

__all__ = ["BATCH_MAX_BYTES", "ReadMode", "fetch_batch", "fetch_by_sequence"]

#: Bytes per batch reply burst (see the module docstring).
BATCH_MAX_BYTES = 8 * 1024 * 1024
_STATUS = "Status"
_EOB, _NOT_FOUND, _NO_RESPONDERS = "204", "404", "503"


class ReadMode(enum.Enum):
    #: Batch direct get works on this stream.
    BATCH = "batch"
    #: Get-by-sequence: allow_direct is off, or the server does not know batches.
    BY_SEQUENCE = "by_sequence"
    #: The stream does not exist (an answer for one read, never remembered).
    MISSING = "missing"


@dataclass
class _Round:
    """The replies to one batch request."""

    messages: list[StoredMessage] = field(default_factory=list)
    status: str | None = None
    pending: int = 0
    batch_ignored: bool = False


async def fetch_batch(
    client: Client, name: str, start_seq: int, count: int, round_timeout: float
) -> tuple[tuple[StoredMessage, ...] | None, ReadMode]:
    """Stored messages in [start_seq, start_seq + count), or (None, mode) when batch
    direct get is not available: mode BATCH for "no responders", BY_SEQUENCE for a
    server that ignored ``batch``."""
    end = start_seq + count
    seq = max(start_seq, 1)
    found: list[StoredMessage] = []
    while seq < end:
        batch = await _round(client, name, seq, end, round_timeout)
        if batch.status == _NO_RESPONDERS:
            return None, ReadMode.BATCH
        if batch.batch_ignored:
            return None, ReadMode.BY_SEQUENCE
        found.extend(m for m in batch.messages if m.seq < end)
        if not _truncated(batch, end - seq):
            break
        seq = batch.messages[-1].seq + 1
    return tuple(found), ReadMode.BATCH


def _truncated(batch: _Round, asked: int) -> bool:
    """The server stopped at max_bytes with messages still pending."""
    return 0 < len(batch.messages) < asked and batch.pending > 0


async def _round(client: Client, name: str, seq: int, end: int, round_timeout: float) -> _Round:
    request = {"seq": seq, "batch": end - seq, "up_to_seq": end - 1,
               "max_bytes": BATCH_MAX_BYTES}
    batch = _Round()
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_reply(msg: Msg) -> None:
        if done.done():
            return
        try:
            if _take(batch, msg):
                done.set_result(None)
        except Exception as exc:  # surface it here, not in nats-py's error callback
            done.set_exception(exc)

    inbox = client.new_inbox()
    sub = await client.subscribe(inbox, cb=on_reply)
    try:
        await client.publish(f"$JS.API.DIRECT.GET.{name}", json.dumps(request).encode(),
                             reply=inbox)
        await asyncio.wait_for(done, round_timeout)
    finally:
        await sub.unsubscribe()
    return batch


def _take(batch: _Round, msg: Msg) -> bool:
    """Record one reply; True when it ends the round."""
    headers = msg.headers or {}
    status = headers.get(_STATUS)
    if status is None:
        if not batch.messages and "Nats-Num-Pending" not in headers:
            batch.batch_ignored = True
            return True
        batch.messages.append(StoredMessage(int(headers["Nats-Sequence"]), msg.data))
        return False
    if status not in (_EOB, _NOT_FOUND, _NO_RESPONDERS):
        description = next((v for k, v in headers.items() if k == "Description"), "")
        raise nats.js.errors.APIError(code=int(status), description=str(description))
    batch.status = status
    batch.pending = int(headers.get("Nats-Num-Pending", 0))
    return True


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
