"""The client signer: API.md's vectors from a frozen clock, fresh nonces by default,
and an httpx Auth whose requests verify as the server sees them, sync and async."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import httpx
import nacl.signing
import pytest

from roomkeeper.client.keys import Identity
from roomkeeper.client.signer import RequestSigner, SignatureAuth, authority_of, new_nonce
from roomkeeper.core import (
    MAX_WINDOW,
    SignedRequest,
    Unauthorized,
    VerifiedSignature,
    verify_request,
)
from tests.signing_cases import KEYID, NOW, OTHER_SEED, SEED

CREATED = 1618884473
VECTOR_NONCE = "b3k2pp5k7z-50gnwp.yemd"
VECTOR_SIGNATURES = {
    ("GET", "/rooms/r1/history?limit=50", b""):
        "sig1=:XO9qziXu3gpkkOEMXQyULq5OdHSNUYK2ivv0C7YOfZ3M5Ra3BCxal5tMo88uHr3ioMXMv5tnpxicE7mw"
        "P3m7Ag==:",
    ("POST", "/rooms", b'{"name":"general"}'):
        "sig1=:wyhlutrApR0mTUXicMu3IphS9VxVZ9jre8cqgRsDrKkLjGkqtm5Fp2wuGBrnYDX3ZiFczhuytJxw4V6X"
        "qKhBCg==:",
}


def frozen_signer(key: bytes | nacl.signing.SigningKey | Identity = SEED, *,
                  authority: str | None = None, nonce: Callable[[], str] = lambda: VECTOR_NONCE,
                  lifetime: int = 60) -> RequestSigner:
    """The vectors' signer: clock at created (+0.9 s, which must floor), fixed nonce."""
    return RequestSigner(key, authority=authority, clock=lambda: CREATED + 0.9, nonce=nonce,
                         lifetime=lifetime)


@pytest.mark.parametrize(("method", "target", "body"), VECTOR_SIGNATURES)
def test_headers_reproduce_the_api_vectors_from_a_url(method: str, target: str,
                                                      body: bytes) -> None:
    headers = frozen_signer().headers(method, f"https://chat.example{target}", body)
    assert headers["Signature"] == VECTOR_SIGNATURES[method, target, body]
    assert f"created={CREATED};expires={CREATED + 60};" in headers["Signature-Input"]


@pytest.mark.parametrize(("method", "target", "body"), VECTOR_SIGNATURES)
def test_headers_reproduce_the_api_vectors_from_a_path_and_an_authority(
    method: str, target: str, body: bytes
) -> None:
    signer = frozen_signer(authority="chat.example")
    assert signer.headers(method.lower(), target, body)["Signature"] == VECTOR_SIGNATURES[
        method, target, body]


@pytest.mark.parametrize("key", [
    SEED,
    nacl.signing.SigningKey(SEED),
    Identity.from_seed(SEED),
])
def test_any_form_of_the_key_signs_as_the_same_keyid(
    key: bytes | nacl.signing.SigningKey | Identity,
) -> None:
    signer = frozen_signer(key)
    assert signer.keyid == KEYID
    assert signer.headers("GET", "https://chat.example/rooms/r1/history?limit=50")[
        "Signature"] == VECTOR_SIGNATURES["GET", "/rooms/r1/history?limit=50", b""]


def test_by_default_every_request_gets_a_fresh_128_bit_nonce_and_the_real_clock() -> None:
    signer = RequestSigner(SEED, authority="chat.example")
    nonces = set()
    for _ in range(20):
        headers = signer.headers("GET", "/rooms")
        verified = verify(headers, "GET", "chat.example", "/rooms", "", b"")
        assert len(verified.nonce) == 22  # base64url of 16 bytes
        assert verified.expires - verified.created == 60
        nonces.add(verified.nonce)
    assert len(nonces) == 20
    assert len({new_nonce() for _ in range(100)}) == 100


