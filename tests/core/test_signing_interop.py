"""Interop with an independent RFC 9421 implementation, http-message-signatures 3:
what it signs, the core accepts; what the core signs, it verifies.

The library reads any request object with ``method``, an absolute ``url`` and
``headers``; an ``httpx.Request`` is one.
"""

from __future__ import annotations

import datetime
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    VerifyResult,
    algorithms,
)

from roomkeeper.core import (
    COVERED_COMPONENTS,
    SIGNATURE_TAG,
    SignedRequest,
    Unauthorized,
    sign_request,
    verify_request,
)
from tests.signing_cases import KEYID, NOW, OTHER_SEED, SEED

PRIVATE = Ed25519PrivateKey.from_private_bytes(SEED)
RESOLVER = MappingKeyResolver(
    public_keys={KEYID: PRIVATE.public_key()},
    private_keys={KEYID: PRIVATE},
)

REQUESTS = [
    ("GET", "https://chat.example/rooms/r1/history?limit=50", b""),
    ("POST", "https://chat.example/rooms", b'{"name":"general"}'),
    ("DELETE", "http://Chat.Example:8080/rooms/r1/members/" + KEYID, b""),
    ("GET", "https://chat.example/rooms/a%2Fb/history?before=10&limit=%31", b""),
    ("POST", "https://[::1]:8443/rooms/r1/messages", bytes(range(256))),
]


def as_signed_request(request: httpx.Request) -> SignedRequest:
    """The request as the HTTP layer would hand it to the core (Host as authority)."""
    path, _, query = request.url.raw_path.decode("ascii").partition("?")
    return SignedRequest(
        method=request.method,
        authority=request.headers["host"],
        path=path,
        query=query,
        body=request.content,
        content_digest=tuple(request.headers.get_list("content-digest")),
        signature_input=tuple(request.headers.get_list("signature-input")),
        signature=tuple(request.headers.get_list("signature")),
    )


def library_signed(method: str, url: str, body: bytes, *, created: int,
                   private: Ed25519PrivateKey = PRIVATE, include_alg: bool = True,
                   components: tuple[str, ...] = COVERED_COMPONENTS) -> httpx.Request:
    request = httpx.Request(method, url, content=body)
    resolver = MappingKeyResolver(public_keys={}, private_keys={KEYID: private})
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver).sign(
        request,
        key_id=KEYID,
        created=datetime.datetime.fromtimestamp(created, datetime.UTC),
        expires=datetime.datetime.fromtimestamp(created + 60, datetime.UTC),
        nonce="library-nonce-0123456789",
        tag=SIGNATURE_TAG,
        include_alg=include_alg,
        covered_component_ids=components,
        body=body,
    )
    return request


@pytest.mark.parametrize(("method", "url", "body"), REQUESTS)
@pytest.mark.parametrize("include_alg", [True, False])
def test_requests_signed_by_the_library_are_accepted(method: str, url: str, body: bytes,
                                                     include_alg: bool) -> None:
    request = library_signed(method, url, body, created=NOW, include_alg=include_alg)
    # the library writes the parameters in its own order, alg included
    assert ";created=" in request.headers["signature-input"]
    verified = verify_request(as_signed_request(request), now=NOW + 7)
    assert (verified.keyid, verified.created, verified.expires) == (KEYID, NOW, NOW + 60)


def test_the_library_signing_with_another_key_is_refused() -> None:
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    request = library_signed("GET", REQUESTS[0][1], b"", created=NOW, private=other)
    with pytest.raises(Unauthorized, match="does not verify"):
        verify_request(as_signed_request(request), now=NOW)


def test_a_library_signature_with_the_default_components_is_refused() -> None:
    request = library_signed("GET", REQUESTS[0][1], b"", created=NOW,
                             components=("@method", "@authority", "@target-uri"))
    with pytest.raises(Unauthorized, match="covered components"):
        verify_request(as_signed_request(request), now=NOW)


def core_signed(method: str, url: str, body: bytes, created: int) -> httpx.Request:
    request = httpx.Request(method, url, content=body)
    signed = as_signed_request(request)
    request.headers.update(sign_request(
        SEED, method, signed.authority, signed.path, signed.query, body,
        created=created, expires=created + 60, nonce="core-nonce-0123456789ab",
    ))
    return request


def library_verify(request: httpx.Request) -> list[VerifyResult]:
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=RESOLVER)
    return list(verifier.verify(request, expect_tag=SIGNATURE_TAG, body=request.content,
                                require_components=COVERED_COMPONENTS))


@pytest.mark.parametrize(("method", "url", "body"), REQUESTS)
def test_signatures_made_by_the_core_verify_with_the_library(method: str, url: str,
                                                             body: bytes) -> None:
    # The library checks created/expires against the wall clock, which it cannot be
    # given; a signature made now is well inside its five seconds of skew.
    request = core_signed(method, url, body, created=int(time.time()))
    (result,) = library_verify(request)
    assert result.parameters["keyid"] == KEYID
    assert result.body == body


def test_the_library_refuses_a_core_signature_over_a_tampered_request() -> None:
    request = core_signed("POST", REQUESTS[1][1], REQUESTS[1][2], created=int(time.time()))
    tampered = httpx.Request("POST", "https://chat.example/rooms/other",
                             headers=request.headers, content=request.content)
    with pytest.raises(InvalidSignature):
        library_verify(tampered)
