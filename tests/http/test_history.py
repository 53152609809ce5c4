"""History over HTTP (R4, R5, R10, R2) and publishing over HTTP."""

from __future__ import annotations

import base64
import json

import pytest

from roomkeeper.adapters.http.responses import (
    CHUNK_BYTES,
    history_content_length,
    page_chunks,
)
from roomkeeper.core import Page, StoredMessage

from .conftest import ApiClient


def frames_of(page: dict[str, object]) -> list[bytes]:
    messages = page["messages"]
    assert isinstance(messages, list)
    return [base64.b64decode(m, validate=True) for m in messages]


async def fill(api: ApiClient, room: dict[str, str], count: int) -> None:
    for n in range(count):
        await api.deployment.bus.publish(room["subject"], b"frame %d" % n)


async def test_golden_three_frames_in_order_exact_bytes(api: ApiClient) -> None:
    room = await api.create_room()
    published = [b"\x00\xff binary \r\n", b"", "üñï".encode()]
    for frame in published:
        # A plain core-NATS publish, as a browser would do it (R3).
        await api.deployment.bus.publish(room["subject"], frame)

    reply = await api.history(room["id"])

    assert reply.status == 200
    page = reply.json()
    assert frames_of(page) == published
    assert page == {"messages": [base64.b64encode(f).decode() for f in published],
                    "first_seq": 1, "last_seq": 3, "has_more": False}
    assert reply.headers["Content-Length"] == str(len(reply.body))


@pytest.mark.parametrize(
    ("stored", "query", "expected", "has_more"),
    [
        (250, "", range(50, 250), True),  # default limit 200
        (1100, "limit=5000", range(100, 1100), True),  # clamped to 1000
        (10, "limit=3", range(7, 10), True),  # the newest 3
        (10, "limit=10", range(10), False),
    ],
)
async def test_limit(api: ApiClient, stored: int, query: str, expected: range,
                     has_more: bool) -> None:
    room = await api.create_room()
    await fill(api, room, stored)

    page = (await api.history(room["id"], query)).json()

    assert frames_of(page) == [b"frame %d" % n for n in expected]
    assert page["first_seq"] == expected[0] + 1
    assert page["last_seq"] == expected[-1] + 1
    assert page["has_more"] is has_more


async def test_cursors_page_backwards_and_forwards(api: ApiClient) -> None:
    room = await api.create_room()
    await fill(api, room, 10)

    older = (await api.history(room["id"], "limit=4&before=5")).json()
    newer = (await api.history(room["id"], "limit=4&after=8")).json()

    assert frames_of(older) == [b"frame %d" % n for n in range(0, 4)]
    assert (older["first_seq"], older["last_seq"], older["has_more"]) == (1, 4, False)
    assert frames_of(newer) == [b"frame 8", b"frame 9"]
    assert newer["has_more"] is False


async def test_empty_room_gives_empty_list_never_null(api: ApiClient) -> None:
    room = await api.create_room()

    reply = await api.history(room["id"])

    assert reply.json() == {"messages": [], "first_seq": None, "last_seq": None,
                            "has_more": False}


async def test_ephemeral_room_has_no_history(api: ApiClient) -> None:
    room = await api.create_room(mode="ephemeral")
    await api.deployment.bus.publish(room["subject"], b"gone")

    assert room["persisted"] is False
    assert (await api.history(room["id"])).json()["messages"] == []


@pytest.mark.parametrize("jetstream", [False])
async def test_without_a_stream_store_rooms_work_and_history_is_empty(api: ApiClient) -> None:
    """R2: nothing asks for a stream when no JetStream is wired in."""
    room = await api.create_room()
    await api.deployment.bus.publish(room["subject"], b"not captured")

    assert room["mode"] == "matrix"
    assert room["persisted"] is False
    assert (await api.history(room["id"])).json() == {
        "messages": [], "first_seq": None, "last_seq": None, "has_more": False}
    published = await api.call("POST", f"/rooms/{room['id']}/messages", body=b"x")
    assert (published.status, published.json()) == (202, {})


