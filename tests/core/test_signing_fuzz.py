"""Whatever arrives in the three headers, verify_request answers with a signature or
Unauthorized, never another exception (which the HTTP layer would turn into a 500)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import http_sf
from hypothesis import given, settings
from hypothesis import strategies as st

from roomkeeper.core import SignedRequest, Unauthorized, VerifiedSignature, verify_request
from tests.signing_cases import NOW, make_valid_case

VALID = make_valid_case("POST", "/rooms", "", b'{"name":"general"}')
FIELDS = ("content_digest", "signature_input", "signature")
#: Characters that mean something to a structured-field parser, and a few that must not.
SF_CHARS = st.sampled_from([*'abcsig1=:;,()"\\ \t@?*%-._/+0189', "\u00e9", "\x00"])


def outcome(request: SignedRequest) -> VerifiedSignature | Unauthorized:
    try:
        return verify_request(request, now=NOW)
    except Unauthorized as exc:
        return exc


@given(
    field=st.sampled_from(FIELDS),
    lines=st.lists(st.text(max_size=300), max_size=3),
)
def test_arbitrary_text_in_a_header_is_unauthorized(field: str, lines: list[str]) -> None:
    request = replace(VALID.to_signed_request(), **{field: tuple(lines)})
    assert isinstance(outcome(request), Unauthorized)


@given(
    field=st.sampled_from(FIELDS),
    position=st.integers(min_value=0),
    length=st.integers(min_value=0, max_value=3),
    insert=st.text(SF_CHARS, max_size=3),
)
def test_an_edited_valid_header_is_never_an_unexpected_error(
    field: str, position: int, length: int, insert: str
) -> None:
    request = VALID.to_signed_request()
    (value,) = getattr(request, field)
    at = position % (len(value) + 1)
    edited = value[:at] + insert + value[at + length:]
    result = outcome(replace(request, **{field: (edited,)}))
    # A few edits are harmless (whitespace where the grammar allows it); the rest fail.
    assert isinstance(result, VerifiedSignature | Unauthorized)


BARE_ITEMS = st.one_of(
    st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1),
    st.decimals(min_value=-999, max_value=999, places=3, allow_nan=False),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    st.binary(max_size=70),
    st.booleans(),
    st.builds(http_sf.Token, st.sampled_from(["ed25519", "roomkeeper-v1", "a:b/c", "*"])),
    st.builds(lambda s: datetime.fromtimestamp(s, UTC), st.integers(0, 2**32)),
)
KEYS = st.sampled_from(["a", "sig2", "sha-512", "md5", "x*_.-9", "*"])
PARAMS = st.dictionaries(KEYS | st.sampled_from(["created", "expires", "nonce", "keyid", "tag",
                                                 "alg"]), BARE_ITEMS, max_size=4)
ITEMS = st.tuples(BARE_ITEMS, PARAMS)
MEMBERS = ITEMS | st.tuples(st.lists(ITEMS, max_size=5), PARAMS)


@settings(max_examples=50)  # each example is a large random structure
@given(
    field=st.sampled_from(FIELDS),
    dictionary=st.dictionaries(KEYS | st.sampled_from(["sig1", "sha-256"]), MEMBERS,
                               min_size=1, max_size=3),
)
def test_well_formed_dictionaries_of_any_types_are_unauthorized(
    field: str, dictionary: dict[str, object]
) -> None:
    request = replace(VALID.to_signed_request(), **{field: (http_sf.ser(dictionary),)})
    assert isinstance(outcome(request), Unauthorized)