def verify(headers: dict[str, str], method: str, authority: str, path: str, query: str,
           body: bytes, now: float | None = None) -> VerifiedSignature:
    request = SignedRequest(method, authority, path, query, body, (headers["Content-Digest"],),
                            (headers["Signature-Input"],), (headers["Signature"],))
    if now is None:
        now = int(headers["Signature-Input"].split("created=")[1].split(";")[0])
    return verify_request(request, now=now)


def test_the_lifetime_sets_expires_within_the_servers_window() -> None:
    signer = frozen_signer(lifetime=MAX_WINDOW)
    headers = signer.headers("GET", "https://chat.example/")
    assert verify(headers, "GET", "chat.example", "/", "", b"").expires == CREATED + MAX_WINDOW
    for bad in (0, -1, MAX_WINDOW + 1):
        with pytest.raises(ValueError, match="lifetime"):
            RequestSigner(SEED, lifetime=bad)


def test_a_seed_must_be_32_bytes_and_a_path_needs_an_authority() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RequestSigner(SEED[:31])
    with pytest.raises(ValueError, match="authority"):
        RequestSigner(SEED).headers("GET", "/rooms")


def test_a_bad_nonce_source_is_refused_rather_than_sent() -> None:
    with pytest.raises(ValueError, match="nonce"):
        frozen_signer(nonce=lambda: "short").headers("GET", "https://chat.example/")


@pytest.mark.parametrize(("url", "authority", "path", "query"), [
    ("https://Chat.Example/rooms", "chat.example", "/rooms", ""),
    ("https://chat.example:443/rooms?", "chat.example", "/rooms", ""),
    ("http://chat.example:8080/a%2Fb/%41?x=%31&y", "chat.example:8080", "/a%2Fb/%41", "x=%31&y"),
    ("http://[::1]:9000/rooms#fragment", "[::1]:9000", "/rooms", ""),
    ("https://bücher.example", "xn--bcher-kva.example", "/", ""),
])
def test_the_url_is_read_as_httpx_sends_it(url: str, authority: str, path: str,
                                           query: str) -> None:
    headers = frozen_signer().headers("GET", url)
    verify(headers, "GET", authority, path, query, b"", now=CREATED)
    assert authority_of(httpx.URL(url)) == authority
    assert httpx.Request("GET", url).headers["host"] == authority


def test_the_signers_authority_wins_over_the_url_host() -> None:
    headers = frozen_signer(authority="public.example").headers("GET", "http://10.0.0.7:8080/x")
    verify(headers, "GET", "public.example", "/x", "", b"", now=CREATED)
    with pytest.raises(Unauthorized):
        verify(headers, "GET", "10.0.0.7:8080", "/x", "", b"", now=CREATED)


# --- SignatureAuth over httpx ----------------------------------------------------


class Server:
    """A MockTransport handler that verifies like the real middleware: Host as the
    authority (unless configured), the raw target, every header line."""

    def __init__(self, *, public_authority: str | None = None, now: float = NOW) -> None:
        self.public_authority = public_authority
        self.now = now
        self.seen: list[VerifiedSignature] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        signed = SignedRequest(
            request.method, self.public_authority or request.headers["host"], path, query,
            request.read(),
            tuple(request.headers.get_list("content-digest")),
            tuple(request.headers.get_list("signature-input")),
            tuple(request.headers.get_list("signature")),
        )
        try:
            verified = verify_request(signed, now=self.now)
        except Unauthorized:
            return httpx.Response(401, json={"error": "unauthorized"})
        self.seen.append(verified)
        if path == "/redirect":
            return httpx.Response(307, headers={"location": "/rooms?after=1"})
        return httpx.Response(200, json={"keyid": verified.keyid})


def clock_signer(*, authority: str | None = None) -> RequestSigner:
    counter = itertools.count(1)
    return RequestSigner(SEED, authority=authority, clock=lambda: NOW,
                         nonce=lambda: f"auth-nonce-{next(counter):012d}")


