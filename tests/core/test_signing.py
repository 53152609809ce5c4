"""Request signing in the core: API.md's vectors byte for byte, RFC 9421's own B.2.6
vector, digests, what is accepted at the edges, and what sign_request refuses to sign.
The shared bad cases run in test_signing_bad_cases.py."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import nacl.signing
import pytest

from roomkeeper.core import (
    MAX_CLOCK_SKEW,
    MAX_WINDOW,
    SignedRequest,
    Unauthorized,
    VerifiedSignature,
    content_digest,
    sign_request,
    signature_base,
    verify_request,
)
from roomkeeper.core._signing import signature_base_for
from tests.core.signing_checks import accepts, refuses
from tests.signing_cases import (
    AUTHORITY,
    KEYID,
    NOW,
    SEED,
    SignedCase,
    entry_of,
    make_valid_case,
    resign,
)

# --- API.md "Signing test vectors" -------------------------------------------------

CREATED = 1618884473
NONCE = "b3k2pp5k7z-50gnwp.yemd"
VECTOR_INPUT = (
    'sig1=("@method" "@authority" "@path" "@query" "content-digest");created=1618884473;'
    'expires=1618884533;nonce="b3k2pp5k7z-50gnwp.yemd";'
    'keyid="JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";tag="roomkeeper-v1"'
)
VECTORS = {
    "get_history": (
        ("GET", "/rooms/r1/history", "limit=50", b""),
        {
            "Content-Digest": "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
            "Signature-Input": VECTOR_INPUT,
            "Signature": "sig1=:XO9qziXu3gpkkOEMXQyULq5OdHSNUYK2ivv0C7YOfZ3M5Ra3BCxal5tMo88uHr3"
                         "ioMXMv5tnpxicE7mwP3m7Ag==:",
        },
    ),
    "post_rooms": (
        ("POST", "/rooms", "", b'{"name":"general"}'),
        {
            "Content-Digest": "sha-256=:EzuE0KXXdxnRTcWCQ/VnjKQPMK6qBCQm0iZiZLN2n9I=:",
            "Signature-Input": VECTOR_INPUT,
            "Signature": "sig1=:wyhlutrApR0mTUXicMu3IphS9VxVZ9jre8cqgRsDrKkLjGkqtm5Fp2wuGBrnYDX"
                         "3ZiFczhuytJxw4V6XqKhBCg==:",
        },
    ),
}


def vector_request(name: str, **changes: object) -> SignedRequest:
    (method, path, query, body), headers = VECTORS[name]
    request = SignedRequest(
        method, "chat.example", path, query, body, (headers["Content-Digest"],),
        (headers["Signature-Input"],), (headers["Signature"],),
    )
    return replace(request, **changes)


@pytest.mark.parametrize("name", VECTORS)
def test_the_signer_reproduces_the_api_vectors_byte_for_byte(name: str) -> None:
    (method, path, query, body), expected = VECTORS[name]
    headers = sign_request(SEED, method, "chat.example", path, query, body,
                           created=CREATED, expires=CREATED + 60, nonce=NONCE)
    assert headers == expected
    assert list(headers) == ["Content-Digest", "Signature-Input", "Signature"]


@pytest.mark.parametrize("name", VECTORS)
def test_the_api_vectors_verify_seven_seconds_after_created(name: str) -> None:
    verified = verify_request(vector_request(name), now=CREATED + 7)
    assert verified == VerifiedSignature(KEYID, NONCE, CREATED, CREATED + 60)


def test_the_api_vector_signature_base_is_the_rfc_9421_base() -> None:
    params = VECTOR_INPUT.removeprefix("sig1=")
    base = signature_base("GET", "chat.example", "/rooms/r1/history", "limit=50",
                          VECTORS["get_history"][1]["Content-Digest"], params)
    assert base == (
        b'"@method": GET\n'
        b'"@authority": chat.example\n'
        b'"@path": /rooms/r1/history\n'
        b'"@query": ?limit=50\n'
        b'"content-digest": sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:\n'
        b'"@signature-params": ' + params.encode()
    )


def test_an_empty_query_is_a_lone_question_mark_and_the_authority_is_lowercased() -> None:
    base = signature_base("POST", "Chat.EXAMPLE:8443", "/rooms", "", "d", "()")
    assert b'"@authority": chat.example:8443\n' in base
    assert b'"@query": ?\n' in base


# --- RFC 9421 Appendix B.2.6 ---------------------------------------------------------

B26_BODY = b'{"hello": "world"}'
B26_COMPONENTS = [
    ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("@method", "POST"),
    ("@path", "/foo"),
    ("@authority", "example.com"),
    ("content-type", "application/json"),
    ("content-length", "18"),
]
B26_PARAMS = ('("date" "@method" "@path" "@authority" "content-type" "content-length")'
              ';created=1618884473;keyid="test-key-ed25519"')
B26_SIGNATURE = ("sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0"
                 "w6vuQv5lIp5WPpBKRCw==:")


def test_the_rfc_b26_vector_verifies_against_our_base_builder() -> None:
    base = signature_base_for(B26_COMPONENTS, B26_PARAMS)
    signature = base64.b64decode(B26_SIGNATURE.split(":")[1])
    nacl.signing.SigningKey(SEED).verify_key.verify(base, signature)  # raises if not
    assert nacl.signing.SigningKey(SEED).sign(base).signature == signature  # deterministic


def test_the_rfc_b26_request_is_refused_because_its_components_differ() -> None:
    request = SignedRequest(
        "POST", "example.com", "/foo", "param=Value&Pet=dog", B26_BODY,
        (content_digest(B26_BODY, "sha-512"),), (f"sig-b26={B26_PARAMS}",), (B26_SIGNATURE,),
    )
    with pytest.raises(Unauthorized, match="covered components"):
        verify_request(request, now=1618884473 + 7)


# --- content digests ----------------------------------------------------------------


def test_content_digest_is_rfc_9530_for_both_algorithms() -> None:
    body = b'{"hello": "world"}'
    assert content_digest(body, "sha-512") == (
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRw"
        "EmTHWXvJwew==:"
    )  # RFC 9530 B.1 / RFC 9421 B.2
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


def test_content_digest_refuses_other_algorithms() -> None:
    with pytest.raises(ValueError, match="md5"):
        content_digest(b"", "md5")


def with_digest(case: SignedCase, value: str) -> SignedCase:
    changed = case.with_header("content-digest", value)
    label, entry = entry_of(changed)
    return resign(changed, entry, label=label)


@pytest.mark.parametrize("digest", [
    lambda body: content_digest(body, "sha-512"),
    lambda body: f"{content_digest(body, 'sha-512')}, {content_digest(body)}",
    lambda body: f"  {content_digest(body)}\t",  # OWS around a field value is not part of it
])
def test_sha512_both_digests_and_surrounding_whitespace_are_accepted(
    digest: Callable[[bytes], str],
) -> None:
    case = make_valid_case("POST", "/rooms", "", b'{"name":"x"}')
    value = digest(case.body)
    signed = with_digest(case, value.strip()).with_header("content-digest", value)
    assert verify_request(signed.to_signed_request(), NOW).keyid == KEYID


# --- what is accepted --------------------------------------------------------------


def test_a_valid_case_is_accepted_and_says_who_signed_it() -> None:
    case = make_valid_case(nonce="n" * 22)
    assert accepts(case) == VerifiedSignature(KEYID, "n" * 22, NOW, NOW + 60)


def test_the_authority_is_compared_case_insensitively() -> None:
    case = make_valid_case(authority="Chat.Example")
    assert accepts(case.with_header("host", "CHAT.example"))


@pytest.mark.parametrize("params", [
    # the order http-message-signatures writes, with alg
    ["created", "keyid", "alg", "expires", "nonce", "tag"],
    ["tag", "nonce", "keyid", "expires", "created"],
])
def test_parameters_may_come_in_any_order_and_alg_only_as_ed25519(params: list[str]) -> None:
    case = make_valid_case()
    label, (items, values) = entry_of(case)
    values["alg"] = "ed25519"
    reordered = {name: values[name] for name in params}
    assert accepts(resign(case, (items, reordered), label=label))


def test_any_label_will_do() -> None:
    case = make_valid_case()
    assert accepts(resign(case, entry_of(case)[1], label="my-signature"))


@pytest.mark.parametrize(("created", "expires", "ok"), [
    (NOW + MAX_CLOCK_SKEW, NOW + MAX_CLOCK_SKEW + 1, True),
    (NOW + MAX_CLOCK_SKEW + 1, NOW + MAX_CLOCK_SKEW + 2, False),
    (NOW - MAX_CLOCK_SKEW - 1, NOW - MAX_CLOCK_SKEW, True),
    (NOW - MAX_CLOCK_SKEW - 2, NOW - MAX_CLOCK_SKEW - 1, False),
    (NOW - 100, NOW - 100 + MAX_WINDOW, True),
    (NOW - 100, NOW - 100 + MAX_WINDOW + 1, False),
    (NOW, NOW + 1, True),
    (NOW, NOW, False),
])
def test_the_window_edges(created: int, expires: int, ok: bool) -> None:
    case = make_valid_case()
    label, (items, params) = entry_of(case)
    params.update(created=created, expires=expires)
    case = resign(case, (items, params), label=label)
    if ok:
        assert accepts(case).expires == expires
    else:
        assert refuses(case).startswith("window")


def test_a_fractional_clock_is_compared_exactly() -> None:
    case = make_valid_case()  # created = NOW, so it may be at most 60 s in the future
    assert accepts(case, now=NOW - MAX_CLOCK_SKEW)
    assert refuses(case, now=NOW - MAX_CLOCK_SKEW - 0.5) == "window: created is in the future"


@pytest.mark.parametrize("nonce", [
    "b3k2pp5k7z-50gnwp.yemd",  # the API vector's, 22 characters
    "A" * 128,
    "aZ09._~-" * 3,
])
def test_nonces_of_the_documented_shape_are_accepted(nonce: str) -> None:
    assert accepts(make_valid_case(nonce=nonce)).nonce == nonce


def test_the_nonce_must_be_remembered_past_expires_by_the_clock_skew() -> None:
    verified = accepts(make_valid_case())
    assert verified.replay_until == verified.expires + MAX_CLOCK_SKEW
    # the last instant at which the same request still verifies:
    assert accepts(make_valid_case(nonce="r" * 22), now=verified.replay_until)


# --- sign_request refuses what no verifier would accept --------------------------------


@pytest.mark.parametrize(("created", "expires", "nonce"), [
    (NOW, NOW, "n" * 22),
    (NOW, NOW + MAX_WINDOW + 1, "n" * 22),
    (NOW, NOW + 60, "n" * 21),
    (NOW, NOW + 60, "with space and more than 22"),
])
def test_sign_request_refuses_a_bad_window_or_nonce(created: int, expires: int,
                                                    nonce: str) -> None:
    with pytest.raises(ValueError):
        sign_request(SEED, "GET", "a", "/", "", b"", created=created, expires=expires,
                     nonce=nonce)


@pytest.mark.parametrize("change", [
    {"seed": b"short"},
    {"label": "Not A Label"},
    {"path": "relative"},
    {"authority": "new\nline"},
])
def test_sign_request_refuses_bad_arguments(change: dict[str, Any]) -> None:
    args = {"seed": SEED, "method": "GET", "authority": "a", "path": "/", "query": "",
            "body": b"", "label": "sig1"} | change
    with pytest.raises(ValueError):
        sign_request(**args, created=NOW, expires=NOW + 1, nonce="n" * 22)


def test_sign_request_covers_the_body_digest() -> None:
    headers = sign_request(SEED, "POST", AUTHORITY, "/rooms", "", b"abc", created=NOW,
                           expires=NOW + 1, nonce="n" * 22)
    assert headers["Content-Digest"] == content_digest(b"abc")
    assert hashlib.sha256(b"abc").digest() == base64.b64decode(
        headers["Content-Digest"].split(":")[1])
