"""The Bus contract: core publish/subscribe, and capture by streams (R3)."""

from __future__ import annotations

from roomkeeper.core import StoredMessage, StreamState
from roomkeeper.ports import Bus

from .backend import Capture
from .helpers import eventually, new_spec, new_subject_prefix, next_frame


async def test_a_subscriber_gets_frames_in_order(bus: Bus) -> None:
    subject = f"{new_subject_prefix()}.room"
    async with bus.subscribe(subject) as frames:
        for n in range(3):
            await bus.publish(subject, b"frame %d" % n)
        assert [await next_frame(frames) for _ in range(3)] == [b"frame 0", b"frame 1", b"frame 2"]


async def test_a_subscriber_gets_only_its_subject(bus: Bus) -> None:
    prefix = new_subject_prefix()
    async with bus.subscribe(f"{prefix}.mine") as frames:
        await bus.publish(f"{prefix}.other", b"not for me")
        await bus.publish(f"{prefix}.mine.deeper", b"not for me either")
        await bus.publish(f"{prefix}.mine", b"mine")
        assert await next_frame(frames) == b"mine"


async def test_wildcards_match_like_nats(bus: Bus) -> None:
    prefix = new_subject_prefix()
    async with bus.subscribe(f"{prefix}.*") as one, bus.subscribe(f"{prefix}.>") as many:
        await bus.publish(f"{prefix}.a.b", b"two tokens")
        await bus.publish(f"{prefix}.a", b"one token")
        assert await next_frame(one) == b"one token"
        assert await next_frame(many) == b"two tokens"
        assert await next_frame(many) == b"one token"


async def test_frames_before_subscribing_are_not_delivered(bus: Bus) -> None:
    subject = f"{new_subject_prefix()}.room"
    await bus.publish(subject, b"too early")
    async with bus.subscribe(subject) as frames:
        await bus.publish(subject, b"on time")
        assert await next_frame(frames) == b"on time"


async def test_publishing_where_nobody_listens_is_fine(bus: Bus) -> None:
    await bus.publish(f"{new_subject_prefix()}.void", b"into the void")


async def test_a_core_publish_is_captured_by_the_rooms_stream(capture: Capture) -> None:
    # R3: the very first frame, published by a core-NATS-only client, is stored.
    spec = new_spec()
    await capture.streams.ensure(spec)
    await capture.bus.publish(spec.subjects[0], b"\x00first frame\xff")

    async def stored() -> tuple[StoredMessage, ...] | None:
        return await capture.streams.fetch(spec.name, 1, 10) or None

    assert await eventually(stored) == (StoredMessage(1, b"\x00first frame\xff"),)
    assert await capture.streams.info(spec.name) == StreamState(1, 1, 1, 0)


async def test_a_stream_publish_reaches_subscribers(capture: Capture) -> None:
    spec = new_spec()
    await capture.streams.ensure(spec)
    async with capture.bus.subscribe(spec.subjects[0]) as frames:
        assert await capture.streams.publish(spec.subjects[0], b"acked") == 1
        assert await next_frame(frames) == b"acked"
