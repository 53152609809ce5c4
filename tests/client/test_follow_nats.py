"""The SDK on real NATS: the three ways of publishing, live subscriptions, and the
history/live seam with several concurrent senders. The app runs in process on the NATS
deployment; NATS is the session's nats-server."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
from nats.aio.msg import Msg

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.nats import NatsConnection
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.client import (
    Identity,
    ReceivedMessage,
    RoomInfo,
    RoomsClient,
    RoomSession,
    RoomsNats,
    ServerUnreachable,
    Via,
    create_room_with_key,
    frame_msg_id,
)
from roomkeeper.core import Mode, NotFound, RoomId, stream_config_for_room
from tests.conftest import NatsServer

SENDERS = ("alice", "bob", "carol")
#: How each sender publishes in the seam test: every way there is.
WAYS = {"alice": Via.NATS, "bob": Via.JETSTREAM, "carol": Via.HTTP}


@dataclass
class Live:
    """Four members of one room, each with an HTTP client and a NATS connection."""

    room: RoomInfo
    sessions: dict[str, RoomSession]


@pytest.fixture
async def app(nats_server: NatsServer) -> AsyncIterator[object]:
    async with open_nats_deployment(nats_server.url) as deployment:
        application = create_app(deployment)
        async with application.test_app():
            yield application


async def _member(app: object, nats: RoomsNats, identity: Identity, room_id: RoomId,
                  room_key: bytes) -> RoomSession:
    client = RoomsClient.for_asgi(app, identity)
    return RoomSession(client, room_id, room_key, nats=nats)


@pytest.fixture
async def live(app: object, nats_server: NatsServer) -> AsyncIterator[Live]:
    identities = {name: Identity.generate() for name in (*SENDERS, "dave")}
    async with RoomsNats.connect(nats_server.url) as nats:
        owner = RoomsClient.for_asgi(app, identities["alice"])
        others = tuple(identities[n].keyid for n in ("bob", "carol", "dave"))
        room, key = await create_room_with_key(owner, "general", members=others)
        sessions = {name: await _member(app, nats, identity, room.id, key)
                    for name, identity in identities.items()}
        yield Live(room, sessions)
        for session in sessions.values():
            await session.client.aclose()
        await owner.aclose()


async def _history_texts(session: RoomSession, count: int) -> list[str]:
    """The room's history once it holds ``count`` frames: a core publish is stored
    asynchronously, so the first read may come a moment too early."""
    with trio.fail_after(5):
        while True:
            history = await session.history()
            if len(history.messages) >= count:
                return [m.chat().text for m in history.messages]
            await trio.sleep(0.01)


async def test_a_core_nats_publish_is_captured_by_the_rooms_stream(live: Live) -> None:
    alice = live.sessions["alice"]
    await alice.send("over core nats", via=Via.NATS)
    assert await _history_texts(live.sessions["dave"], 1) == ["over core nats"]


async def test_a_jetstream_publish_is_acked_and_deduplicated_by_nonce(live: Live) -> None:
    alice = live.sessions["alice"]
    frame = alice.seal_chat("once")
    first = await alice.publish(frame, via=Via.JETSTREAM)
    again = await alice.publish(frame, via=Via.JETSTREAM)
    assert first == again == 1
    history = await live.sessions["dave"].history()
    assert ([m.chat().text for m in history.messages], history.duplicates) == (["once"], 0)


async def test_an_http_publish_gives_the_stream_sequence(live: Live) -> None:
    assert await live.sessions["carol"].publish(b"opaque", via=Via.HTTP) == 1


async def test_jetstream_publish_into_a_room_without_stream_is_not_found(
    app: object, nats_server: NatsServer,
) -> None:
    identity = Identity.generate()
    async with RoomsNats.connect(nats_server.url) as nats, \
            RoomsClient.for_asgi(app, identity) as client:
        room, key = await create_room_with_key(client, "lobby", Mode.EPHEMERAL)
        session = RoomSession(client, room.id, key, nats=nats)
        with pytest.raises(NotFound) as caught:
            await session.send("nowhere", via=Via.JETSTREAM)
        assert caught.value.code == "stream_not_found"
        await session.send("core publishes still go out", via=Via.NATS)


async def _one_message(nats_conn: NatsConnection, subject: str,
                       session: RoomSession, via: Via) -> tuple[Msg, bytes]:
    async with nats_conn.bridge.subscribe(nats_conn.client, subject) as sub:
        frame = session.seal_chat("watched")
        await session.publish(frame, via=via)
        with trio.fail_after(5):
            return await sub.receive(), frame


async def test_a_core_publish_makes_no_jetstream_call(live: Live,
                                                      nats_conn: NatsConnection) -> None:
    # A JetStream publish is a request: it carries a reply subject for the ack.
    msg, frame = await _one_message(nats_conn, live.room.subject, live.sessions["alice"],
                                    Via.NATS)
    assert (msg.data, msg.reply, msg.headers) == (frame, "", None)


async def test_a_jetstream_publish_carries_the_nonce_as_msg_id(
    live: Live, nats_conn: NatsConnection,
) -> None:
    msg, frame = await _one_message(nats_conn, live.room.subject, live.sessions["bob"],
                                    Via.JETSTREAM)
    assert msg.data == frame
    assert msg.reply
    assert msg.headers == {"Nats-Msg-Id": frame_msg_id(frame),
                           "Nats-Expected-Stream": stream_config_for_room(live.room.id).name}
    assert frame_msg_id(frame) == frame[33:57].hex()


async def test_subscribe_room_sees_frames_from_other_connections(
    live: Live, nats_server: NatsServer,
) -> None:
    async with RoomsNats.connect(nats_server.url) as other, \
            other.subscribe_room(live.room.id) as frames:
        sent = await live.sessions["alice"].send("hello", via=Via.NATS)
        with trio.fail_after(5):
            assert await frames.__anext__() == sent


async def _send_all(session: RoomSession, name: str, count: int,
                    started: trio.Event) -> None:
    for i in range(count):
        await session.send(f"{name}-{i}", via=WAYS[name])
        if i == count // 4:
            started.set()


async def test_concurrent_senders_while_joining_arrive_once_in_order(live: Live) -> None:
    """The seam on real NATS: alice (core NATS), bob (JetStream) and carol (HTTP) keep
    sending while dave joins; he gets every message exactly once, in order per sender."""
    per_sender = 30
    started = trio.Event()
    received: list[ReceivedMessage] = []
    async with trio.open_nursery() as nursery:
        for name in SENDERS:
            nursery.start_soon(_send_all, live.sessions[name], name, per_sender, started)
        await started.wait()
        async with live.sessions["dave"].follow(backlog=None) as follower:
            with trio.fail_after(10):
                while len(received) < per_sender * len(SENDERS):
                    received.append(await follower.__anext__())
            assert follower.rejected == []
    assert {m.origin for m in received} == {"history", "live"}
    by_sender: dict[str, list[str]] = {}
    for text in (m.chat().text for m in received):
        by_sender.setdefault(text.split("-")[0], []).append(text)
    assert by_sender == {n: [f"{n}-{i}" for i in range(per_sender)] for n in SENDERS}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_no_nats_listening_is_server_unreachable() -> None:
    url = f"nats://127.0.0.1:{_closed_port()}"
    with trio.fail_after(5), pytest.raises(ServerUnreachable) as caught:
        async with RoomsNats.connect(url, connect_timeout=0.3):
            pass  # pragma: no cover - never connected
    assert caught.value.url == url
    assert caught.value.reason.startswith("ConnectionRefusedError: ")  # the type is kept

