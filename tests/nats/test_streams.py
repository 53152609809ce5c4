"""NatsStreamStore on a real nats-server: what the contract suite cannot see.

The JetStream API is plain NATS request/reply, so a subscriber on ``$JS.API.>`` sees a
copy of every request: ``ApiSpy`` uses that to check which calls an operation made.
"""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from typing import Any

import nats.js.errors
import pytest
import trio
from nats.aio.msg import Msg

from roomkeeper.adapters.nats import NatsConnection
from roomkeeper.adapters.nats import reads as reads_module
from roomkeeper.adapters.nats.streams import NatsStreamStore, stream_config
from roomkeeper.core import (
    BackendUnavailable,
    Conflict,
    NotFound,
    StoredMessage,
    StreamLimits,
    StreamSpec,
    StreamState,
)
from tests.conftest import NatsServer


def spec_for(name: str, **changes: Any) -> StreamSpec:
    return dataclasses.replace(StreamSpec(name=name, subjects=(f"t.{name}",)), **changes)


async def filled(store: NatsStreamStore, spec: StreamSpec, count: int) -> None:
    await store.ensure(spec)
    for n in range(1, count + 1):
        await store.publish(spec.subjects[0], b"m%d" % n)


class ApiSpy:
    """Records the subjects of the JetStream API requests made while it is open."""

    def __init__(self, conn: NatsConnection) -> None:
        self._conn = conn
        self._sub: Any = None

    async def __aenter__(self) -> ApiSpy:
        client = self._conn.client

        async def subscribe() -> Any:
            sub = await client.subscribe("$JS.API.>")
            await client.flush()
            return sub

        self._sub = await self._conn.bridge.call(subscribe)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.bridge.call(self._sub.unsubscribe)

    async def subjects(self) -> list[str]:
        """Everything requested so far. The PONG of a flush comes after every copy the
        server had queued for us, so nothing is missed."""
        client, sub = self._conn.client, self._sub

        async def drain() -> list[str]:
            await client.flush()
            got: list[Msg] = [await sub.next_msg() for _ in range(sub.pending_msgs)]
            return [m.subject for m in got]

        return await self._conn.bridge.call(drain)


async def raw_config(conn: NatsConnection, name: str) -> dict[str, Any]:
    reply = await conn.bridge.call(conn.client.request, f"$JS.API.STREAM.INFO.{name}", b"")
    config: dict[str, Any] = json.loads(reply.data)["config"]
    return config


@pytest.fixture
def store(nats_conn: NatsConnection) -> NatsStreamStore:
    return NatsStreamStore(nats_conn)


def test_the_config_carries_the_spec_and_unlimited_defaults() -> None:
    config = stream_config(spec_for("S")).as_dict()
    assert config["subjects"] == ["t.S"]
    assert (config["storage"], config["retention"], config["discard"]) == ("file", "limits", "old")
    assert config["allow_direct"] is True
    assert config["duplicate_window"] == 120 * 10**9
    assert (config["max_age"], config["max_msgs"], config["num_replicas"]) == (0, -1, 1)


def test_the_duplicate_window_never_exceeds_max_age() -> None:
    spec = spec_for("S", limits=StreamLimits(max_age_seconds=30.0, max_msgs=10))
    config = stream_config(spec).as_dict()
    assert config["duplicate_window"] == config["max_age"] == 30 * 10**9
    assert config["max_msgs"] == 10


