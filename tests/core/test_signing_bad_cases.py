"""Every shared bad case is one Unauthorized at the core, for the reason it was made
for; keys outside the prime-order group are refused even when their forged signatures
would pass a plain ed25519 verifier."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import http_sf
import nacl.signing
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roomkeeper.core import Unauthorized, signature_base, verify_request
from tests.core.signing_checks import accepts, refuses
from tests.signing_cases import (
    AUTHORITY,
    BAD_CASES,
    KEYID,
    NOW,
    REPLAY_CASES,
    SEED,
    SMALL_ORDER_KEYS,
    Mutation,
    SignedCase,
    entry_of,
    forge_for_key,
    make_valid_case,
    mixed_order_key,
    signature_for,
)

# --- every shared bad case is one 401 ------------------------------------------------


def test_the_bad_case_table_is_large_and_uniquely_named() -> None:
    names = [name for name, _ in BAD_CASES]
    assert len(names) >= 45
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "mutate"), BAD_CASES, ids=[name for name, _ in BAD_CASES])
def test_every_bad_case_is_unauthorized(name: str, mutate: Mutation) -> None:
    valid = make_valid_case()
    assert accepts(valid)
    bad = mutate(valid)
    assert bad != valid
    # Unauthorized and nothing else: a KeyError or ValueError here would be a 500.
    refuses(bad)


@pytest.mark.parametrize(("name", "mutate"), BAD_CASES, ids=[name for name, _ in BAD_CASES])
def test_bad_cases_also_fail_on_a_post_with_a_body(name: str, mutate: Mutation) -> None:
    valid = make_valid_case("POST", "/rooms", "", b'{"name":"general"}')
    assert accepts(valid)
    bad = mutate(valid)
    assert bad != valid
    refuses(bad)


@pytest.mark.parametrize(("name", "mutate"), REPLAY_CASES)
def test_replays_pass_the_core_because_the_nonce_store_catches_them(
    name: str, mutate: Mutation
) -> None:
    case = mutate(make_valid_case())
    assert accepts(case) == accepts(case)


@pytest.mark.parametrize(("name", "expected"), [
    ("missing_signature", "Signature: 0 field lines"),
    ("duplicate_content_digest_line", "Content-Digest: 2 field lines"),
    ("duplicate_label_in_signature_input", "repeated dictionary key 'sig1'"),
    ("duplicate_parameter", "repeated parameter key 'tag'"),
    ("two_tagged_entries", "Signature-Input: 2 entries"),
    ("digest_md5_only", "algorithm 'md5' is not accepted"),
    ("changed_body_old_digest", "sha-256 does not match the body"),
    ("digest_as_string", "not a plain byte sequence"),
    ("component_uppercase_method", "covered components"),
    ("unknown_parameter", "unknown parameters ['foo']"),
    ("alg_hmac_sha256", "alg other than ed25519"),
    ("wrong_tag", "wrong tag"),
    ("created_as_boolean", "created missing or not an integer"),
    ("nonce_as_token", "nonce missing or not a string"),
    ("window_over_300", "window: longer than 300 s"),
    ("expired", "window: expired"),
    ("nonce_too_short", "nonce: not 22-128"),
    ("keyid_aliased", "keyid: a keyid must be the canonical encoding"),
    ("key_identity", "keyid: not a valid prime-order"),
    ("label_mismatch", "Signature: labels ['sig2']"),
    ("signature_63_bytes", "Signature: 63 bytes"),
    ("unknown_key", "Signature: does not verify"),
    ("path_pct_2F", "Signature: does not verify"),
    ("entry_not_inner_list", "not an inner list"),
    ("signature_input_not_ascii", "not a structured-field dictionary"),
])
def test_the_log_message_says_which_check_failed(name: str, expected: str) -> None:
    mutate = dict(BAD_CASES)[name]
    assert expected in refuses(mutate(make_valid_case()))


@pytest.mark.parametrize("request_change", [
    {"path": "rooms"},
    {"path": "/rooms\n"},
    {"authority": ""},
    {"method": ""},
    {"query": "q=\u00e9"},
])
def test_component_values_that_cannot_be_in_a_base_are_unauthorized(
    request_change: dict[str, Any],
) -> None:
    request = replace(make_valid_case().to_signed_request(), **request_change)
    with pytest.raises(Unauthorized, match="request: "):
        verify_request(request, now=NOW)


def test_folded_duplicate_lines_are_still_refused() -> None:
    """A proxy may join repeated lines into one: the repeated key gives it away."""
    case = make_valid_case()
    for name in ("content-digest", "signature-input", "signature"):
        folded = case.with_header(name, f"{case.value(name)}, {case.value(name)}")
        assert "repeated dictionary key" in refuses(folded)


def test_a_changed_host_header_matters_when_the_host_is_the_authority() -> None:
    case = make_valid_case()
    assert "does not verify" in refuses(case.with_header("host", "evil.example"))
    # ... and not when the server has a configured public authority:
    request = case.with_header("host", "evil.example").to_signed_request(authority=AUTHORITY)
    assert verify_request(request, NOW).keyid == KEYID


# --- keys that are not prime-order points --------------------------------------------


@pytest.mark.parametrize("name", SMALL_ORDER_KEYS)
def test_small_order_keys_are_refused_although_their_forged_signature_verifies(
    name: str,
) -> None:
    key = SMALL_ORDER_KEYS[name]
    case = forge_for_key(make_valid_case(), key)
    # A plain RFC 8032 verifier without a key check (OpenSSL) accepts the forgery,
    # and PyNaCl lets anyone make a VerifyKey of these bytes: only S8 stops it.
    assert_cofactorless_valid(case, key)
    nacl.signing.VerifyKey(key)
    assert "not a valid prime-order" in refuses(case)


def test_a_mixed_order_key_is_refused_although_libsodium_would_verify_it() -> None:
    key = mixed_order_key(SEED)
    case = forge_for_key(make_valid_case(), key, seed=SEED)
    assert_cofactorless_valid(case, key)
    nacl.signing.VerifyKey(key).verify(base_of(case), signature_of(case))
    assert "not a valid prime-order" in refuses(case)


def base_of(case: SignedCase) -> bytes:
    _, entry = entry_of(case)
    request = case.to_signed_request()
    return signature_base(request.method, request.authority, request.path, request.query,
                          case.value("content-digest"), http_sf.ser([entry]))


def signature_of(case: SignedCase) -> bytes:
    parsed = http_sf.parse(case.value("signature").encode(), tltype="dictionary")
    (member,) = parsed.values()
    assert isinstance(member, tuple) and isinstance(member[0], bytes)
    return member[0]


def assert_cofactorless_valid(case: SignedCase, key: bytes) -> None:
    Ed25519PublicKey.from_public_bytes(key).verify(signature_of(case), base_of(case))


def test_the_table_signs_its_variants_over_their_own_base() -> None:
    """resign() is honest: what it signs verifies with the RFC key over the core's base."""
    case = make_valid_case()
    _, entry = entry_of(case)
    assert signature_for(case, entry) == signature_of(case)
    nacl.signing.SigningKey(SEED).verify_key.verify(base_of(case), signature_of(case))


