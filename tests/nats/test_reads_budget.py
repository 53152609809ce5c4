"""Bytes in flight and timeouts of batch reads (reads.BatchReader, reads.ByteBudget).

Concurrent pages of large frames once made the server drop roomkeeper's connection as
a slow consumer (more than its 64 MiB max_pending queued for us) and every read time
out. Rounds now hold their worst-case size from a per-connection budget, queueing
rather than failing, and a round times out only when its replies stop coming.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import trio
from nats.aio.msg import Msg

from roomkeeper.adapters.nats import NatsConnection, reads
from roomkeeper.adapters.nats.reads import BatchReader, ByteBudget
from roomkeeper.adapters.nats.streams import NatsStreamStore
from roomkeeper.core import BackendUnavailable, StoredMessage
from tests.nats.test_streams import filled, spec_for

KIB = 1024


# --- the budget on its own ---------------------------------------------------------------


def test_the_budget_queues_in_order_and_never_exceeds_its_capacity() -> None:
    async def scenario() -> tuple[list[str], int]:
        budget = ByteBudget(10)
        order: list[str] = []
        release = asyncio.Event()

        async def holder(name: str, weight: int) -> None:
            async with budget.hold(weight):
                order.append(name)
                await release.wait()

        tasks = [asyncio.ensure_future(holder("a", 6))]
        await asyncio.sleep(0)
        # b does not fit beside a; c would, but it must not overtake b.
        tasks += [asyncio.ensure_future(holder("b", 6)), asyncio.ensure_future(holder("c", 1))]
        await asyncio.sleep(0)
        assert order == ["a"]
        release.set()
        await asyncio.gather(*tasks)
        return order, budget.peak

    order, peak = asyncio.run(scenario())
    assert order == ["a", "b", "c"]
    assert peak <= 10


def test_a_weight_above_the_capacity_runs_alone() -> None:
    async def scenario() -> int:
        budget = ByteBudget(10)
        async with budget.hold(50):
            return budget.in_use

    assert asyncio.run(scenario()) == 10


def test_a_cancelled_waiter_leaves_the_queue_and_unblocks_the_rest() -> None:
    async def scenario() -> list[str]:
        budget = ByteBudget(10)
        order: list[str] = []

        async def holder(name: str, weight: int) -> None:
            async with budget.hold(weight):
                order.append(name)

        async with budget.hold(5):
            big = asyncio.ensure_future(holder("big", 10))
            small = asyncio.ensure_future(holder("small", 5))
            await asyncio.sleep(0)
            big.cancel()  # the head of the queue goes away: small fits now
            await asyncio.sleep(0)
            await small
        assert big.cancelled() and budget.in_use == 0
        return order

    assert asyncio.run(scenario()) == ["small"]


# --- on a real server ----------------------------------------------------------------------


async def fill_fast(conn: NatsConnection, subject: str, frames: list[bytes]) -> None:
    """Core publishes, pipelined, then wait until the stream holds them all."""
    stream = "T_" + subject.removeprefix("t.T_")

    async def publish_all() -> None:
        for frame in frames:
            await conn.client.publish(subject, frame)
        await conn.client.flush()
        for _ in range(1000):  # the stream stores what it captured within moments
            if (await conn.js.stream_info(stream)).state.messages == len(frames):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{stream} did not capture {len(frames)} frames")

    await conn.call(publish_all)


async def test_concurrent_pages_queue_for_the_budget_and_all_succeed(
    nats_conn: NatsConnection, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of two rounds: eight concurrent pages of many rounds each interleave
    # under it, never holding more, and every page is exact.
    store = NatsStreamStore(nats_conn)
    spec = spec_for(stream_name)
    await store.ensure(spec)
    frames = [bytes([n % 251]) * (4 * KIB) for n in range(1, 201)]
    await fill_fast(nats_conn, spec.subjects[0], frames)
    reader = BatchReader(nats_conn.client)
    worst_round = 40 * KIB + nats_conn.client.max_payload + 200 * 512
    reader.budget = ByteBudget(2 * worst_round)
    pages: list[Any] = []

    async def one() -> None:
        page, _ = await nats_conn.call(reader.fetch, stream_name, 1, 200, 2.0)
        pages.append(page)

    monkeypatch.setattr(reads, "BATCH_MAX_BYTES", 40 * KIB)  # ten frames a round
    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(one)
    expected = tuple(StoredMessage(n, frame) for n, frame in enumerate(frames, start=1))
    assert pages == [expected] * 8
    assert 0 < reader.budget.peak <= 2 * worst_round
    assert reader.budget.in_use == 0


@pytest.mark.slow
async def test_eight_concurrent_pages_of_64_kib_frames_all_succeed(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    # The scenario that failed: 8 x 1000 x 64 KiB = 500 MiB asked for at once, with the
    # server's default 64 MiB max_pending and the default 3 s request timeout.
    store = NatsStreamStore(nats_conn, fetch_timeout=3.0)
    spec = spec_for(stream_name)
    await store.ensure(spec)
    frames = [n.to_bytes(4, "big") * (16 * KIB) for n in range(1, 1001)]
    await fill_fast(nats_conn, spec.subjects[0], frames)
    sizes: list[int] = []

    async def one() -> None:
        page = await store.fetch(stream_name, 1, 1000)
        assert [m.data for m in page] == frames
        sizes.append(len(page))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(one)
    assert sizes == [1000] * 8
    assert nats_conn.client.is_connected  # not dropped as a slow consumer


class RecordingBudget(ByteBudget):
    """A ByteBudget that remembers every weight asked of it."""

    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.asked: list[int] = []

    def hold(self, weight: int) -> Any:
        self.asked.append(weight)
        return super().hold(weight)


async def test_newest_pages_book_no_more_than_their_messages_can_take(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    # A newest page of a small stream is three parts, two of one message each: each
    # books at most its messages' worst case, so concurrent newest pages fit side by
    # side in the budget instead of queueing behind each other.
    store = NatsStreamStore(nats_conn)
    await filled(store, spec_for(stream_name), 10)
    reader = BatchReader(nats_conn.client)
    budget = RecordingBudget(reads.IN_FLIGHT_BYTES)
    reader.budget = budget
    page, _ = await nats_conn.call(reader.fetch, stream_name, 1, 10, 2.0, 10)
    assert page == tuple(StoredMessage(n, b"m%d" % n) for n in range(1, 11))
    per_message = nats_conn.client.max_payload + reads.REPLY_OVERHEAD
    assert len(budget.asked) == 3
    assert budget.asked[1] <= per_message and budget.asked[2] <= per_message
    assert budget.asked[0] <= 9 * per_message
    assert 2 * sum(budget.asked) <= reads.IN_FLIGHT_BYTES  # two pages hold it at once


# --- timeouts: silence, not size -----------------------------------------------------------


async def serve_slowly(conn: NatsConnection, stream: str, gap: float, stop_after: int) -> Any:
    """A stand-in server for ``stream``: each stored message (b"m<seq>") after ``gap``
    seconds; silence after ``stop_after`` of them, else the EOB."""
    client = conn.client
    answering: set[asyncio.Task[None]] = set()

    async def answer(request: Msg) -> None:
        body = json.loads(request.data)
        first, count = body["seq"], body["batch"]
        for n, seq in enumerate(range(first, first + count)):
            if n == stop_after:
                return
            await asyncio.sleep(gap)
            await client.publish(request.reply, b"m%d" % seq, headers={
                "Nats-Sequence": str(seq), "Nats-Num-Pending": str(count - n - 1)})
        await client.publish(request.reply, b"", headers={"Status": "204",
                                                          "Nats-Num-Pending": "0"})

    async def on_request(request: Msg) -> None:
        task = asyncio.ensure_future(answer(request))
        answering.add(task)
        task.add_done_callback(answering.discard)

    async def subscribe() -> Any:
        sub = await client.subscribe(f"$JS.API.DIRECT.GET.{stream}", cb=on_request)
        await client.flush()
        return sub

    return await conn.bridge.call(subscribe)


async def test_a_round_that_keeps_answering_outlasts_its_timeout(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    # Gaps well inside the timeout, so a slow machine does not make this flaky.
    sub = await serve_slowly(nats_conn, stream_name, gap=0.1, stop_after=1000)
    reader = BatchReader(nats_conn.client)
    try:
        with trio.fail_after(10):
            started = trio.current_time()
            page, _ = await nats_conn.call(reader.fetch, stream_name, 1, 15, 1.0)
            took = trio.current_time() - started
    finally:
        await nats_conn.bridge.call(sub.unsubscribe)
    assert page == tuple(StoredMessage(s, b"m%d" % s) for s in range(1, 16))
    assert took > 1.0  # longer than the timeout, and still fine: replies kept coming


async def test_a_round_whose_replies_stop_times_out(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    sub = await serve_slowly(nats_conn, stream_name, gap=0.01, stop_after=2)
    store = NatsStreamStore(nats_conn, fetch_timeout=0.1)
    try:
        with trio.fail_after(5), pytest.raises(BackendUnavailable):
            await store.fetch(stream_name, 1, 8)
    finally:
        await nats_conn.bridge.call(sub.unsubscribe)


def test_a_holder_and_a_waiter_cancelled_together_give_everything_back() -> None:
    async def scenario() -> tuple[int, int, bool]:
        budget = ByteBudget(10)
        held = asyncio.Event()

        async def holder(weight: int) -> None:
            async with budget.hold(weight):
                held.set()
                await asyncio.Event().wait()

        first = asyncio.ensure_future(holder(10))
        await held.wait()
        waiter = asyncio.ensure_future(holder(5))
        await asyncio.sleep(0)
        first.cancel()  # both in the same tick: the waiter's future is cancelled at
        waiter.cancel()  # once, before the holder's release tries to grant it
        results = await asyncio.gather(first, waiter, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results), results
        in_use, queued = budget.in_use, len(budget._queue)
        try:
            async with asyncio.timeout(1):
                async with budget.hold(10):
                    got_it = True
        except TimeoutError:
            got_it = False
        return in_use, queued, got_it

    assert asyncio.run(scenario()) == (0, 0, True)


def test_tail_parts_cancelled_together_give_everything_back() -> None:
    async def scenario() -> tuple[int, int]:
        budget = ByteBudget(10)
        started = asyncio.Event()

        async def part(weight: int) -> None:
            async with budget.hold(weight):
                started.set()
                await asyncio.Event().wait()

        async def fetch() -> None:  # fetch() gathers its tail parts like this
            await asyncio.gather(*(part(w) for w in (6, 6, 6, 3)))

        task = asyncio.ensure_future(fetch())
        await started.wait()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return budget.in_use, len(budget._queue)

    assert asyncio.run(scenario()) == (0, 0)
