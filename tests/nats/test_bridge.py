"""The trio <-> asyncio bridge: values, errors and cancellation cross correctly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.errors
import pytest
import trio
from nats.aio.client import Client

from roomkeeper.adapters.nats import NatsBridge, NatsConnection, open_bridge, open_connection
from roomkeeper.core import BackendUnavailable


@pytest.fixture
async def bridge() -> AsyncIterator[NatsBridge]:
    async with open_bridge() as opened:
        yield opened


async def test_a_result_crosses_and_the_call_runs_on_the_loop_thread(bridge: NatsBridge) -> None:
    async def where(a: int, b: int) -> tuple[int, int, asyncio.AbstractEventLoop]:
        return a + b, threading.get_ident(), asyncio.get_running_loop()

    total, thread, loop = await bridge.call(where, 2, 3)

    assert total == 5
    assert thread != threading.get_ident()
    assert loop is bridge.loop


async def test_an_exception_crosses_unchanged(bridge: NatsBridge) -> None:
    error = ValueError("from asyncio")

    async def fail() -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        await bridge.call(fail)
    assert caught.value is error


async def test_cancelling_the_trio_side_cancels_the_asyncio_task_and_waits_for_it(
    bridge: NatsBridge,
) -> None:
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()
    seen: list[str] = []

    async def slow() -> None:
        token.run_sync_soon(started.set)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0.01)  # cleanup that takes a while
            seen.append("cleaned up")
            raise

    scope = trio.CancelScope()

    async def caller() -> None:
        with scope:
            await bridge.call(slow)
        seen.append("trio side returned")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await started.wait()
        scope.cancel()

    # The Trio side came back only after the asyncio task had finished its cleanup.
    assert scope.cancelled_caught
    assert seen == ["cancelled", "cleaned up", "trio side returned"]


async def test_many_concurrent_calls_each_get_their_own_result(bridge: NatsBridge) -> None:
    results: dict[int, int] = {}

    async def square_later(n: int) -> int:
        await asyncio.sleep((n % 7) / 1000)  # finish out of order
        return n * n

    async def one(n: int) -> None:
        results[n] = await bridge.call(square_later, n)

    async with trio.open_nursery() as nursery:
        for n in range(300):
            nursery.start_soon(one, n)

    assert results == {n: n * n for n in range(300)}


async def test_close_fails_calls_in_flight_and_later_calls_cleanly() -> None:
    bridge = NatsBridge()
    bridge.start()
    token = trio.lowlevel.current_trio_token()
    started = trio.Event()
    outcome: list[BaseException] = []

    async def forever() -> None:
        token.run_sync_soon(started.set)
        await asyncio.sleep(30)

    async def caller() -> None:
        try:
            await bridge.call(forever)
        except BackendUnavailable as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(caller)
        await started.wait()
        loop = bridge.loop
        bridge.close()

    assert [getattr(e, "code", None) for e in outcome] == ["bridge_closed"]
    assert loop.is_closed()
    assert not any(t.name == "roomkeeper-nats" and t.is_alive() for t in threading.enumerate())
    with pytest.raises(BackendUnavailable) as caught:
        await bridge.call(asyncio.sleep, 0)
    assert caught.value.code == "bridge_closed"
    bridge.close()  # idempotent


async def test_connecting_to_nothing_fails_fast_with_a_clear_error() -> None:
    with trio.fail_after(5), pytest.raises(BackendUnavailable) as caught:
        async with open_connection("nats://127.0.0.1:1", connect_timeout=0.3):
            pass  # pragma: no cover
    assert caught.value.code == "nats_connect_failed"
    assert "nats://127.0.0.1:1" in caught.value.message


async def test_a_subscription_delivers_messages_in_order(nats_conn: NatsConnection) -> None:
    client = nats_conn.client
    async with nats_conn.bridge.subscribe(client, "bridge.order") as sub:
        for i in range(5):
            await nats_conn.bridge.call(client.publish, "bridge.order", b"%d" % i)
        with trio.fail_after(2):
            got = [(await sub.receive()).data for _ in range(5)]
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    assert sub.dropped == 0


async def test_a_full_subscription_buffer_drops_new_messages_and_counts_them(
    nats_conn: NatsConnection,
) -> None:
    client = nats_conn.client
    async with nats_conn.bridge.subscribe(client, "bridge.full", buffer=2) as sub:
        for i in range(5):
            await nats_conn.bridge.call(client.publish, "bridge.full", b"%d" % i)
        with trio.fail_after(2):
            # Deliveries arrive via run_sync_soon with no event to wait on: poll.
            while sub.dropped < 3:  # noqa: ASYNC110
                await trio.sleep(0.001)
        assert [(await sub.receive()).data for _ in range(2)] == [b"0", b"1"]


async def _delivered_to(conn: NatsConnection, subject: str) -> int:
    """How many messages this connection receives for one publish on ``subject``: one
    per subscription it still has there. (The server sends a MSG before the PONG that
    answers the flush, so the count is complete when the flush returns.)"""
    client = conn.client
    before = client.stats["in_msgs"]
    await conn.bridge.call(client.publish, subject, b"probe")
    await conn.bridge.call(client.flush)
    received: int = client.stats["in_msgs"] - before
    return received


def _replace_flush(conn: NatsConnection, monkeypatch: pytest.MonkeyPatch,
                   flush: Callable[..., Awaitable[None]]) -> Callable[[], None]:
    """Make the client's next flush ``flush``; the returned function puts it back."""
    monkeypatch.setattr(conn.client, "flush", flush)
    return lambda: monkeypatch.undo()