REQUESTS = [
    ("GET", "https://chat.example/rooms/r1/history?limit=50&before=%31", {}),
    ("POST", "https://chat.example/rooms", {"json": {"name": "general"}}),
    ("POST", "http://127.0.0.1:8080/rooms/r1/messages", {"content": bytes(range(256))}),
    ("DELETE", "https://chat.example/rooms/r1/members/" + KEYID, {}),
    ("GET", "https://chat.example/rooms/a%2Fb/history", {"params": {"limit": "5"}}),
]


@pytest.mark.parametrize(("method", "url", "kwargs"), REQUESTS)
def test_sync_requests_are_signed_and_verify(method: str, url: str,
                                             kwargs: dict[str, object]) -> None:
    server = Server()
    with httpx.Client(transport=httpx.MockTransport(server),
                      auth=SignatureAuth(clock_signer())) as client:
        response = client.request(method, url, **kwargs)
    assert response.status_code == 200, response.text
    assert response.json() == {"keyid": KEYID}
    assert len(server.seen) == 1


@pytest.mark.parametrize(("method", "url", "kwargs"), REQUESTS)
async def test_async_requests_are_signed_and_verify(method: str, url: str,
                                                    kwargs: dict[str, object]) -> None:
    server = Server()
    async with httpx.AsyncClient(transport=httpx.MockTransport(server),
                                 auth=SignatureAuth(clock_signer())) as client:
        response = await client.request(method, url, **kwargs)
    assert response.status_code == 200, response.text
    assert server.seen[0].keyid == KEYID


def test_a_streamed_body_is_read_before_signing() -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name":'
        yield b'"streamed"}'

    server = Server()
    with httpx.Client(transport=httpx.MockTransport(server),
                      auth=SignatureAuth(clock_signer())) as client:
        response = client.post("https://chat.example/rooms", content=chunks())
    assert response.status_code == 200


def test_redirects_are_not_re_signed_by_httpx_so_the_server_refuses_them() -> None:
    """The documented limit: httpx runs redirects inside one auth step. The stale
    signature must not pass for the new target."""
    server = Server()
    with httpx.Client(transport=httpx.MockTransport(server), follow_redirects=True,
                      auth=SignatureAuth(clock_signer())) as client:
        response = client.get("https://chat.example/redirect")
    assert response.status_code == 401
    assert len(server.seen) == 1
    with httpx.Client(transport=httpx.MockTransport(server),
                      auth=SignatureAuth(clock_signer())) as client:
        assert client.get("https://chat.example/redirect").status_code == 307


def test_earlier_signature_headers_are_replaced_not_repeated() -> None:
    server = Server()
    stale = {"Signature": "sig1=:AAAA:", "Signature-Input": "junk", "Content-Digest": "x=1"}
    with httpx.Client(transport=httpx.MockTransport(server),
                      auth=SignatureAuth(clock_signer())) as client:
        assert client.get("https://chat.example/rooms", headers=stale).status_code == 200


def test_the_authority_override_signs_for_the_public_name() -> None:
    server = Server(public_authority="chat.example")
    transport = httpx.MockTransport(server)
    with httpx.Client(transport=transport, auth=SignatureAuth(clock_signer())) as client:
        assert client.get("http://127.0.0.1:8080/rooms").status_code == 401
    auth = SignatureAuth(clock_signer(), authority="chat.example")
    with httpx.Client(transport=transport, auth=auth) as client:
        assert client.get("http://127.0.0.1:8080/rooms").status_code == 200
    with httpx.Client(transport=transport,
                      auth=SignatureAuth(clock_signer(authority="chat.example"))) as client:
        assert client.get("http://127.0.0.1:8080/rooms").status_code == 200


def test_auth_takes_a_bare_key_and_then_signs_with_the_real_clock() -> None:
    server = Server(now=time.time())
    auth = SignatureAuth(OTHER_SEED)
    assert auth.signer.keyid != KEYID
    with httpx.Client(transport=httpx.MockTransport(server), auth=auth) as client:
        assert client.get("https://chat.example/rooms").json() == {"keyid": auth.signer.keyid}
