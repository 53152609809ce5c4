"""The fast batch-reply path (replies.py, reads.BatchReader): the header reading that
replaces nats-py's for stored messages agrees with nats-py's own, and on a real server
the fast path is the one in use while everything else on the connection is untouched.
Pages themselves are compared, fast against nats-py-parsed against get-by-sequence, in
test_streams.py."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg

from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.reads import BatchReader
from roomkeeper.adapters.nats.replies import (
    has_header,
    header_int,
    is_status,
    route_raw,
    stored_sequence,
)
from roomkeeper.adapters.nats.streams import NatsStreamStore
from tests.conftest import NatsServer
from tests.nats.test_streams import filled, spec_for

SERVER_REPLY = (b"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: s\r\nNats-Sequence: 42\r\n"
                b"Nats-Time-Stamp: 2026-12-04T16:26:45.54548278Z\r\nNats-Num-Pending: 2\r\n"
                b"Nats-Last-Sequence: 41\r\n\r\n")


def nats_py_headers(block: bytes) -> dict[str, str]:
    """What nats-py makes of a header block without a status line."""
    return Client._parse_header_lines(block[len(b"NATS/1.0\r\n"):])


def test_the_sequence_of_a_server_reply() -> None:
    assert header_int(SERVER_REPLY, b"Nats-Sequence") == 42
    assert header_int(SERVER_REPLY, b"Nats-Last-Sequence") == 41
    assert has_header(SERVER_REPLY, b"Nats-Num-Pending")
    assert header_int(SERVER_REPLY, b"Status") is None
    assert header_int(None, b"Nats-Sequence") is None


def test_the_last_of_repeated_headers_counts_as_in_nats_py() -> None:
    # A publisher's stored header comes first; the server appends its own after it.
    block = b"NATS/1.0\r\nNats-Sequence: 5\r\nX-Nats-Sequence: 6\r\n" + SERVER_REPLY[10:]
    assert header_int(block, b"Nats-Sequence") == 42
    assert int(nats_py_headers(block)["Nats-Sequence"]) == 42


def test_status_lines_are_told_apart_from_headers() -> None:
    assert stored_sequence(SERVER_REPLY) == 42
    # A status line never counts as a stored message, even with a sequence header.
    assert stored_sequence(b"NATS/1.0 204 EOB\r\nNats-Sequence: 3\r\n\r\n") is None
    assert stored_sequence(None) is None
    assert is_status(b"NATS/1.0 204 EOB\r\nNats-Num-Pending: 0\r\n\r\n")
    assert is_status(b"NATS/1.0 503\r\n\r\n")
    assert not is_status(SERVER_REPLY)
    assert not is_status(b"NATS/1.0\r\nStatus: 204\r\n\r\n")
    assert not is_status(None)


_NAMES = st.sampled_from(["Nats-Sequence", "Nats-Stream", "Nats-Num-Pending", "Status",
                          "X-Nats-Sequence", "Nats-Sequence-X"])
_VALUES = st.one_of(st.integers(0, 2**64).map(str), st.sampled_from(["", "x", " 7 ", "-3"]))


@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
def test_header_reading_agrees_with_nats_py(lines: list[tuple[str, str]]) -> None:
    block = b"NATS/1.0\r\n" + b"".join(f"{n}: {v}\r\n".encode() for n, v in lines) + b"\r\n"
    parsed = nats_py_headers(block)
    assert has_header(block, b"Nats-Num-Pending") == ("Nats-Num-Pending" in parsed)
    if "Nats-Sequence" not in parsed:
        assert header_int(block, b"Nats-Sequence") is None
        assert stored_sequence(block) is None
        return
    try:
        expected: int | type[ValueError] = int(parsed["Nats-Sequence"])
    except ValueError:
        expected = ValueError
    if expected is ValueError:
        with pytest.raises(ValueError):
            header_int(block, b"Nats-Sequence")
    else:
        assert header_int(block, b"Nats-Sequence") == expected
        assert stored_sequence(block) == expected


async def test_data_replies_skip_nats_py_header_parsing(
    nats_server: NatsServer, stream_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Count nats-py's header parses on a fresh connection: a 20-message batch costs one,
    # for the EOB, not 21.
    parses = 0
    original = Client._process_headers

    async def counting(self: Client, headers: Any) -> Any:
        nonlocal parses
        parses += 1
        return await original(self, headers)

    monkeypatch.setattr(Client, "_process_headers", counting)
    async with open_connection(nats_server.url, connect_timeout=2) as conn:
        store = NatsStreamStore(conn)
        await filled(store, spec_for(stream_name), 20)
        reader = BatchReader(conn.client)
        before = parses
        page, _ = await conn.call(reader.fetch, stream_name, 1, 20, 2.0)
        assert reader.fast
        assert page is not None and [m.data for m in page] == [b"m%d" % n for n in range(1, 21)]
        assert parses - before == 1
        await conn.call(conn.js.delete_stream, stream_name)


async def test_other_subscriptions_on_the_connection_keep_nats_py_parsing(
    nats_conn: NatsConnection, stream_name: str
) -> None:
    store = NatsStreamStore(nats_conn)
    await filled(store, spec_for(stream_name), 3)
    assert len(await store.fetch(stream_name, 1, 3)) == 3  # the fast path is installed
    client = nats_conn.client

    async def round_trip() -> Msg:
        sub = await client.subscribe("t.plain")
        await client.publish("t.plain", b"body", headers={"Nats-Sequence": "9", "A": "b"})
        try:
            return await sub.next_msg(timeout=2)
        finally:
            await sub.unsubscribe()

    msg = await nats_conn.bridge.call(round_trip)
    assert (msg.data, msg.headers) == (b"body", {"Nats-Sequence": "9", "A": "b"})


def test_a_nats_py_without_the_hook_point_keeps_ordinary_callbacks() -> None:
    class Changed(Client):
        async def _process_msg(self, sid: int, subject: bytes, reply: bytes,
                               data: bytes, headers: bytes, extra: object = None) -> None:
            return None

    class Target:
        def on_raw(self, subject: bytes, headers: bytes | None, data: bytes) -> bool:
            raise AssertionError("never routed")

        def on_parsed(self, subject: bytes, headers: dict[str, str], data: bytes) -> None:
            raise AssertionError("never routed")

    client = Changed()
    assert not route_raw(client, 1, Target())
    assert "_process_msg" not in vars(client)