async def test_a_subscribe_whose_flush_fails_leaves_no_subscription(
    nats_conn: NatsConnection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing_flush(**_: object) -> None:
        raise nats.errors.TimeoutError

    restore = _replace_flush(nats_conn, monkeypatch, failing_flush)
    with pytest.raises(BackendUnavailable):
        async with nats_conn.bridge.subscribe(nats_conn.client, "bridge.flushfail"):
            pass  # pragma: no cover
    restore()
    assert await _delivered_to(nats_conn, "bridge.flushfail") == 0


async def test_a_subscribe_cancelled_before_its_flush_leaves_no_subscription(
    nats_conn: NatsConnection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = trio.lowlevel.current_trio_token()
    flushing = trio.Event()

    async def endless_flush(**_: object) -> None:
        token.run_sync_soon(flushing.set)
        await asyncio.sleep(30)

    restore = _replace_flush(nats_conn, monkeypatch, endless_flush)
    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_subscribe_and_wait, nats_conn, "bridge.cancelled", scope)
        await flushing.wait()
        scope.cancel()
    restore()
    assert scope.cancelled_caught
    assert await _delivered_to(nats_conn, "bridge.cancelled") == 0


async def test_a_subscribe_that_completes_as_it_is_cancelled_is_unsubscribed(
    nats_conn: NatsConnection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = trio.lowlevel.current_trio_token()
    flushing = trio.Event()
    real_flush = nats_conn.client.flush

    async def flush_that_finishes_anyway(**_: object) -> None:
        token.run_sync_soon(flushing.set)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await real_flush()  # the PONG was on its way: the SUB is registered

    restore = _replace_flush(nats_conn, monkeypatch, flush_that_finishes_anyway)
    entered: list[bool] = []
    scope = trio.CancelScope()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_subscribe_and_wait, nats_conn, "bridge.late", scope, entered)
        await flushing.wait()
        scope.cancel()
    restore()
    assert scope.cancelled_caught
    assert entered == [True]  # the subscription was handed back, not dropped...
    assert await _delivered_to(nats_conn, "bridge.late") == 0  # ...and released


async def _subscribe_and_wait(conn: NatsConnection, subject: str, scope: trio.CancelScope,
                              entered: list[bool] | None = None) -> None:
    with scope:
        async with conn.bridge.subscribe(conn.client, subject):
            if entered is not None:
                entered.append(True)
            await trio.sleep_forever()


def test_a_cancelled_connect_closes_its_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # A connect cancelled on a long-lived bridge must not leave nats-py's connect and
    # reconnect tasks running.
    from roomkeeper.adapters.nats import bridge as bridge_module

    made: list[Client] = []

    class Recording(Client):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(bridge_module, "Client", Recording)

    async def scenario() -> tuple[bool, set[asyncio.Task[object]]]:
        connecting = asyncio.ensure_future(
            bridge_module._connect("nats://127.0.0.1:1", "test", 30))
        await asyncio.sleep(0.3)
        connecting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await connecting
        await asyncio.sleep(0.1)
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:  # leave nothing behind even when the test fails
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        return made[0].is_closed, others

    closed, left = asyncio.run(scenario())
    assert closed
    assert not left
