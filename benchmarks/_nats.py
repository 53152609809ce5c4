"""Plain nats-py pieces shared by the fill and the strategies: no roomkeeper code here, so
the floor strategy measures the wire, not our adapter."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

__all__ = ["BatchGetError", "DirectBatchGet", "connect", "delete_msg"]

_REQUEST_TIMEOUT = 30.0


class BatchGetError(RuntimeError):
    pass


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Client]:
    errors: list[Exception] = []

    async def record(exc: Exception) -> None:
        # nats-py logs every error to stderr by default; keep them to raise instead.
        errors.append(exc)

    nc = await nats.connect(url, allow_reconnect=False, error_cb=record, connect_timeout=5)
    try:
        yield nc
    finally:
        await nc.close()
    if errors:
        raise RuntimeError(f"NATS connection errors: {errors!r}")


async def delete_msg(nc: Client, stream: str, seq: int) -> bool:
    """The request nats-py's ``js.delete_msg`` sends, plus ``no_erase``.

    nats-py always asks for a secure erase, which rewrites and syncs the record on disk:
    about 160 deletes/s here, so 10% of a million would take over ten minutes. Without
    it, about 17k/s. Readers cannot tell the two apart: the sequence is gone either way.
    """
    body = json.dumps({"seq": seq, "no_erase": True}).encode()
    reply = await nc.request(f"$JS.API.STREAM.MSG.DELETE.{stream}", body, timeout=_REQUEST_TIMEOUT)
    return bool(json.loads(reply.data).get("success"))


class DirectBatchGet:
    """``$JS.API.DIRECT.GET.<stream>`` with ``{"seq": s, "batch": n}`` (nats-server >= 2.11,
    ``allow_direct``). nats-py does not wrap it: the server answers one message per stored
    sequence on our inbox (deleted ones are skipped) and ends with an empty 204 EOB.

    One wildcard subscription serves every request; each request gets its own reply
    subject, so a late message from an abandoned request can never land in another.
    """

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._ids = itertools.count()
        self._pending: dict[str, _Batch] = {}

    async def start(self) -> None:
        await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_msg)

    async def range(self, stream: str, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """Stored messages with lo <= seq <= hi, ascending."""
        out: list[tuple[int, bytes]] = []
        start = lo
        while start <= hi:
            batch = await self._request(stream, start, hi - start + 1)
            out.extend((seq, data) for seq, data in batch.msgs if seq <= hi)
            # Asking for hi - start + 1 messages covers [start, hi] unless the server cut
            # the batch short (its max_bytes): then continue after the last one received.
            if not batch.msgs or batch.msgs[-1][0] >= hi or batch.pending == 0:
                break
            start = batch.msgs[-1][0] + 1
        return out

    async def _request(self, stream: str, seq: int, count: int) -> _Batch:
        reply = f"{self._prefix}.{next(self._ids)}"
        batch = _Batch(asyncio.get_running_loop().create_future())
        self._pending[reply] = batch
        try:
            body = json.dumps({"seq": seq, "batch": count}).encode()
            await self._nc.publish(f"$JS.API.DIRECT.GET.{stream}", body, reply=reply)
            await asyncio.wait_for(batch.done, _REQUEST_TIMEOUT)
        finally:
            del self._pending[reply]
        return batch

    async def _on_msg(self, msg: Msg) -> None:
        batch = self._pending.get(msg.subject)
        if batch is None or batch.done.done():
            return
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is None:
            batch.msgs.append((int(headers["Nats-Sequence"]), msg.data))
        elif status == "204":
            batch.pending = int(headers.get("Nats-Num-Pending", "0"))
            batch.done.set_result(None)
        elif status == "404":  # nothing stored at or after seq
            batch.pending = 0
            batch.done.set_result(None)
        else:
            batch.done.set_exception(BatchGetError(f"direct get answered {status}: {headers}"))


class _Batch:
    __slots__ = ("done", "msgs", "pending")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.msgs: list[tuple[int, bytes]] = []
        self.pending = -1
