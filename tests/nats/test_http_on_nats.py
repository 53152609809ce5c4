"""The HTTP API on a real nats-server: what API.md and R1-R11 promise, end to end.

Frames go in the ways clients really publish them: core NATS from a client that knows
nothing of roomkeeper (the central fix, R3), JetStream-acked core requests for bulk
fills, and the HTTP publish endpoint. They come out through history, checked byte for
byte.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.nats import NatsConnection
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.adapters.nats.server import NatsServerProcess
from roomkeeper.adapters.nats.streams import stream_config
from roomkeeper.client.signer import RequestSigner, SignatureAuth
from roomkeeper.core import (
    DUPLICATE_WINDOW_SECONDS,
    MAX_LIMIT,
    RoomId,
    StreamLimits,
    new_room_id,
    stream_config_for_room,
    stream_name_for_room,
)
from tests.conftest import NatsServer
from tests.nats.http_stack import (
    Stack,
    decode,
    fill,
    frames,
    open_api,
    plain_publish,
    wait_for_messages,
)
from tests.serving import serving


@pytest.fixture
async def stack(nats_server: NatsServer, nats_conn: NatsConnection) -> AsyncIterator[Stack]:
    async with open_api(nats_server.url) as opened:
        yield opened


def stream_of(room_id: str) -> str:
    return stream_name_for_room(RoomId(room_id))


async def stream_names(conn: NatsConnection) -> set[str | None]:
    async def names() -> set[str | None]:
        return {info.config.name for info in await conn.js.streams_info()}

    return await conn.call(names)


# --- frames in, the same bytes out -----------------------------------------------------------

GOLDEN = [b"first", b"\x00\xff\x80second", "\N{KEY} third".encode()]


async def test_golden_three_frames_over_a_socket(
    nats_server: NatsServer, nats_conn: NatsConnection
) -> None:
    """Published over HTTP, read over HTTP, through a real Hypercorn: the exact body."""
    signer = RequestSigner(os.urandom(32))
    async with open_nats_deployment(nats_server.url) as deployment:
        async with serving(create_app(deployment)) as base_url, httpx.AsyncClient(
            base_url=base_url, auth=SignatureAuth(signer), timeout=5
        ) as http:
            room_id = (await http.post("/rooms", json={"name": "golden"})).json()["id"]
            published = [await http.post(f"/rooms/{room_id}/messages", content=frame)
                         for frame in GOLDEN]
            history = await http.get(f"/rooms/{room_id}/history")
        await deployment.rooms.delete(room_id)

    assert [(r.status_code, r.json()) for r in published] == [
        (201, {"seq": 1}), (201, {"seq": 2}), (201, {"seq": 3})]
    assert history.status_code == 200
    assert history.headers["content-type"] == "application/json"
    assert history.content == (
        b'{"messages":["Zmlyc3Q=","AP+Ac2Vjb25k","8J+UkSB0aGlyZA=="],'
        b'"first_seq":1,"last_seq":3,"has_more":false}'
    )


async def test_a_plain_core_nats_client_is_captured_from_its_first_frame(
    stack: Stack, nats_server: NatsServer
) -> None:
    """R3, the central fix: a client with no JetStream at all (its own connection, core
    publishes only) publishes into a room created over HTTP; history has its bytes."""
    room_id = await stack.create_room()
    sent = frames(5)

    await plain_publish(nats_server.url, f"rooms.{room_id}", sent)
    page = await wait_for_messages(stack, room_id, len(sent))

    assert decode(page["messages"]) == sent
    assert (page["first_seq"], page["last_seq"], page["has_more"]) == (1, 5, False)


async def test_the_stream_exists_right_after_create_with_the_core_config(
    stack: Stack, nats_conn: NatsConnection
) -> None:
    """R1 and R8: the room's stream is there before anyone publishes, configured by
    ``stream_config_for_room`` and nothing else."""
    room_id = await stack.create_room()

    info = await nats_conn.call(nats_conn.js.stream_info, stream_of(room_id))

    config = info.config
    assert config.subjects == [f"rooms.{room_id}"]
    assert (config.storage, config.retention, config.discard) == (
        "file", "limits", "old")
    assert config.allow_direct is True
    assert config.duplicate_window == DUPLICATE_WINDOW_SECONDS == 120
    assert config.num_replicas == 1
    assert (config.max_age, config.max_msgs) == (0, -1)  # unlimited by default
    wanted = stream_config(stream_config_for_room(RoomId(room_id), replicas=1))
    for field in ("name", "subjects", "storage", "retention", "discard", "allow_direct",
                  "duplicate_window", "num_replicas", "max_age", "max_msgs"):
        assert getattr(config, field) == getattr(wanted, field), field
    assert info.state.messages == 0


async def test_stream_limits_reach_the_room_streams(
    nats_server: NatsServer, nats_conn: NatsConnection
) -> None:
    limits = StreamLimits(max_age_seconds=3600, max_msgs=3)
    async with open_api(nats_server.url, limits=limits) as limited:
        room_id = await limited.create_room()
        await fill(nats_conn, room_id, frames(5))
        info = await nats_conn.call(nats_conn.js.stream_info, stream_of(room_id))
        kept = await limited.page(room_id)

    assert (info.config.max_age, info.config.max_msgs) == (3600, 3)
    assert (kept["first_seq"], kept["last_seq"], kept["has_more"]) == (3, 5, False)


async def test_an_ephemeral_room_has_no_stream(
    stack: Stack, nats_conn: NatsConnection
) -> None:
    room_id = await stack.create_room(mode="ephemeral")

    page = await stack.page(room_id)

    assert stream_of(room_id) not in await stream_names(nats_conn)
    assert page == {"messages": [], "first_seq": None, "last_seq": None, "has_more": False}


# --- the page (R5) -------------------------------------------------------------------------------


async def test_the_default_page_is_the_newest_200(stack: Stack, nats_conn: NatsConnection) -> None:
    room_id = await stack.create_room()
    sent = frames(250)
    assert await fill(nats_conn, room_id, sent) == 250

    page = await stack.page(room_id)

    assert decode(page["messages"]) == sent[50:]
    assert (page["first_seq"], page["last_seq"], page["has_more"]) == (51, 250, True)


async def test_a_limit_above_the_cap_gives_1000(stack: Stack, nats_conn: NatsConnection) -> None:
    room_id = await stack.create_room()
    sent = frames(1100)
    await fill(nats_conn, room_id, sent)

    page = await stack.page(room_id, "limit=5000")
    three = await stack.page(room_id, "limit=3")

    assert decode(page["messages"]) == sent[-MAX_LIMIT:]
    assert (page["first_seq"], page["last_seq"], page["has_more"]) == (101, 1100, True)
    assert decode(three["messages"]) == sent[-3:]
    assert (three["first_seq"], three["last_seq"]) == (1098, 1100)


async def test_an_empty_room_gives_an_empty_list(stack: Stack) -> None:
    room_id = await stack.create_room()

    reply = await stack.api.history(room_id)

    assert reply.body == b'{"messages":[],"first_seq":null,"last_seq":null,"has_more":false}'


# --- who may read (R4) -------------------------------------------------------------------------


async def test_checks_run_signature_then_room_then_membership(stack: Stack) -> None:
    room_id = await stack.create_room()
    missing = new_room_id(os.urandom(16))

    unsigned = await stack.api.raw("GET", f"/rooms/{room_id}/history")
    unsigned_missing = await stack.api.raw("GET", f"/rooms/{missing}/history")
    not_found = await stack.api.history(missing)
    outsider = await stack.api.history(room_id, as_="bob")

    for reply in (unsigned, unsigned_missing):
        assert (reply.status, reply.error) == (401, "unauthorized")
        assert reply.headers["WWW-Authenticate"] == "Signature"
    assert (not_found.status, not_found.error) == (404, "room_not_found")
    assert (outsider.status, outsider.error) == (403, "not_a_member")


# --- lazy backfill (R7) and deletions (R10) --------------------------------------------------


async def test_a_missing_stream_is_recreated_by_history_and_captures_again(
    stack: Stack, nats_server: NatsServer, nats_conn: NatsConnection
) -> None:
    room_id = await stack.create_room()
    await fill(nats_conn, room_id, frames(3))
    await nats_conn.call(nats_conn.js.delete_stream, stream_of(room_id))
    lost = frames(1)
    await plain_publish(nats_server.url, f"rooms.{room_id}", lost)  # captured by nothing

    first = await stack.page(room_id)
    recreated = stream_of(room_id) in await stream_names(nats_conn)
    after = frames(2)
    await plain_publish(nats_server.url, f"rooms.{room_id}", after)
    await wait_for_messages(stack, room_id, 2)

    assert first["messages"] == [] and recreated
    assert await stack.frames(room_id) == after  # and nothing from before the backfill


async def test_deleted_messages_are_skipped_and_the_page_stays_full(
    stack: Stack, nats_conn: NatsConnection
) -> None:
    room_id = await stack.create_room()
    sent = frames(20)
    await fill(nats_conn, room_id, sent)
    for seq in (20, 18, 15, 1):
        await nats_conn.call(nats_conn.js.delete_msg, stream_of(room_id), seq)

    newest = await stack.page(room_id, "limit=5")
    older = await stack.page(room_id, f"limit=5&before={newest['first_seq']}")
    oldest = await stack.page(room_id, "limit=3&after=0")

    assert decode(newest["messages"]) == [sent[i - 1] for i in (13, 14, 16, 17, 19)]
    assert (newest["first_seq"], newest["last_seq"], newest["has_more"]) == (13, 19, True)
    assert decode(older["messages"]) == [sent[i - 1] for i in (8, 9, 10, 11, 12)]
    assert decode(oldest["messages"]) == [sent[i - 1] for i in (2, 3, 4)]
    assert oldest["first_seq"] == 2


# --- paging a large stream --------------------------------------------------------------------


async def test_before_and_after_walk_5000_messages_both_ways(
    stack: Stack, nats_conn: NatsConnection
) -> None:
    room_id = await stack.create_room()
    sent = frames(5000, size=64)
    assert await fill(nats_conn, room_id, sent) == 5000

    backwards = await _walk(stack, room_id, "before", limit=1000)
    forwards = await _walk(stack, room_id, "after", limit=700)

    assert [len(p["messages"]) for p in backwards] == [1000] * 5
    assert [p["has_more"] for p in backwards] == [True] * 4 + [False]
    assert [m for p in reversed(backwards) for m in decode(p["messages"])] == sent
    assert [len(p["messages"]) for p in forwards] == [700] * 7 + [100]
    assert [p["has_more"] for p in forwards] == [True] * 7 + [False]
    assert [m for p in forwards for m in decode(p["messages"])] == sent
    assert (forwards[0]["first_seq"], forwards[-1]["last_seq"]) == (1, 5000)


async def _walk(stack: Stack, room_id: str, direction: str, limit: int) -> list[dict[str, Any]]:
    """Every page from one end to the other, following the cursors."""
    cursor = "" if direction == "before" else "&after=0"
    pages = []
    while True:
        page = await stack.page(room_id, f"limit={limit}{cursor}")
        pages.append(page)
        if not page["has_more"]:
            return pages
        edge = page["first_seq"] if direction == "before" else page["last_seq"]
        cursor = f"&{direction}={edge}"


# --- publishing over HTTP ----------------------------------------------------------------------


async def test_http_publish_into_a_persisted_room_is_201_with_its_sequence(
    stack: Stack, nats_conn: NatsConnection
) -> None:
    room_id = await stack.create_room()
    await fill(nats_conn, room_id, frames(2))

    reply = await stack.api.call("POST", f"/rooms/{room_id}/messages", body=b"\x00frame",
                                 headers={"Content-Type": "application/octet-stream"})

    assert (reply.status, reply.json()) == (201, {"seq": 3})
    assert (await stack.frames(room_id, "limit=1")) == [b"\x00frame"]


async def test_http_publish_into_an_ephemeral_room_is_202_and_reaches_subscribers(
    stack: Stack,
) -> None:
    room_id = await stack.create_room(mode="ephemeral")
    async with stack.deployment.bus.subscribe(f"rooms.{room_id}") as received:
        reply = await stack.api.call("POST", f"/rooms/{room_id}/messages", body=b"live")
        with trio.fail_after(2):
            frame = await received.__anext__()

    assert reply.status == 202
    assert frame == b"live"


# --- NATS going away and coming back ------------------------------------------------------------


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsServerProcess]:
    """A nats-server of this test's own, to stop and start without disturbing others."""
    with NatsServerProcess(tmp_path / "nats") as server:
        yield server