async def test_ensuring_twice_creates_once_and_never_updates(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    spec = spec_for(stream_name)
    async with ApiSpy(nats_conn) as spy:
        await store.ensure(spec)
        await store.ensure(spec)
        assert not [s for s in await spy.subjects() if ".UPDATE." in s]
    assert await store.info(stream_name) == StreamState(1, 0, 0, 0)


async def test_zero_limits_mean_unlimited_and_ensure_stays_a_no_op(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    # The server stores max_msgs 0 as -1: comparing naively would update every time.
    spec = spec_for(stream_name, limits=StreamLimits(max_age_seconds=0, max_msgs=0))
    async with ApiSpy(nats_conn) as spy:
        await store.ensure(spec)
        await store.ensure(spec)
        assert not [s for s in await spy.subjects() if ".UPDATE." in s]
    config = await raw_config(nats_conn, stream_name)
    assert (config["max_msgs"], config["max_age"]) == (-1, 0)


async def test_a_changed_limit_updates_in_place_and_keeps_messages(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    spec = spec_for(stream_name)
    await filled(store, spec, 5)
    async with ApiSpy(nats_conn) as spy:
        await store.ensure(dataclasses.replace(spec, limits=StreamLimits(max_msgs=100)))
        assert (await spy.subjects()).count(f"$JS.API.STREAM.UPDATE.{stream_name}") == 1
    assert (await raw_config(nats_conn, stream_name))["max_msgs"] == 100
    assert await store.info(stream_name) == StreamState(1, 5, 5, 0)


async def test_ensure_keeps_fields_it_does_not_own(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    # An operator created the stream with a description and a byte limit; the server
    # filled in its defaults. Only the fields roomkeeper owns may change.
    spec = spec_for(stream_name)
    config = stream_config(spec)
    config.description, config.max_bytes = "set by an operator", 1 << 20
    await nats_conn.bridge.call(nats_conn.js.add_stream, config)

    async with ApiSpy(nats_conn) as spy:
        await store.ensure(spec)
        assert not [s for s in await spy.subjects() if ".UPDATE." in s]
    await store.ensure(dataclasses.replace(spec, limits=StreamLimits(max_msgs=7)))

    after = await raw_config(nats_conn, stream_name)
    assert (after["description"], after["max_bytes"], after["max_msgs"]) == (
        "set by an operator", 1 << 20, 7)


async def test_concurrent_ensures_all_succeed(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    spec = spec_for(stream_name)
    other = NatsStreamStore(nats_conn)
    limited = dataclasses.replace(spec, limits=StreamLimits(max_msgs=50))
    async with trio.open_nursery() as nursery:
        for candidate, which in [(spec, store), (spec, other), (limited, store), (spec, other)]:
            nursery.start_soon(which.ensure, candidate)
    assert await store.info(stream_name) == StreamState(1, 0, 0, 0)
    # Whoever won last, a final ensure converges on its spec.
    await store.ensure(limited)
    assert (await raw_config(nats_conn, stream_name))["max_msgs"] == 50


#: Frames whose bytes look like NATS headers, a status line or a protocol line, and an
#: empty one: a reply's payload is never read as headers.
TRICKY_FRAMES = {
    4: b"Nats-Sequence: 5\r\n",
    5: b"NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\n\r\n",
    11: b"\r\nNats-Sequence: 999\r\nStatus: 404\r\n\r\n",
    12: b"",
    13: b"HMSG _INBOX.x 1 30 30\r\nNATS/1.0\r\n\r\n",
}
#: Headers a publisher stored with its message. The server appends its own after them,
#: so the reply carries two Nats-Sequence headers: the last one is the server's.
STORED_HEADERS = {
    14: {"Nats-Sequence": "5"},
    15: {"Status": "204", "Description": "EOB"},
    16: {"Nats-Num-Pending": "0", "Nats-Sequence": "1"},
    17: {"X-Note": "Nats-Sequence: 3"},
}
DELETED = (1, 2, 7, 8, 9, 20, 33, 40)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "nats-py-parsed"])
@pytest.mark.parametrize("max_bytes", [None, 40], ids=["one-round", "max-bytes-rounds"])
async def test_batch_and_fallback_return_identical_pages_with_deletions(
    nats_conn: NatsConnection, stream_name: str, fast: bool, max_bytes: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The batch read, by the fast reply path or by nats-py's header parsing, and in one
    # round or many small max_bytes rounds, returns exactly what get-by-sequence does.
    store = NatsStreamStore(nats_conn, fast_replies=fast)
    spec = spec_for(stream_name)
    await store.ensure(spec)
    frames = {n: TRICKY_FRAMES.get(n, b"m%d" % n) for n in range(1, 41)}
    for n, frame in frames.items():
        headers = STORED_HEADERS.get(n)
        await nats_conn.bridge.call(
            partial(nats_conn.js.publish, spec.subjects[0], frame, headers=headers))
    for seq in DELETED:
        await store.delete_message(stream_name, seq)
    if max_bytes is not None:
        monkeypatch.setattr(reads_module, "BATCH_MAX_BYTES", max_bytes)
    await store.info(stream_name)  # known tail (40, deleted): reads.py "Tail order"
    for start, count in [(1, 40), (1, 5), (3, 4), (7, 3), (10, 11), (30, 100), (41, 5),
                         (0, 3), (38, 1), (40, 1), (4, 14)]:
        batch = await store.fetch(stream_name, start, count)
        assert batch == await store.fetch_fallback(stream_name, start, count), (start, count)
        expected = [s for s in range(max(start, 1), start + count)
                    if s <= 40 and s not in DELETED]
        assert batch == tuple(StoredMessage(s, frames[s]) for s in expected), (start, count)
    assert await store.fetch(stream_name, 3, 2) == (
        StoredMessage(3, b"m3"), StoredMessage(4, b"Nats-Sequence: 5\r\n"))


async def test_a_batch_is_one_direct_get_and_reads_create_no_consumer(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    # R6: no consumer, ever; and a whole page is one request.
    await filled(store, spec_for(stream_name), 20)
    async with ApiSpy(nats_conn) as spy:
        assert len(await store.fetch(stream_name, 1, 20)) == 20
        assert await spy.subjects() == [f"$JS.API.DIRECT.GET.{stream_name}"]
    await store.fetch_fallback(stream_name, 1, 20)
    info = await nats_conn.bridge.call(nats_conn.js.stream_info, stream_name)
    assert info.state.consumer_count == 0


async def test_a_batch_cut_short_by_max_bytes_continues_where_it_stopped(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await filled(store, spec_for(stream_name), 10)
    await store.delete_message(stream_name, 5)
    # Each message counts 18 bytes (16 of subject, 2 of payload): two per round.
    monkeypatch.setattr(reads_module, "BATCH_MAX_BYTES", 20)
    async with ApiSpy(nats_conn) as spy:
        page = await store.fetch(stream_name, 2, 8)
        rounds = len(await spy.subjects())
    assert [m.seq for m in page] == [2, 3, 4, 6, 7, 8, 9]
    assert rounds == 4  # [2, 3] [4, 6] [7, 8] [9]


async def test_without_allow_direct_reads_fall_back_and_remember_it(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    await filled(store, spec_for(stream_name, allow_direct=False), 6)
    await store.delete_message(stream_name, 3)
    assert [m.seq for m in await store.fetch(stream_name, 1, 10)] == [1, 2, 4, 5, 6]
    async with ApiSpy(nats_conn) as spy:
        assert [m.seq for m in await store.fetch(stream_name, 2, 3)] == [2, 4]
        subjects = await spy.subjects()
    assert not [s for s in subjects if "DIRECT.GET" in s]
    assert f"$JS.API.STREAM.MSG.GET.{stream_name}" in subjects


async def test_a_server_that_ignores_batch_is_detected_and_read_by_sequence(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str
) -> None:
    # Play a pre-2.11 server: answer a batch request with one plain direct-get reply.
    await filled(store, spec_for(stream_name, allow_direct=False), 4)
    client = nats_conn.client

    async def old_server(msg: Msg) -> None:
        seq = json.loads(msg.data)["seq"]
        headers = {"Nats-Stream": stream_name, "Nats-Sequence": str(seq)}
        await client.publish(msg.reply, b"m%d" % seq, headers=headers)

    async def serve() -> Any:
        sub = await client.subscribe(f"$JS.API.DIRECT.GET.{stream_name}", cb=old_server)
        await client.flush()
        return sub

    sub = await nats_conn.bridge.call(serve)
    try:
        assert [m.data for m in await store.fetch(stream_name, 1, 10)] == [
            b"m1", b"m2", b"m3", b"m4"]
        async with ApiSpy(nats_conn) as spy:
            await store.fetch(stream_name, 1, 10)
            assert not [s for s in await spy.subjects() if "DIRECT.GET" in s]
    finally:
        await nats_conn.bridge.call(sub.unsubscribe)


async def test_a_rejected_batch_request_is_a_503_logged_at_error(
    store: NatsStreamStore, nats_conn: NatsConnection, stream_name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server answers a request it cannot parse with a 408 status: that is our
    # mistake, not an outage, so the operator sees it in the log with its status.
    client = nats_conn.client

    async def reject(msg: Msg) -> None:
        await client.publish(msg.reply, b"", headers={"Status": "408",
                                                      "Description": "Bad Request"})

    sub = await nats_conn.bridge.call(
        client.subscribe, f"$JS.API.DIRECT.GET.{stream_name}", "", reject)
    await nats_conn.bridge.call(client.flush)
    try:
        with pytest.raises(BackendUnavailable) as caught:
            await store.fetch(stream_name, 1, 10)
        assert caught.value.code == "jetstream_error"
        assert isinstance(caught.value.__cause__, nats.js.errors.APIError)
        assert caught.value.__cause__.code == 408
        assert any(r.levelname == "ERROR" and "status 408" in r.getMessage()
                   for r in caplog.records)
    finally:
        await nats_conn.bridge.call(sub.unsubscribe)


async def test_a_direct_get_nobody_answers_times_out_as_backend_unavailable(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    # A responder that never replies stands in for a server that stopped answering.
    sub = await nats_conn.bridge.call(
        nats_conn.client.subscribe, f"$JS.API.DIRECT.GET.{stream_name}")
    await nats_conn.bridge.call(nats_conn.client.flush)
    store = NatsStreamStore(nats_conn, fetch_timeout=0.05)
    try:
        with pytest.raises(BackendUnavailable):
            await store.fetch(stream_name, 1, 10)
    finally:
        await nats_conn.bridge.call(sub.unsubscribe)


async def test_a_stream_whose_subjects_another_captures_is_a_conflict(
    store: NatsStreamStore, stream_name: str
) -> None:
    await store.ensure(spec_for(stream_name))
    with pytest.raises(Conflict) as caught:
        await store.ensure(spec_for(f"{stream_name}_2", subjects=(f"t.{stream_name}",)))
    assert caught.value.code == "stream_subjects_overlap"
    assert await store.info(f"{stream_name}_2") is None


async def test_publish_acks_with_the_sequence_and_dedupes_by_msg_id(
    store: NatsStreamStore, stream_name: str
) -> None:
    spec = spec_for(stream_name)
    await store.ensure(spec)
    assert await store.publish(spec.subjects[0], b"a", msg_id="x") == 1
    assert await store.publish(spec.subjects[0], b"b") == 2
    assert await store.publish(spec.subjects[0], b"a again", msg_id="x") == 1
    with pytest.raises(NotFound) as caught:
        await store.publish(f"nobody.captures.{stream_name}", b"lost")
    assert caught.value.code == "stream_not_found"


async def test_a_reader_learns_of_a_deleted_stream(
    store: NatsStreamStore, stream_name: str
) -> None:
    spec = spec_for(stream_name)
    await filled(store, spec, 3)
    assert len(await store.fetch(stream_name, 1, 3)) == 3  # batch mode remembered
    await NatsStreamStore(store.conn).delete(stream_name)  # by another instance
    assert await store.fetch(stream_name, 1, 3) == ()
    assert await store.fetch_fallback(stream_name, 1, 3) == ()
    assert await store.info(stream_name) is None


@pytest.mark.slow
async def test_a_stopped_server_is_backend_unavailable_and_data_survives_a_restart(
    store: NatsStreamStore, stream_name: str, nats_server: NatsServer
) -> None:
    spec = spec_for(stream_name)
    await filled(store, spec, 3)
    nats_server.stop()
    try:
        with trio.fail_after(5):
            while store.conn.client.is_connected:  # noqa: ASYNC110 (no event to wait on)
                await trio.sleep(0.01)
        with trio.fail_after(0.5), pytest.raises(BackendUnavailable):  # fails fast
            await store.info(stream_name)
    finally:
        nats_server.start()
    with trio.fail_after(10):
        while True:
            try:
                state = await store.info(stream_name)
                break
            except BackendUnavailable:
                await trio.sleep(0.1)
    assert state == StreamState(1, 3, 3, 0)
    assert len(await store.fetch(stream_name, 1, 3)) == 3
