"""Rooms and membership over HTTP (R1, R4) on the in-memory deployment."""

from __future__ import annotations

from roomkeeper.adapters.faults import CallLog, Faults
from roomkeeper.core import BackendUnavailable

from .conftest import ApiClient


async def test_create_room_answers_the_room_object(api: ApiClient) -> None:
    bob = api.keyid("bob")

    reply = await api.call("POST", "/rooms", json={"name": "general", "members": [bob]})

    assert reply.status == 201
    room = reply.json()
    assert reply.headers["Location"] == f"/rooms/{room['id']}"
    assert room == {
        "id": room["id"], "name": "general", "mode": "matrix", "owner": api.keyid("alice"),
        "members": [api.keyid("alice"), bob], "created_at": "2024-12-04T08:13:20Z",
        "subject": f"rooms.{room['id']}", "persisted": True,
    }
    assert len(room["id"]) == 26


async def test_create_ensures_the_stream_before_storing_the_room(
    api: ApiClient, calls: CallLog,
) -> None:
    """R1, observed at the ports."""
    calls.clear()
    room = await api.create_room()

    writes = [c for c in calls.calls if c.op in ("streams.ensure", "rooms.put")]
    assert [c.op for c in writes] == ["streams.ensure", "rooms.put"]
    assert writes[0].args[0].name == f"ROOM_{room['id']}"  # type: ignore[attr-defined]


async def test_failing_ensure_is_503_with_retry_after_and_leaves_no_room(
    api: ApiClient, faults: Faults, calls: CallLog,
) -> None:
    faults.fail("streams.ensure")

    reply = await api.call("POST", "/rooms", json={"name": "general"})

    assert (reply.status, reply.error) == (503, "backend_unavailable")
    assert reply.headers["Retry-After"] == "1"
    assert "rooms.put" not in calls.ops
    faults.heal()
    assert (await api.call("GET", "/rooms")).json() == {"rooms": []}


async def test_failing_record_write_is_503_and_leaves_no_room(
    api: ApiClient, faults: Faults,
) -> None:
    faults.fail("rooms.put", nth=1)

    reply = await api.call("POST", "/rooms", json={"name": "general"})

    assert reply.status == 503
    assert (await api.call("GET", "/rooms")).json() == {"rooms": []}


async def test_unavailable_nonce_store_is_503_not_401(api: ApiClient, faults: Faults) -> None:
    faults.fail("nonces.add", error=BackendUnavailable("kv down", retry_after=7))

    reply = await api.call("GET", "/rooms")

    assert (reply.status, reply.headers["Retry-After"]) == (503, "7")


async def test_list_shows_only_the_callers_rooms(api: ApiClient) -> None:
    mine = await api.create_room("mine")
    shared = await api.create_room("shared", as_="bob", members=[api.keyid("alice")])
    await api.create_room("bob's", as_="bob")

    rooms = (await api.call("GET", "/rooms")).json()["rooms"]

    assert [r["id"] for r in rooms] == [mine["id"], shared["id"]]
    assert (await api.call("GET", "/rooms", as_="carol")).json() == {"rooms": []}


async def test_get_room_for_members_only(api: ApiClient) -> None:
    room = await api.create_room()

    assert (await api.call("GET", f"/rooms/{room['id']}")).json() == room
    stranger = await api.call("GET", f"/rooms/{room['id']}", as_="bob")
    missing = await api.call("GET", f"/rooms/{'z' * 26}")
    assert (stranger.status, missing.status) == (403, 404)


async def test_add_member_owner_only_and_idempotent(api: ApiClient) -> None:
    room = await api.create_room()
    path = f"/rooms/{room['id']}/members"
    bob, carol = api.keyid("bob"), api.keyid("carol")

    first = await api.call("POST", path, json={"member": bob})
    again = await api.call("POST", path, json={"member": bob})
    by_member = await api.call("POST", path, as_="bob", json={"member": carol})
    by_stranger = await api.call("POST", path, as_="carol", json={"member": carol})

    assert first.status == again.status == 200
    assert first.json()["members"] == again.json()["members"] == [api.keyid("alice"), bob]
    assert (by_member.status, by_member.error) == (403, "not_owner")
    assert (by_stranger.status, by_stranger.error) == (403, "not_a_member")
    assert (await api.call("GET", f"/rooms/{room['id']}", as_="bob")).status == 200


async def test_remove_member_by_owner_or_self_never_the_owner(api: ApiClient) -> None:
    alice, bob, carol = (api.keyid(w) for w in ("alice", "bob", "carol"))
    room = await api.create_room(members=[bob, carol])
    base = f"/rooms/{room['id']}/members"

    by_other_member = await api.call("DELETE", f"{base}/{carol}", as_="bob")
    self_removal = await api.call("DELETE", f"{base}/{bob}", as_="bob")
    by_owner = await api.call("DELETE", f"{base}/{carol}")
    owner = await api.call("DELETE", f"{base}/{alice}")

    assert (by_other_member.status, by_other_member.error) == (403, "not_owner")
    assert self_removal.status == 200
    assert self_removal.json()["members"] == [alice, carol]
    assert by_owner.json()["members"] == [alice]
    assert (owner.status, owner.error) == (409, "owner_cannot_be_removed")
    assert (await api.history(room["id"], as_="bob")).status == 403


async def test_delete_room_removes_the_record_then_the_stream(
    api: ApiClient, calls: CallLog,
) -> None:
    room = await api.create_room(members=[api.keyid("bob")])
    path = f"/rooms/{room['id']}"

    by_member = await api.call("DELETE", path, as_="bob")
    calls.clear()
    deleted = await api.call("DELETE", path)

    assert (by_member.status, by_member.error) == (403, "not_owner")
    assert (deleted.status, deleted.body) == (204, b"")
    assert [op for op in calls.ops if op in ("rooms.delete", "streams.delete")] == [
        "rooms.delete", "streams.delete"]
    assert (await api.call("GET", path)).status == 404
    assert await api.deployment.streams.info(f"ROOM_{room['id']}") is None  # type: ignore[union-attr]
