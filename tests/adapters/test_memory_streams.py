"""What the contract suite cannot check on a real server: the memory streams' exact
timing on a manual clock, their refusals, and the deployment factory."""

from __future__ import annotations

import dataclasses

import pytest

from roomkeeper.adapters.memory import (
    ManualClock,
    MemoryServer,
    MemoryStreamStore,
    memory_deployment,
)
from roomkeeper.core import (
    DUPLICATE_WINDOW_SECONDS,
    Conflict,
    NotFound,
    StoredMessage,
    StreamLimits,
    StreamSpec,
    StreamState,
    new_room_id,
    stream_config_for_room,
)


def spec(n: int = 1, *, max_age: float | None = None) -> StreamSpec:
    limits = StreamLimits(max_age_seconds=max_age)
    made = stream_config_for_room(new_room_id(bytes([n]) * 16), limits=limits)
    if max_age is None:
        return made
    return dataclasses.replace(made, duplicate_window_seconds=max_age)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def streams(clock: ManualClock) -> MemoryStreamStore:
    return MemoryStreamStore(MemoryServer(clock))


async def test_max_age_expires_each_message_at_its_own_age(
    streams: MemoryStreamStore, clock: ManualClock
) -> None:
    s = spec(max_age=10)
    await streams.ensure(s)
    await streams.publish(s.subjects[0], b"old")
    clock.advance(6)
    await streams.publish(s.subjects[0], b"new")
    clock.advance(4)  # "old" is exactly 10 s old now: gone; "new" is 4 s old
    assert await streams.info(s.name) == StreamState(2, 2, 1, 0)
    assert await streams.fetch(s.name, 1, 5) == (StoredMessage(2, b"new"),)


async def test_max_age_skips_past_interior_deletions(
    streams: MemoryStreamStore, clock: ManualClock
) -> None:
    s = spec(max_age=10)
    await streams.ensure(s)
    for data in (b"1", b"2", b"3"):
        await streams.publish(s.subjects[0], data)
    await streams.delete_message(s.name, 2)
    clock.advance(5)
    await streams.publish(s.subjects[0], b"4")
    clock.advance(5)
    assert await streams.info(s.name) == StreamState(4, 4, 1, 0)


async def test_the_duplicate_window_ends(streams: MemoryStreamStore, clock: ManualClock) -> None:
    s = spec()
    await streams.ensure(s)
    assert await streams.publish(s.subjects[0], b"x", msg_id="m") == 1
    clock.advance(DUPLICATE_WINDOW_SECONDS - 1)
    assert await streams.publish(s.subjects[0], b"x", msg_id="m") == 1
    clock.advance(1)
    assert await streams.publish(s.subjects[0], b"x", msg_id="m") == 2


async def test_zero_limits_mean_unlimited(streams: MemoryStreamStore, clock: ManualClock) -> None:
    # As in nats-server, which stores 0 for max_age and max_msgs as "no limit".
    s = dataclasses.replace(spec(), limits=StreamLimits(max_age_seconds=0, max_msgs=0))
    await streams.ensure(s)
    await streams.publish(s.subjects[0], b"kept", msg_id="m")
    clock.advance(DUPLICATE_WINDOW_SECONDS - 1)
    assert await streams.publish(s.subjects[0], b"kept", msg_id="m") == 1
    assert await streams.info(s.name) == StreamState(1, 1, 1, 0)


@pytest.mark.parametrize("name", ["", "has.dot", "star*", "gt>", "white space", "a/b"])
async def test_invalid_stream_names_are_refused(streams: MemoryStreamStore, name: str) -> None:
    with pytest.raises(ValueError, match="stream name"):
        await streams.ensure(dataclasses.replace(spec(), name=name))


@pytest.mark.parametrize("subjects", [(), ("",), ("a..b",), ("a.>.b",)])
async def test_invalid_stream_subjects_are_refused(
    streams: MemoryStreamStore, subjects: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError, match="subjects"):
        await streams.ensure(dataclasses.replace(spec(), subjects=subjects))


async def test_overlapping_streams_are_refused(streams: MemoryStreamStore) -> None:
    await streams.ensure(spec(1))
    greedy = dataclasses.replace(spec(2), subjects=("rooms.*",))
    with pytest.raises(Conflict) as caught:
        await streams.ensure(greedy)
    assert caught.value.code == "stream_subjects_overlap"
    assert await streams.info(greedy.name) is None


async def test_an_update_may_change_the_subjects(streams: MemoryStreamStore) -> None:
    s = spec(1)
    await streams.ensure(s)
    await streams.publish(s.subjects[0], b"before")
    moved = dataclasses.replace(s, subjects=("elsewhere.x",))
    await streams.ensure(moved)
    assert await streams.publish("elsewhere.x", b"after") == 2
    with pytest.raises(NotFound):
        await streams.publish(s.subjects[0], b"lost")


async def test_publishing_to_a_wildcard_subject_is_refused(streams: MemoryStreamStore) -> None:
    with pytest.raises(ValueError, match="publishable"):
        await streams.publish("rooms.*", b"x")


async def test_a_deployment_without_jetstream_captures_nothing() -> None:
    # R2: no StreamStore at all; a publish still reaches subscribers.
    deployment = memory_deployment(jetstream=False)
    assert deployment.streams is None
    async with deployment.bus.subscribe("rooms.x") as frames:
        await deployment.bus.publish("rooms.x", b"live only")
        assert await anext(frames) == b"live only"


async def test_the_deployment_shares_one_server_and_one_clock() -> None:
    clock = ManualClock()
    limits = StreamLimits(max_msgs=5)
    deployment = memory_deployment(clock=clock, entropy=lambda n: b"\x01" * n,
                                   replicas=3, limits=limits)
    assert (deployment.clock, deployment.replicas, deployment.limits) == (clock, 3, limits)
    assert deployment.entropy(2) == b"\x01\x01"
    assert deployment.streams is not None
    s = spec()
    await deployment.streams.ensure(s)
    await deployment.bus.publish(s.subjects[0], b"via the bus")
    assert await deployment.streams.fetch(s.name, 1, 1) == (StoredMessage(1, b"via the bus"),)
    await deployment.check_ready()
    assert deployment.lifespan is None


def test_the_manual_clock_only_moves_forward(clock: ManualClock) -> None:
    start = clock()
    clock.advance(2.5)
    assert clock() == start + 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)