async def test_requests_get_503_with_retry_after_while_nats_is_down(
    own_nats: NatsServerProcess,
) -> None:
    async with open_api(own_nats.url) as api:
        room_id = await api.create_room()
        await trio.to_thread.run_sync(own_nats.stop)

        started = time.monotonic()
        down = [await api.api.history(room_id), await api.api.raw("GET", "/readyz"),
                await api.api.call("POST", "/rooms", json={"name": "while down"}),
                await api.api.call("POST", f"/rooms/{room_id}/messages", body=b"lost")]
        took = time.monotonic() - started
        alive = await api.api.raw("GET", "/healthz")

    for reply in down:
        assert (reply.status, reply.error) == (503, "backend_unavailable"), reply
        assert int(reply.headers["Retry-After"]) >= 1
    assert took < 1.0, f"four requests took {took:.2f}s while NATS was down"
    assert alive.status == 200


@pytest.mark.slow  # nats-py waits a second between reconnect attempts
async def test_requests_succeed_again_once_nats_is_back(own_nats: NatsServerProcess) -> None:
    """Same port, same store: no restart of roomkeeper, and nothing stored is lost."""
    async with open_api(own_nats.url) as api:
        room_id = await api.create_room()
        await plain_publish(own_nats.url, f"rooms.{room_id}", [b"kept"])
        await wait_for_messages(api, room_id, 1)
        await trio.to_thread.run_sync(own_nats.stop)
        assert (await api.api.history(room_id)).status == 503

        await trio.to_thread.run_sync(own_nats.start)
        waited = await _until_ready(api, within=5)
        back = await api.page(room_id)
        published = await api.api.call("POST", f"/rooms/{room_id}/messages", body=b"new")

    assert decode(back["messages"]) == [b"kept"]
    assert (published.status, published.json()) == (201, {"seq": 2})
    assert waited < 3


async def _until_ready(stack: Stack, within: float) -> float:
    """Seconds until /readyz said 200; fails after ``within``."""
    started = trio.current_time()
    while (await stack.api.raw("GET", "/readyz")).status != 200:
        assert trio.current_time() - started < within, "roomkeeper never became ready"
        await trio.sleep(0.05)
    return trio.current_time() - started
