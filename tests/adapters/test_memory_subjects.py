"""NATS subject matching in the memory server."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roomkeeper.adapters.memory import subject_matches, subjects_overlap
from roomkeeper.adapters.memory._subjects import valid_pattern, valid_subject


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("rooms.abc", "rooms.abc", True),
        ("rooms.abc", "rooms.abd", False),
        ("rooms.abc", "rooms.abc.x", False),
        ("rooms.*", "rooms.abc", True),
        ("rooms.*", "rooms", False),
        ("rooms.*", "rooms.abc.x", False),
        ("*.abc", "rooms.abc", True),
        ("rooms.>", "rooms.abc", True),
        ("rooms.>", "rooms.abc.x.y", True),
        ("rooms.>", "rooms", False),
        (">", "anything.at.all", True),
        ("rooms.*.x", "rooms.abc.x", True),
        ("rooms.*.x", "rooms.abc.y", False),
    ],
)
def test_subject_matches(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("rooms.a", "rooms.b", False),
        ("rooms.a", "rooms.a", True),
        ("rooms.*", "rooms.a", True),
        ("rooms.*", "rooms.a.b", False),
        ("rooms.>", "rooms.a.b", True),
        ("rooms.>", "rooms", False),
        ("*.a", "rooms.*", True),
        ("other.>", "rooms.>", False),
    ],
)
def test_subjects_overlap(a: str, b: str, expected: bool) -> None:
    assert subjects_overlap(a, b) is expected
    assert subjects_overlap(b, a) is expected


@pytest.mark.parametrize("subject", ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "a\tb"])
def test_invalid_subjects(subject: str) -> None:
    assert not valid_subject(subject)


@pytest.mark.parametrize(("pattern", "expected"), [("a.*", True), ("a.>", True),
                                                   ("a.>.b", False), ("", False)])
def test_valid_patterns(pattern: str, expected: bool) -> None:
    assert valid_pattern(pattern) is expected


_TOKENS = st.sampled_from(["a", "b", "*"])
_PATTERNS = st.builds(
    lambda tokens, tail: ".".join(tokens + ([">"] if tail else [])),
    st.lists(_TOKENS, min_size=1, max_size=3),
    st.booleans(),
)
_LITERALS = st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=5).map(".".join)


@settings(max_examples=50)
@given(_PATTERNS, _PATTERNS, _LITERALS)
def test_patterns_matching_a_common_subject_overlap(a: str, b: str, subject: str) -> None:
    if subject_matches(a, subject) and subject_matches(b, subject):
        assert subjects_overlap(a, b)


@settings(max_examples=50)
@given(_PATTERNS, _PATTERNS)
def test_overlapping_patterns_share_a_subject(a: str, b: str) -> None:
    # Brute force over every literal of up to 5 tokens from the same alphabet, plus "c"
    # to stand for any token neither pattern names (patterns have at most 4 tokens).
    literals = (
        ".".join(tokens)
        for n in range(1, 6)
        for tokens in itertools.product("abc", repeat=n)
    )
    shared = any(subject_matches(a, s) and subject_matches(b, s) for s in literals)
    assert subjects_overlap(a, b) is shared