async def test_history_checks_run_signature_then_room_then_membership(
    api: ApiClient,
) -> None:
    """R4: unsigned is 401 even for a missing room; a signed stranger is 403; a
    missing room is 404."""
    room = await api.create_room()
    missing = "a" * 26

    unsigned_missing = await api.raw("GET", f"/rooms/{missing}/history")
    unsigned_existing = await api.raw("GET", f"/rooms/{room['id']}/history")
    stranger = await api.history(room["id"], as_="bob")
    not_found = await api.history(missing)
    not_an_id = await api.history("NOT-A-ROOM-ID")

    assert (unsigned_missing.status, unsigned_missing.error) == (401, "unauthorized")
    assert unsigned_existing.body == unsigned_missing.body
    assert (stranger.status, stranger.error) == (403, "not_a_member")
    assert (not_found.status, not_found.error) == (404, "room_not_found")
    assert not_an_id.status == 404


async def test_publish_persisted_is_201_with_seq_visible_in_history(api: ApiClient) -> None:
    room = await api.create_room()
    frame = bytes(range(256))

    first = await api.call("POST", f"/rooms/{room['id']}/messages", body=frame,
                           headers={"Content-Type": "application/octet-stream"})
    empty = await api.call("POST", f"/rooms/{room['id']}/messages", body=b"")

    assert (first.status, first.json()) == (201, {"seq": 1})
    assert (empty.status, empty.json()) == (201, {"seq": 2})
    page = (await api.history(room["id"])).json()
    assert frames_of(page) == [frame, b""]
    assert page["last_seq"] == 2


async def test_publish_ephemeral_is_202_and_reaches_subscribers(api: ApiClient) -> None:
    room = await api.create_room(mode="ephemeral")
    async with api.deployment.bus.subscribe(room["subject"]) as frames:
        reply = await api.call("POST", f"/rooms/{room['id']}/messages", body=b"hello")
        received = await frames.__anext__()

    assert (reply.status, reply.json()) == (202, {})
    assert received == b"hello"


async def test_publish_is_for_members_only(api: ApiClient) -> None:
    room = await api.create_room()

    reply = await api.call("POST", f"/rooms/{room['id']}/messages", as_="bob", body=b"x")

    assert (reply.status, reply.error) == (403, "not_a_member")
    assert (await api.history(room["id"])).json()["messages"] == []


@pytest.mark.parametrize("sizes", [[], [0], [1, 2, 3], [70_000] * 3, [10] * 5000])
async def test_streamed_page_is_exact_json_with_exact_length(sizes: list[int]) -> None:
    messages = tuple(StoredMessage(seq, bytes([seq % 256]) * size)
                     for seq, size in enumerate(sizes, start=1))
    page = Page(messages=messages, has_more=bool(sizes))

    body = b"".join([chunk async for chunk in page_chunks(page)])

    assert len(body) == history_content_length(page)
    assert json.loads(body) == {
        "messages": [base64.b64encode(m.data).decode() for m in messages],
        "first_seq": page.first_seq, "last_seq": page.last_seq, "has_more": page.has_more,
    }


async def test_large_page_streams_in_bounded_chunks() -> None:
    """A limit=1000 page of 64 KiB frames is ~87 MB of JSON: it must never be one string."""
    frame = b"\xab" * 65536
    page = Page(messages=tuple(StoredMessage(s, frame) for s in range(1, 1001)),
                has_more=True)

    sizes = [len(chunk) async for chunk in page_chunks(page)]

    assert sum(sizes) == history_content_length(page) > 87_000_000
    # At most one chunk's worth plus the frame that crossed the line.
    assert max(sizes) < CHUNK_BYTES + 87_384 + 64
    assert len(sizes) > 50
