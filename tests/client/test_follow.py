"""Following a room on the in-memory deployment: backlog then live, no gap, no duplicate,
nothing forged. The same seam against real NATS is in test_follow_nats.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import trio
import trio.lowlevel

from roomkeeper.client import (
    Follower,
    HistoryPage,
    NoLiveConnection,
    ReceivedMessage,
    RoomsClient,
    RoomSession,
    follow_room,
    read_backlog,
    seal_frame,
)
from roomkeeper.client.frames import new_room_key
from roomkeeper.core import Mode, RoomId, subject_for_room
from roomkeeper.testing import InProcessDeployment, roomkeeper_deployment

SENDERS = ("alice", "bob", "carol")


@pytest.fixture
async def rk() -> AsyncIterator[InProcessDeployment]:
    async with roomkeeper_deployment([*SENDERS, "dave"]) as deployment:
        yield deployment


@pytest.fixture
async def room_id(rk: InProcessDeployment) -> RoomId:
    room = await rk.create_room("alice", members=["bob", "carol", "dave"])
    return room.id


def texts(messages: Sequence[ReceivedMessage]) -> list[str]:
    return [m.chat().text for m in messages]


async def take(follower: Follower, count: int) -> list[ReceivedMessage]:
    with trio.fail_after(5):
        return [await follower.__anext__() for _ in range(count)]


async def test_backlog_then_live(rk: InProcessDeployment, room_id: RoomId) -> None:
    alice, dave = rk.session("alice", room_id), rk.session("dave", room_id)
    for text in ("one", "two", "three"):
        await alice.send(text)
    async with dave.follow(backlog=None) as follower:
        backlog = await take(follower, 3)
        await alice.send("four")
        live = await take(follower, 1)
    assert texts(backlog) == ["one", "two", "three"]
    assert {m.origin for m in backlog} == {"history"}
    assert (texts(live), live[0].origin) == (["four"], "live")
    assert live[0].sender == rk.keyid("alice")


async def test_backlog_limits(rk: InProcessDeployment, room_id: RoomId) -> None:
    alice, dave = rk.session("alice", room_id), rk.session("dave", room_id)
    for i in range(5):
        await alice.send(f"m{i}")
    async with dave.follow(backlog=2) as follower:
        assert texts(await take(follower, 2)) == ["m3", "m4"]
        await alice.send("m5")
        assert texts(await take(follower, 1)) == ["m5"]
    async with dave.follow(backlog=0) as follower:
        await alice.send("m6")
        assert texts(await take(follower, 1)) == ["m6"]


async def test_whole_backlog_across_many_pages(rk: InProcessDeployment,
                                               room_id: RoomId) -> None:
    alice = rk.session("alice", room_id)
    sent = [await alice.send(f"m{i}") for i in range(7)]
    frames = await read_backlog(rk.clients["dave"], room_id, None, page_size=2)
    assert frames == sent
    assert await read_backlog(rk.clients["dave"], room_id, 3, page_size=2) == sent[-3:]


class PublishesAfterTheNewestPage(RoomsClient):
    """Dave's client, except that right after it reads the newest page, alice sends one
    more message: it is stored between the backward and the forward pass."""

    alice: RoomSession
    sent: list[bytes]

    async def history(self, room_id: str, limit: int | None = None,
                      before: int | None = None, after: int | None = None) -> HistoryPage:
        page = await super().history(room_id, limit, before, after)
        if before is None and after is None:
            self.sent.append(await self.alice.send("late"))
        return page


async def test_the_forward_pass_catches_frames_stored_during_the_backward_pass(
    rk: InProcessDeployment, room_id: RoomId,
) -> None:
    client = PublishesAfterTheNewestPage.for_asgi(rk.app, rk.identities["dave"])
    client.alice = rk.session("alice", room_id)
    client.sent = [await client.alice.send(f"m{i}") for i in range(4)]
    async with client:
        assert await read_backlog(client, room_id, None) == client.sent
    assert len(client.sent) == 5


async def concurrent_senders(rk: InProcessDeployment, room_id: RoomId, per_sender: int,
                             started: trio.Event) -> None:
    """Each sender sends ``per_sender`` messages, half over HTTP and half as plain bus
    publishes (what a core-NATS client does)."""
    async def send_all(name: str) -> None:
        session = rk.session(name, room_id)
        for i in range(per_sender):
            frame = session.seal_chat(f"{name}-{i}")
            if i % 2:
                await rk.deployment.bus.publish(subject_for_room(room_id), frame)
            else:
                await session.publish(frame)
            if i == per_sender // 4:
                started.set()
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for name in SENDERS:
            nursery.start_soon(send_all, name)


def assert_exactly_once_in_order(messages: list[ReceivedMessage], per_sender: int) -> None:
    by_sender: dict[str, list[str]] = {}
    for text in texts(messages):
        by_sender.setdefault(text.split("-")[0], []).append(text)
    assert by_sender == {name: [f"{name}-{i}" for i in range(per_sender)] for name in SENDERS}


@pytest.mark.parametrize("delay", [0, 0.002])
async def test_concurrent_senders_while_joining_arrive_once_in_order(
    rk: InProcessDeployment, room_id: RoomId, delay: float,
) -> None:
    """The seam: three senders publish while dave joins (his history reads are slowed
    down to widen the window), and he sees each message exactly once, in send order."""
    per_sender = 40
    rk.faults.delay("streams.fetch", delay)
    started = trio.Event()
    dave = rk.session("dave", room_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(concurrent_senders, rk, room_id, per_sender, started)
        await started.wait()
        async with dave.follow(backlog=None) as follower:
            received = await take(follower, per_sender * len(SENDERS))
            assert follower.rejected == []
    assert {m.origin for m in received} == {"history", "live"}
    assert_exactly_once_in_order(received, per_sender)


async def test_forged_frames_are_rejected_not_yielded(rk: InProcessDeployment,
                                                      room_id: RoomId) -> None:
    alice, dave = rk.session("alice", room_id), rk.session("dave", room_id)
    subject = subject_for_room(room_id)
    good = alice.seal_chat("real")
    wrong_key = seal_frame(rk.identities["bob"], new_room_key(), b"x", room_id=room_id)
    tampered = good[:-70] + bytes([good[-70] ^ 1]) + good[-69:]
    for frame in (b"", b"\x02garbage", wrong_key, tampered):
        await rk.publish_raw(subject, frame)
    await alice.publish(good)
    history = await dave.history()
    assert texts(history.messages) == ["real"]
    assert history.reasons == {"frame_truncated": 1, "unknown_frame_version": 1,
                               "bad_frame_mac": 1, "bad_frame_signature": 1}
    async with dave.follow(backlog=0) as follower:
        await rk.publish_raw(subject, tampered)
        await alice.send("after")
        assert texts(await take(follower, 1)) == ["after"]
        assert [(r.code, r.origin) for r in follower.rejected] == [
            ("bad_frame_signature", "live")]


async def test_a_forged_copy_of_a_nonce_does_not_suppress_the_real_frame(
    rk: InProcessDeployment, room_id: RoomId,
) -> None:
    alice, dave = rk.session("alice", room_id), rk.session("dave", room_id)
    real = alice.seal_chat("real")
    forged = real[:60] + bytes([real[60] ^ 0xFF]) + real[61:]  # same nonce, bad bytes
    async with dave.follow(backlog=0) as follower:
        await rk.publish_raw(subject_for_room(room_id), forged)
        await alice.publish(real)
        assert texts(await take(follower, 1)) == ["real"]
        assert len(follower.rejected) == 1


async def test_the_same_frame_twice_is_yielded_once(rk: InProcessDeployment,
                                                    room_id: RoomId) -> None:
    alice, dave = rk.session("alice", room_id), rk.session("dave", room_id)
    frame = alice.seal_chat("retried")
    await alice.publish(frame)
    await alice.publish(frame)  # e.g. a retry after a lost answer
    history = await dave.history()
    assert (texts(history.messages), history.duplicates) == (["retried"], 1)
    async with dave.follow(backlog=None) as follower:
        await alice.publish(frame)
        await alice.send("next")
        assert texts(await take(follower, 2)) == ["retried", "next"]
        assert follower.duplicates == 2


async def test_an_ephemeral_room_is_live_only(rk: InProcessDeployment) -> None:
    room = await rk.create_room("alice", "lobby", members=["dave"], mode=Mode.EPHEMERAL)
    alice, dave = rk.session("alice", room.id), rk.session("dave", room.id)
    await alice.send("before anyone listens")
    async with dave.follow(backlog=None) as follower:
        await alice.send("live")
        assert texts(await take(follower, 1)) == ["live"]


async def test_follow_room_with_an_explicit_feed(rk: InProcessDeployment,
                                                 room_id: RoomId) -> None:
    key = rk.keyrings["dave"].get(room_id)
    await rk.session("alice", room_id).send("hi")
    async with follow_room(rk.clients["dave"], rk.feed, room_id, key) as follower:
        assert texts(await take(follower, 1)) == ["hi"]


async def test_a_session_without_nats_or_feed(rk: InProcessDeployment,
                                              room_id: RoomId) -> None:
    alice = rk.users["alice"]
    session = RoomSession(alice.client, room_id, alice.keyring.get(room_id))
    with pytest.raises(NoLiveConnection):
        session.follow()
    for via in ("nats", "jetstream"):
        with pytest.raises(NoLiveConnection):
            await session.send("x", via=via)
    await session.send("over http works")
    assert texts((await session.history()).messages) == ["over http works"]


class OneFrameFeed:
    """A feed that delivers one frame and then ends, as a closed connection does."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame

    @asynccontextmanager
    async def subscribe_room(self, room_id: RoomId) -> AsyncIterator[AsyncIterator[bytes]]:
        yield self._frames()

    async def _frames(self) -> AsyncIterator[bytes]:
        yield self.frame


async def test_a_follower_ends_with_its_feed(rk: InProcessDeployment,
                                             room_id: RoomId) -> None:
    key = rk.keyrings["dave"].get(room_id)
    feed = OneFrameFeed(rk.session("alice", room_id).seal_chat("only"))
    async with follow_room(rk.clients["dave"], feed, room_id, key, backlog=0) as follower:
        assert texts([m async for m in follower]) == ["only"]
