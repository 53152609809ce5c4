"""R5, R11: the history query string: limit default, clamp, and strict decimal parsing."""

from __future__ import annotations

import pytest

from roomkeeper.core import BadRequest, PageRequest, parse_page_request


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (None, 200),
        ("1", 1),
        ("200", 200),
        ("999", 999),
        ("1000", 1000),
        ("1001", 1000),
        ("0005", 5),
        ("0" * 5000 + "7", 7),
        ("99999999999999999999999", 1000),
        # int() refuses more than 4300 digits; the clamp must not even try.
        ("9" * 100_000, 1000),
        ("1" + "0" * 5000, 1000),
    ],
)
def test_limit(limit: str | None, expected: int) -> None:
    assert parse_page_request(limit) == PageRequest(limit=expected)


@pytest.mark.parametrize(
    "limit",
    ["", "0", "00", "-1", "+5", " 5", "5 ", "5\n", "abc", "1e3", "0x10", "1.0", "1_000",
     "٣", "\uff15", "²", "10٣"],
)
def test_bad_limit(limit: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_page_request(limit)
    assert info.value.code == "invalid_limit"
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("0", None, PageRequest(before=0)),
        ("42", None, PageRequest(before=42)),
        (None, "0", PageRequest(after=0)),
        (None, "0042", PageRequest(after=42)),
        ("9" * 19, None, PageRequest(before=10**19 - 1)),
        (None, "18446744073709551615"[:19], PageRequest(after=1844674407370955161)),
    ],
)
def test_cursors(before: str | None, after: str | None, expected: PageRequest) -> None:
    assert parse_page_request(None, before, after) == expected


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("1", "2"),
        ("", None),
        (None, ""),
        ("-1", None),
        ("+1", None),
        ("1.5", None),
        (" 1", None),
        ("٣", None),
        (None, "0x1"),
        ("1" * 20, None),
        (None, "0" * 20),
        ("9" * 100_000, None),
    ],
)
def test_bad_cursor(before: str | None, after: str | None) -> None:
    with pytest.raises(BadRequest) as info:
        parse_page_request("10", before, after)
    assert info.value.code == "invalid_cursor"


def test_a_bad_limit_is_reported_before_a_bad_cursor() -> None:
    with pytest.raises(BadRequest) as info:
        parse_page_request("0", "x", "y")
    assert info.value.code == "invalid_limit"
