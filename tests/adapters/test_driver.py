"""The driver performs each effect through the right port, sends the result back, throws
a port's RoomkeeperError back in, lets anything else out, and decides nothing itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from roomkeeper.adapters.driver import drive, wiring_of
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.core import (
    BackendUnavailable,
    CreateRoomRequest,
    DeleteRoom,
    DeleteStream,
    EnsureStream,
    FetchBatch,
    KeyId,
    ListRooms,
    LoadRoom,
    Machine,
    Mode,
    PageRequest,
    Publish,
    PutRoom,
    RevisionConflict,
    Room,
    StoredMessage,
    StreamInfo,
    StreamLimits,
    StreamState,
    Wiring,
    create_room,
    encode_keyid,
    new_room_id,
    publish,
    read_history,
    stream_config_for_room,
)
from roomkeeper.ports import Deployment

ALICE = encode_keyid(b"\x01" * 32)
RID = new_room_id(b"\x05" * 16)
SPEC = stream_config_for_room(RID)
ROOM = Room(id=RID, name="g", mode=Mode.MATRIX, owner=ALICE, members=(ALICE,),
            created_at="2026-12-04T15:00:00Z")


class Ports:
    """One recording fake behind every port: each call is logged as (method, args) and
    answered from ``answers`` (an exception instance is raised)."""

    def __init__(self, answers: dict[str, object] | None = None) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.answers = answers or {}

    def port(self, prefix: str, *methods: str) -> Any:
        return type(prefix, (), {m: self._method(f"{prefix}.{m}") for m in methods})()

    def _method(self, name: str) -> Callable[..., Any]:
        async def call(_self: object, *args: object) -> object:
            self.calls.append((name, args))
            answer = self.answers.get(name)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return call

    def deployment(self, *, jetstream: bool = True) -> Deployment:
        return Deployment(
            rooms=self.port("rooms", "get", "put", "delete", "list_by_member"),
            nonces=self.port("nonces", "add"),
            bus=self.port("bus", "publish"),
            streams=self.port("streams", "ensure", "info", "fetch", "publish", "delete")
            if jetstream else None,
            clock=lambda: 0.0,
            entropy=bytes,
        )


def echo(*effects: Any) -> Machine[list[object]]:
    """Yields each effect and returns what came back."""
    results = []
    for effect in effects:
        results.append((yield effect))
    return results


async def test_every_effect_goes_to_its_port_and_its_result_comes_back() -> None:
    ports = Ports({"rooms.get": "versioned", "rooms.put": 7, "rooms.list_by_member": (ROOM,),
                   "streams.info": StreamState(1, 2, 2), "streams.fetch": ("m",),
                   "streams.publish": 42})
    effects = [
        EnsureStream(SPEC), StreamInfo("S"), FetchBatch("S", 3, 4), LoadRoom(RID),
        PutRoom(ROOM, 6), DeleteRoom(RID), DeleteStream("S"), ListRooms(ALICE),
        Publish("rooms.x", b"p", persisted=True), Publish("rooms.x", b"c", persisted=False),
    ]
    results = await drive(echo(*effects), ports.deployment())
    assert ports.calls == [
        ("streams.ensure", (SPEC,)), ("streams.info", ("S",)), ("streams.fetch", ("S", 3, 4)),
        ("rooms.get", (RID,)), ("rooms.put", (ROOM, 6)), ("rooms.delete", (RID,)),
        ("streams.delete", ("S",)), ("rooms.list_by_member", (ALICE,)),
        ("streams.publish", ("rooms.x", b"p")), ("bus.publish", ("rooms.x", b"c")),
    ]
    assert results == [None, StreamState(1, 2, 2), ("m",), "versioned", 7, None, None,
                       (ROOM,), 42, None]


def recovering() -> Machine[str]:
    try:
        yield PutRoom(ROOM, 1)
    except RevisionConflict as exc:
        return f"caught {exc.code}"
    except Exception as exc:  # what the driver must never throw in
        return f"wrongly caught {exc!r}"
    return "no error"


async def test_a_port_error_is_thrown_into_the_machine() -> None:
    ports = Ports({"rooms.put": RevisionConflict("lost the race")})
    assert await drive(recovering(), ports.deployment()) == "caught revision_conflict"


async def test_a_port_error_the_machine_does_not_handle_propagates() -> None:
    ports = Ports({"rooms.get": BackendUnavailable()})
    with pytest.raises(BackendUnavailable):
        await drive(echo(LoadRoom(RID), DeleteRoom(RID)), ports.deployment())
    assert [name for name, _ in ports.calls] == ["rooms.get"]


async def test_other_exceptions_are_bugs_and_never_reach_the_machine() -> None:
    ports = Ports({"rooms.put": KeyError("bug")})
    with pytest.raises(KeyError):
        await drive(recovering(), ports.deployment())


@pytest.mark.parametrize("effect", [
    EnsureStream(SPEC), StreamInfo("S"), FetchBatch("S", 1, 1), DeleteStream("S"),
    Publish("rooms.x", b"p", persisted=True),
])
async def test_a_stream_effect_without_jetstream_is_a_bug(effect: Any) -> None:
    ports = Ports()
    with pytest.raises(RuntimeError, match="needs JetStream"):
        await drive(echo(effect), ports.deployment(jetstream=False))
    assert ports.calls == []


async def test_a_core_publish_needs_no_jetstream() -> None:
    ports = Ports()
    await drive(echo(Publish("rooms.x", b"c", persisted=False)), ports.deployment(jetstream=False))
    assert ports.calls == [("bus.publish", ("rooms.x", b"c"))]


async def test_something_that_is_not_an_effect_is_refused() -> None:
    with pytest.raises(TypeError, match="not an effect"):
        await drive(echo("LoadRoom"), Ports().deployment())


def test_wiring_follows_the_deployment() -> None:
    limits = StreamLimits(max_msgs=5)
    deployment = Ports().deployment()
    deployment.replicas, deployment.limits = 3, limits
    assert wiring_of(deployment) == Wiring(jetstream=True, replicas=3, limits=limits)
    assert wiring_of(Ports().deployment(jetstream=False)) == Wiring(jetstream=False)


async def test_machines_on_the_memory_deployment() -> None:
    deployment = memory_deployment(clock=lambda: 1_733_300_000.0)
    wiring = wiring_of(deployment)
    owner: KeyId = ALICE
    room = await drive(create_room(CreateRoomRequest(name="g"), owner, RID, 1_733_300_000.0,
                                   wiring), deployment)
    seqs = [await drive(publish(RID, owner, b"frame %d" % n, wiring), deployment)
            for n in range(5)]
    page = await drive(read_history(RID, owner, PageRequest(limit=3), wiring), deployment)
    assert room.created_at == "2024-12-04T08:13:20Z"
    assert seqs == [1, 2, 3, 4, 5]
    assert page.messages == tuple(StoredMessage(n + 1, b"frame %d" % n) for n in (2, 3, 4))
    assert page.has_more
