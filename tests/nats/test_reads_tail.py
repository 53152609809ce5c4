"""Tail order (reads.py): a range that reaches the stream's last sequence is read as
three requests, so that the server's file store keeps its active block cached. The
page must not change: same messages whatever the hint says, stale or wrong."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from nats.aio.msg import Msg

from roomkeeper.adapters.nats import NatsConnection
from roomkeeper.adapters.nats.reads import BatchReader, _read_order
from roomkeeper.adapters.nats.streams import NatsStreamStore
from roomkeeper.core import StoredMessage
from tests.nats.test_streams import filled, spec_for


@pytest.mark.parametrize(("first", "end", "tail"), [
    (1, 11, None), (1, 11, 11), (1, 11, 12), (1, 11, 2), (1, 3, 2), (5, 6, 5),
])
def test_without_a_tail_inside_the_range_it_is_one_request(
    first: int, end: int, tail: int | None
) -> None:
    assert _read_order(first, end, tail) == [(first, end)]


@pytest.mark.parametrize(("first", "end", "tail"), [
    (1, 11, 10), (1, 11, 3), (91, 1091, 1000), (1, 4, 3),
])
def test_a_tail_inside_the_range_is_read_last_but_one(
    first: int, end: int, tail: int
) -> None:
    parts = _read_order(first, end, tail)
    assert parts == [(first, tail - 1), (tail, end), (tail - 1, tail)]
    # The three cover the range exactly, without overlap.
    covered = [seq for lo, hi in parts for seq in range(lo, hi)]
    assert sorted(covered) == list(range(first, end))


class BodySpy:
    """The bodies of the direct-get requests for one stream, in the order sent."""

    def __init__(self, conn: NatsConnection, stream: str) -> None:
        self._conn, self._stream = conn, stream
        self.bodies: list[dict[str, Any]] = []
        self._sub: Any = None

    async def __aenter__(self) -> BodySpy:
        client = self._conn.client

        async def record(msg: Msg) -> None:
            self.bodies.append(json.loads(msg.data))

        async def subscribe() -> Any:
            sub = await client.subscribe(f"$JS.API.DIRECT.GET.{self._stream}", cb=record)
            await client.flush()
            return sub

        self._sub = await self._conn.bridge.call(subscribe)
        return self

    async def __aexit__(self, *exc: object) -> None:
        async def settle() -> None:
            await self._conn.client.flush()
            await self._sub.unsubscribe()

        await self._conn.bridge.call(settle)


async def test_after_info_the_newest_page_reads_the_tail_last_but_one(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    store = NatsStreamStore(nats_conn)
    await filled(store, spec_for(stream_name), 30)
    assert (await store.info(stream_name)) is not None
    async with BodySpy(nats_conn, stream_name) as spy:
        page = await store.fetch(stream_name, 11, 20)
    assert page == tuple(StoredMessage(n, b"m%d" % n) for n in range(11, 31))
    assert [(b["seq"], b["batch"]) for b in spy.bodies] == [(11, 18), (30, 1), (29, 1)]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "nats-py-parsed"])
async def test_tail_order_changes_no_page(
    nats_conn: NatsConnection, stream_name: str, fast: bool
) -> None:
    # Deletions at and next to the tail; a hint gone stale as the stream grows; every
    # page equal to get-by-sequence's.
    store = NatsStreamStore(nats_conn, fast_replies=fast)
    spec = spec_for(stream_name)
    await filled(store, spec, 30)
    for seq in (30, 28, 12):
        await store.delete_message(stream_name, seq)
    reader = BatchReader(nats_conn.client, fast=fast)
    ranges = [(1, 30), (11, 20), (20, 11), (25, 6), (26, 10), (28, 3), (29, 2)]
    for tail in (30, 29, 28, 27):
        for start, count in ranges:
            hinted, _ = await nats_conn.call(
                partial(reader.fetch, stream_name, start, count, 2.0, tail=tail))
            assert hinted == await store.fetch_fallback(stream_name, start, count), (
                tail, start, count)
    for n in range(31, 36):  # the hint (30) is stale now
        await store.publish(spec.subjects[0], b"m%d" % n)
    for start, count in [(20, 16), (26, 10), (30, 6)]:
        hinted, _ = await nats_conn.call(
            partial(reader.fetch, stream_name, start, count, 2.0, tail=30))
        assert hinted == await store.fetch_fallback(stream_name, start, count)
        assert hinted is not None and hinted[-1] == StoredMessage(35, b"m35")
