"""RoomsClient against the real app in process (memory deployment, no sockets): typed
results for every endpoint, typed errors with the server's codes."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from roomkeeper.client import (
    ApiError,
    BadRequestError,
    ConflictError,
    ForbiddenError,
    HistoryPage,
    Identity,
    NotFoundError,
    PayloadTooLargeError,
    RoomInfo,
    RoomsClient,
    ServerUnreachable,
    ServiceUnavailableError,
    UnauthorizedError,
    UnexpectedResponse,
)
from roomkeeper.client.http import IN_PROCESS_URL
from roomkeeper.core import BackendUnavailable, Mode, NotFound, subject_for_room
from roomkeeper.testing import InProcessDeployment, roomkeeper_deployment

MISSING_ROOM = "a" * 26


@pytest.fixture
async def rk() -> AsyncIterator[InProcessDeployment]:
    async with roomkeeper_deployment(["alice", "bob", "carol"]) as deployment:
        yield deployment


async def test_create_room_returns_a_typed_room(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    room = await alice.create_room("general", members=[rk.keyid("bob")])
    assert isinstance(room, RoomInfo)
    assert room.name == "general"
    assert room.mode is Mode.MATRIX
    assert room.owner == rk.keyid("alice")
    assert room.members == (rk.keyid("alice"), rk.keyid("bob"))
    assert room.subject == subject_for_room(room.id)
    assert room.persisted is True
    assert abs((datetime.now(UTC) - room.created_at).total_seconds()) < 60


async def test_ephemeral_room_is_not_persisted(rk: InProcessDeployment) -> None:
    room = await rk.clients["alice"].create_room("lobby", mode="ephemeral")
    assert room.mode is Mode.EPHEMERAL
    assert room.persisted is False


async def test_list_get_and_membership_round_trip(rk: InProcessDeployment) -> None:
    alice, bob = rk.clients["alice"], rk.clients["bob"]
    room = await alice.create_room("general")
    assert await bob.list_rooms() == []
    added = await alice.add_member(room.id, rk.keyid("bob"))
    assert added.members == (rk.keyid("alice"), rk.keyid("bob"))
    assert [r.id for r in await bob.list_rooms()] == [room.id]
    assert await bob.get_room(room.id) == added
    removed = await bob.remove_member(room.id, rk.keyid("bob"))  # leaving is allowed
    assert removed.members == (rk.keyid("alice"),)
    with pytest.raises(ForbiddenError):
        await bob.get_room(room.id)


async def test_delete_room_then_it_is_gone(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    room = await alice.create_room("general")
    await alice.delete_room(room.id)
    with pytest.raises(NotFoundError) as caught:
        await alice.get_room(room.id)
    assert caught.value.status == 404
    assert caught.value.code == "room_not_found"


async def test_errors_carry_server_code_and_status(rk: InProcessDeployment) -> None:
    alice, bob = rk.clients["alice"], rk.clients["bob"]
    room = await alice.create_room("general")
    with pytest.raises(ForbiddenError) as forbidden:
        await bob.history(room.id)
    assert (forbidden.value.status, forbidden.value.code) == (403, "not_a_member")
    with pytest.raises(BadRequestError) as bad:
        await alice.add_member(room.id, "not-a-keyid")
    assert (bad.value.status, bad.value.code) == (400, "invalid_keyid")
    with pytest.raises(ConflictError) as conflict:
        await alice.remove_member(room.id, rk.keyid("alice"))
    assert (conflict.value.status, conflict.value.code) == (409, "owner_cannot_be_removed")
    with pytest.raises(BadRequestError) as bad_limit:
        await alice.history(room.id, limit=0)
    assert bad_limit.value.code == "invalid_limit"


async def test_api_errors_are_also_core_errors(rk: InProcessDeployment) -> None:
    with pytest.raises(NotFound) as caught:
        await rk.clients["alice"].get_room(MISSING_ROOM)
    assert isinstance(caught.value, ApiError)
    assert caught.value.to_json()["error"] == "room_not_found"


async def test_a_path_like_room_id_stays_one_segment(rk: InProcessDeployment) -> None:
    # "../rooms" must not turn GET /rooms/{id} into GET /rooms.
    with pytest.raises(NotFoundError):
        await rk.clients["alice"].get_room("../rooms")


async def test_wrong_authority_is_unauthorized(rk: InProcessDeployment) -> None:
    transport = httpx.ASGITransport(app=rk.app)
    async with RoomsClient(IN_PROCESS_URL, Identity.generate(), transport=transport,
                           authority="elsewhere.example") as client:
        with pytest.raises(UnauthorizedError) as caught:
            await client.list_rooms()
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")


async def test_backend_outage_is_service_unavailable_and_nothing_is_created(
    rk: InProcessDeployment,
) -> None:
    alice = rk.clients["alice"]
    rk.fail_next_ensure()
    with pytest.raises(ServiceUnavailableError) as caught:
        await alice.create_room("general")
    assert caught.value.status == 503
    assert caught.value.retry_after >= 1
    assert isinstance(caught.value, BackendUnavailable)
    assert await alice.list_rooms() == []  # R1: no orphan room
    assert (await alice.create_room("general")).name == "general"  # healed after one


async def test_jetstream_unavailable_until_healed(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    rk.jetstream_unavailable()
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            await alice.create_room("general")
    rk.heal()
    await alice.create_room("general")
    assert "streams.ensure" in rk.calls.ops


async def test_oversized_frame_is_payload_too_large(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    room = await alice.create_room("general")
    with pytest.raises(PayloadTooLargeError) as caught:
        await alice.publish(room.id, b"x" * (1024 * 1024 + 1))
    assert caught.value.status == 413


async def test_publish_gives_the_sequence_or_none(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    matrix = await alice.create_room("general")
    ephemeral = await alice.create_room("lobby", mode=Mode.EPHEMERAL)
    assert [await alice.publish(matrix.id, b"f%d" % i) for i in range(3)] == [1, 2, 3]
    assert await alice.publish(ephemeral.id, b"gone") is None
    assert await alice.history(ephemeral.id) == HistoryPage((), None, None, False)


async def test_history_pages_with_before_and_after(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    room = await alice.create_room("general")
    frames = [b"frame-%d" % i for i in range(1, 8)]
    for frame in frames:
        await alice.publish(room.id, frame)
    newest = await alice.history(room.id, limit=3)
    assert newest == HistoryPage(tuple(frames[4:]), 5, 7, True)
    older = await alice.history(room.id, limit=3, before=5)
    assert older == HistoryPage(tuple(frames[1:4]), 2, 4, True)
    newer = await alice.history(room.id, limit=10, after=2)
    assert newer == HistoryPage(tuple(frames[2:]), 3, 7, False)


async def test_iter_history_pages_backwards_through_everything(
    rk: InProcessDeployment,
) -> None:
    alice = rk.clients["alice"]
    room = await alice.create_room("general")
    frames = [b"frame-%d" % i for i in range(1, 8)]
    for frame in frames:
        await alice.publish(room.id, frame)
    pages = [page async for page in alice.iter_history(room.id, page_size=3)]
    assert [(p.first_seq, p.last_seq) for p in pages] == [(5, 7), (2, 4), (1, 1)]
    assert [f for page in reversed(pages) for f in page.frames] == frames
    # Only the newest frames: the last request asks for just what is still missing.
    newest = [page async for page in alice.iter_history(room.id, page_size=3, max_frames=4)]
    assert [(p.first_seq, p.last_seq) for p in newest] == [(5, 7), (4, 4)]
    assert [page async for page in alice.iter_history(room.id, max_frames=0)] == []


async def test_iter_history_of_an_empty_room_yields_nothing(rk: InProcessDeployment) -> None:
    alice = rk.clients["alice"]
    room = await alice.create_room("general")
    assert [page async for page in alice.iter_history(room.id)] == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connections to it are refused


async def test_nothing_listening_is_server_unreachable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with RoomsClient(url, Identity.generate(), timeout=2) as client:
        with pytest.raises(ServerUnreachable) as caught:
            await client.list_rooms()
    assert caught.value.url == url
    assert caught.value.code == "server_unreachable"
    assert "ConnectError" in str(caught.value)


def _answer(status: int, body: bytes, headers: dict[str, str] | None = None,
            ) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, content=body,
                                                               headers=headers))


async def _list_rooms_through(transport: httpx.MockTransport) -> None:
    async with RoomsClient("http://proxy.example", Identity.generate(),
                           transport=transport) as client:
        await client.list_rooms()


async def test_an_error_page_that_is_not_json_keeps_its_status() -> None:
    with pytest.raises(ApiError) as caught:
        await _list_rooms_through(_answer(502, b"<html>Bad Gateway</html>"))
    assert (caught.value.status, caught.value.code) == (502, "http_502")
    assert "502" in caught.value.message


async def test_a_503_without_retry_after_defaults_to_one_second() -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        await _list_rooms_through(_answer(503, b'{"error":"x","message":"down"}'))
    assert (caught.value.code, caught.value.message, caught.value.retry_after) == (
        "x", "down", 1)


async def test_retry_after_from_the_header() -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        await _list_rooms_through(_answer(503, b"{}", {"Retry-After": "7"}))
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("body", [
    b"not json",
    b'{"something": "else"}',
    b'{"rooms": [{"id": "x"}]}',
    b'{"rooms": [{"id": "aaaaaaaaaaaaaaaaaaaaaaaaaa", "name": "n", "mode": "matrix",'
    b' "owner": "o", "members": ["o"], "created_at": "2026-01-01T00:00:00Z",'
    b' "subject": "rooms.other", "persisted": true}]}',
])
async def test_an_answer_that_is_not_the_api_is_unexpected(body: bytes) -> None:
    with pytest.raises(UnexpectedResponse):
        await _list_rooms_through(_answer(200, body))


@pytest.mark.parametrize("doc", [
    {"messages": ["!!"], "first_seq": 1, "last_seq": 1, "has_more": False},
    {"messages": [], "first_seq": 1, "last_seq": 1, "has_more": False},
    {"messages": ["AA=="], "first_seq": None, "last_seq": None, "has_more": False},
    {"messages": ["AA=="], "first_seq": 0, "last_seq": 1, "has_more": False},
    {"messages": ["AA=="], "first_seq": 1, "last_seq": 1, "has_more": "no"},
    {"messages": None},
])
def test_malformed_history_pages_are_unexpected(doc: object) -> None:
    with pytest.raises(UnexpectedResponse):
        HistoryPage.from_json(doc)
