"""R11: bad input gets a clear 4xx with a JSON error body, never a 500, and nothing
stored changes. Each case is signed correctly, so it reaches the handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from roomkeeper.adapters.faults import CallLog

from .conftest import WRITES, ApiClient

JSON = {"Content-Type": "application/json"}
ALIASED_KEYID = "A" * 42 + "B"  # a trailing-bit alias: not canonical
MiB = 1024 * 1024

# (method, path template, body, extra headers, status, error code); "{id}" is an
# existing room owned by alice with bob as member, "{bob}" is bob's keyid.
CASES: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("POST", "/rooms", b"{", JSON, 400, "invalid_json"),
    ("POST", "/rooms", b"", JSON, 400, "invalid_json"),
    ("POST", "/rooms", b"", {}, 400, "invalid_json"),
    ("POST", "/rooms", b'{"name": "a"} x', JSON, 400, "invalid_json"),
    ("POST", "/rooms", b'{"name": "\xff"}', JSON, 400, "invalid_json"),
    ("POST", "/rooms", b'\xef\xbb\xbf{"name": "a"}', JSON, 400, "invalid_json"),
    ("POST", "/rooms", '{"name": "a"}'.encode("utf-16"), JSON, 400, "invalid_json"),
    ("POST", "/rooms", b'{"name": "a", "name": "b"}', JSON, 400, "invalid_json"),
    ("POST", "/rooms", b'{"name": NaN}', JSON, 400, "invalid_json"),
    ("POST", "/rooms", b'{"name": "\\ud800"}', JSON, 400, "invalid_json"),
    ("POST", "/rooms", b"[" * 100_000, JSON, 400, "invalid_json"),
    ("POST", "/rooms", b'{"name": "a"}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("POST", "/rooms", b'["general"]', JSON, 400, "invalid_body"),
    ("POST", "/rooms", b"null", JSON, 400, "invalid_body"),
    ("POST", "/rooms", b'{"name": 5}', JSON, 400, "invalid_type"),
    ("POST", "/rooms", b'{"name": "a", "mode": 1}', JSON, 400, "invalid_type"),
    ("POST", "/rooms", b'{"name": "a", "members": "x"}', JSON, 400, "invalid_type"),
    ("POST", "/rooms", b'{"name": "a", "owner": "x"}', JSON, 400, "unknown_field"),
    ("POST", "/rooms", b'{"name": ""}', JSON, 400, "invalid_name"),
    ("POST", "/rooms", b'{"name": "   "}', JSON, 400, "invalid_name"),
    ("POST", "/rooms", json.dumps({"name": "n" * 201}).encode(), JSON, 400, "invalid_name"),
    ("POST", "/rooms", b'{"name": "a\\u0000b"}', JSON, 400, "invalid_name"),
    ("POST", "/rooms", b'{}', JSON, 400, "invalid_name"),
    ("POST", "/rooms", b'{"name": "a", "mode": "durable"}', JSON, 400, "invalid_mode"),
    ("POST", "/rooms", b'{"name": "a", "members": ["nope"]}', JSON, 400, "invalid_keyid"),
    ("POST", "/rooms", json.dumps({"name": "a", "members": [ALIASED_KEYID]}).encode(), JSON,
     400, "invalid_keyid"),
    ("POST", "/rooms", b" " * (MiB + 1), JSON, 413, "payload_too_large"),
    ("POST", "/rooms/{id}/members", b'{"member": "nope"}', JSON, 400, "invalid_keyid"),
    ("POST", "/rooms/{id}/members", b'{"member": 7}', JSON, 400, "invalid_keyid"),
    ("POST", "/rooms/{id}/members", b'{"keyid": "{bob}"}', JSON, 400, "unknown_field"),
    ("POST", "/rooms/{id}/members", b'{}', JSON, 400, "invalid_keyid"),
    ("POST", "/rooms/{id}/members", b'{"member": "{bob}"', JSON, 400, "invalid_json"),
    ("DELETE", "/rooms/{id}/members/not-a-keyid", b"", {}, 400, "invalid_keyid"),
    ("DELETE", "/rooms/{id}/members/" + ALIASED_KEYID, b"", {}, 400, "invalid_keyid"),
    ("POST", "/rooms/{id}/messages", b"x" * (MiB + 1), {}, 413, "payload_too_large"),
    ("GET", "/rooms/{id}/history?limit=0", b"", {}, 400, "invalid_limit"),
    ("GET", "/rooms/{id}/history?limit=-1", b"", {}, 400, "invalid_limit"),
    ("GET", "/rooms/{id}/history?limit=abc", b"", {}, 400, "invalid_limit"),
    ("GET", "/rooms/{id}/history?limit=1e3", b"", {}, 400, "invalid_limit"),
    ("GET", "/rooms/{id}/history?limit=", b"", {}, 400, "invalid_limit"),
    ("GET", "/rooms/{id}/history?limit=5&limit=6", b"", {}, 400, "invalid_limit"),
    ("GET", "/rooms/{id}/history?before=1&after=2", b"", {}, 400, "invalid_cursor"),
    ("GET", "/rooms/{id}/history?before=-1", b"", {}, 400, "invalid_cursor"),
    ("GET", "/rooms/{id}/history?after=x", b"", {}, 400, "invalid_cursor"),
    ("GET", "/nowhere", b"", {}, 404, "not_found"),
    ("GET", "/rooms/{id}/nowhere", b"", {}, 404, "not_found"),
    ("GET", "/rooms/", b"", {}, 404, "not_found"),  # no redirect: a 308 is not JSON
    ("GET", "/rooms/{id}/history/", b"", {}, 404, "not_found"),
    ("PUT", "/rooms", b"", {}, 405, "method_not_allowed"),
    ("PATCH", "/rooms/{id}", b"", {}, 405, "method_not_allowed"),
    ("POST", "/rooms/{id}/history", b"", {}, 405, "method_not_allowed"),
]


def case_id(case: tuple[str, str, bytes, dict[str, str], int, str]) -> str:
    method, path, body, _, status, code = case
    return f"{method} {path} {body[:24]!r} -> {status} {code}"


@pytest.fixture
async def room(api: ApiClient) -> dict[str, Any]:
    room = await api.create_room(members=[api.keyid("bob")])
    await api.call("POST", f"/rooms/{room['id']}/messages", body=b"kept")
    return room


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_bad_input_is_a_json_4xx_and_changes_nothing(
    api: ApiClient, calls: CallLog, room: dict[str, Any],
    case: tuple[str, str, bytes, dict[str, str], int, str],
) -> None:
    method, template, body, headers, status, code = case

    def fill(text: str) -> str:
        return text.replace("{id}", room["id"]).replace("{bob}", api.keyid("bob"))

    before = await api.snapshot()
    calls.clear()

    reply = await api.call(method, fill(template), body=fill(body.decode("latin-1")).encode(
        "latin-1"), headers=headers)

    assert (reply.status, reply.error) == (status, code), reply.json()
    assert reply.json()["message"]
    assert not WRITES.intersection(calls.ops)
    assert await api.snapshot() == before


async def test_method_not_allowed_says_which_methods_are(api: ApiClient) -> None:
    reply = await api.call("PUT", "/rooms")

    assert reply.status == 405
    assert set(reply.headers["Allow"].split(", ")) == {"GET", "POST", "HEAD"}


async def test_content_length_over_the_cap_is_413_before_the_body_is_read(
    api: ApiClient,
) -> None:
    headers = {"Content-Length": str(MiB + 1), "Content-Type": "application/json"}

    reply = await api.raw("POST", "/rooms", body=b"{}", headers=headers)

    assert (reply.status, reply.error) == (413, "payload_too_large")


async def test_a_body_of_exactly_one_mib_is_accepted(api: ApiClient,
                                                     room: dict[str, Any]) -> None:
    frame = bytes(MiB)

    reply = await api.call("POST", f"/rooms/{room['id']}/messages", body=frame)

    assert reply.status == 201


async def test_unknown_query_parameters_are_refused(api: ApiClient) -> None:
    room = await api.create_room()
    before = await api.snapshot()
    for target in (f"/rooms/{room['id']}/history?limt=5", "/rooms?limit=3",
                   f"/rooms/{room['id']}?x=1"):
        reply = await api.call("GET", target)
        assert reply.status == 400, target
        assert reply.error == "unknown_parameter"
    assert (await api.history(room["id"], "limit=5")).status == 200
    assert await api.snapshot() == before


@pytest.mark.parametrize("target", ["/rooms", "/rooms/{room}/members"])
async def test_an_overlong_json_integer_is_invalid_json_not_a_crash(
    api: ApiClient, target: str
) -> None:
    room = await api.create_room()
    before = await api.snapshot()
    body = b'{"name": ' + b"1" * 5000 + b"}"
    reply = await api.call("POST", target.format(room=room["id"]), body=body,
                           headers={"Content-Type": "application/json"})
    assert reply.status == 400
    assert reply.error == "invalid_json"
    assert await api.snapshot() == before
