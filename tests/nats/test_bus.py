"""NatsBus on a real nats-server: flushed publishes, bridged subscriptions, capture (R3)."""

from __future__ import annotations

import uuid

import pytest
import trio

from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.bus import NatsBus
from roomkeeper.adapters.nats.streams import NatsStreamStore
from roomkeeper.core import BackendUnavailable, StoredMessage, StreamSpec
from tests.conftest import NatsServer


@pytest.fixture
def subject() -> str:
    return f"bus.{uuid.uuid4().hex}"


async def test_a_returned_publish_has_reached_the_server(
    nats_conn: NatsConnection, nats_server: NatsServer, subject: str
) -> None:
    # Another connection subscribed: when publish returns, the server has processed
    # the frame, so a flush on the subscriber's connection is enough to have it.
    async with open_connection(nats_server.url) as other:
        sub = await other.bridge.call(other.client.subscribe, subject)
        await other.bridge.call(other.client.flush)
        await NatsBus(nats_conn).publish(subject, b"\x00frame\xff")
        await other.bridge.call(other.client.flush)
        assert sub.pending_msgs == 1
        await other.bridge.call(sub.unsubscribe)


async def test_a_subscriber_gets_many_frames_in_order(
    nats_conn: NatsConnection, subject: str
) -> None:
    bus = NatsBus(nats_conn)
    async with bus.subscribe(subject) as frames:
        for n in range(20):
            await bus.publish(subject, b"%d" % n)
        with trio.fail_after(2):
            got = [await anext(frames) for _ in range(20)]
    assert got == [b"%d" % n for n in range(20)]
    assert frames.dropped == 0


async def test_a_slow_subscriber_loses_new_frames_not_the_connection(
    nats_conn: NatsConnection, subject: str
) -> None:
    bus = NatsBus(nats_conn, buffer=3)
    async with bus.subscribe(subject) as frames:
        for n in range(10):
            await bus.publish(subject, b"%d" % n)
        with trio.fail_after(2):
            while frames.dropped < 7:  # noqa: ASYNC110 (deliveries carry no event)
                await trio.sleep(0.001)
            assert [await anext(frames) for _ in range(3)] == [b"0", b"1", b"2"]
            await bus.publish(subject, b"later")
            assert await anext(frames) == b"later"


async def test_a_core_publish_is_captured_by_a_stream(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    # R3: a frame published with plain core NATS (no ack) is stored.
    streams = NatsStreamStore(nats_conn)
    spec = StreamSpec(name=stream_name, subjects=(f"t.{stream_name}",))
    await streams.ensure(spec)
    await NatsBus(nats_conn).publish(spec.subjects[0], b"first")
    with trio.fail_after(2):
        # Storing is asynchronous on the server: poll for it.
        while not (page := await streams.fetch(stream_name, 1, 10)):  # noqa: ASYNC110
            await trio.sleep(0.005)
    assert page == (StoredMessage(1, b"first"),)


async def test_publishing_on_a_closed_connection_is_backend_unavailable(
    nats_server: NatsServer, subject: str
) -> None:
    async with open_connection(nats_server.url) as conn:
        bus = NatsBus(conn)
        await conn.bridge.call(conn.client.close)
        with pytest.raises(BackendUnavailable):
            await bus.publish(subject, b"lost")
