"""The app under a real Hypercorn on a loopback socket, driven by httpx with the
client SDK's SignatureAuth: what the test client cannot show (raw targets as httpx puts
them on the wire, Host as the authority, Content-Length limits, HEAD)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.client.signer import RequestSigner, SignatureAuth
from roomkeeper.ports import Deployment
from tests.serving import serving


@pytest.fixture
def live_deployment() -> Deployment:
    return memory_deployment()  # the real clock: httpx signs with time.time()


@pytest.fixture
async def base_url(live_deployment: Deployment) -> AsyncIterator[str]:
    async with serving(create_app(live_deployment)) as url:
        yield url


def client(base_url: str, seed: bytes | None = b"\x07" * 32) -> httpx.AsyncClient:
    auth = None if seed is None else SignatureAuth(RequestSigner(seed))
    return httpx.AsyncClient(base_url=base_url, auth=auth, timeout=5)


async def test_signed_round_trip_over_a_socket(base_url: str) -> None:
    frames = [b"\x00first", b"second\xff"]
    async with client(base_url) as http:
        created = await http.post("/rooms", json={"name": "over the wire"})
        room_id = created.json()["id"]
        for frame in frames:
            published = await http.post(f"/rooms/{room_id}/messages", content=frame)
            assert published.status_code == 201
        history = await http.get(f"/rooms/{room_id}/history", params={"limit": 10})

    assert created.status_code == 201
    assert history.status_code == 200
    assert int(history.headers["content-length"]) == len(history.content)
    page = history.json()
    assert [base64.b64decode(m) for m in page["messages"]] == frames
    assert (page["first_seq"], page["last_seq"], page["has_more"]) == (1, 2, False)


async def test_unsigned_is_401_over_a_socket(base_url: str) -> None:
    async with client(base_url, seed=None) as http:
        reply = await http.get("/rooms/abcdefghijklmnopqrstuvwxyz/history")
        health = await http.get("/healthz")

    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == "Signature"
    assert reply.json()["error"] == "unauthorized"
    assert health.status_code == 200


async def test_the_raw_target_reaches_the_middleware(base_url: str) -> None:
    """httpx keeps '%2F' on the wire and signs it; the server must verify the same bytes
    (then route the decoded path, which is no endpoint)."""
    async with client(base_url) as http:
        reply = await http.get("/rooms/abc%2Fdef?x=%41")

    assert (reply.status_code, reply.json()["error"]) == (404, "not_found")


async def test_a_replayed_request_is_refused_over_a_socket(base_url: str) -> None:
    signer = RequestSigner(b"\x07" * 32)
    headers = signer.headers("GET", f"{base_url}/rooms")
    async with client(base_url, seed=None) as http:
        first = await http.get("/rooms", headers=headers)
        second = await http.get("/rooms", headers=headers)

    assert (first.status_code, second.status_code) == (200, 401)


async def test_an_oversized_content_length_is_413_before_the_body_is_sent(
    base_url: str,
) -> None:
    """The cap holds on the declared length: the server answers without waiting for
    the 2 MiB it was promised (a raw socket, since that is what a client cannot fake)."""
    host, port = base_url.removeprefix("http://").split(":")
    head = (b"POST /rooms HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n")
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(head)
        received = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in received or not received.endswith(b"}"):
                chunk = await stream.receive_some()
                if not chunk:
                    break
                received += chunk

    status_line, _, rest = received.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413")
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"] == "payload_too_large"


async def test_head_gets_headers_without_a_body(base_url: str) -> None:
    async with client(base_url) as http:
        reply = await http.head("/healthz")

    assert reply.status_code == 200
    assert reply.content == b""


async def test_no_content_answers_carry_no_content_type(base_url: str) -> None:
    async with client(base_url) as http:
        room_id = (await http.post("/rooms", json={"name": "short-lived"})).json()["id"]
        deleted = await http.delete(f"/rooms/{room_id}")
        preflight = await http.options(f"/rooms/{room_id}",
                                       headers={"Access-Control-Request-Method": "DELETE"})

    for reply in (deleted, preflight):
        assert (reply.status_code, reply.content) == (204, b"")
        assert "content-type" not in reply.headers
