"""The fault plans and call logs, around the memory deployment."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from roomkeeper.core import (
    BackendUnavailable,
    NotFound,
    RevisionConflict,
    encode_keyid,
    new_room_id,
)
from roomkeeper.ports import Deployment
from tests.fakes import Call, CallLog, Faults, memory_deployment, wrap_deployment

ALICE = encode_keyid(b"\x01" * 32)


async def add(deployment: Deployment, nonce: str) -> bool:
    return await deployment.nonces.add(ALICE, nonce, deployment.clock() + 60)


async def test_the_nth_call_fails_once(deployment: Deployment, faults: Faults) -> None:
    faults.fail("nonces.add", nth=2)
    assert await add(deployment, "a")
    with pytest.raises(BackendUnavailable):
        await add(deployment, "b")
    assert await add(deployment, "b")  # one-shot: the plan is used up


async def test_nth_counts_from_when_the_plan_was_made(
    deployment: Deployment, faults: Faults
) -> None:
    await add(deployment, "a")
    faults.fail("nonces.add", nth=1)
    with pytest.raises(BackendUnavailable):
        await add(deployment, "b")


async def test_every_call_fails_until_healed(deployment: Deployment, faults: Faults) -> None:
    faults.fail("nonces.add")
    for nonce in ("a", "b"):
        with pytest.raises(BackendUnavailable):
            await add(deployment, nonce)
    faults.heal("nonces.add")
    assert await add(deployment, "a")


async def test_a_failed_call_never_reaches_the_port(
    deployment: Deployment, faults: Faults
) -> None:
    faults.fail("nonces.add", nth=1)
    with pytest.raises(BackendUnavailable):
        await add(deployment, "a")
    assert await add(deployment, "a")  # the first attempt stored nothing


async def test_a_glob_fails_a_whole_port(deployment: Deployment, faults: Faults) -> None:
    faults.fail("rooms.*")
    with pytest.raises(BackendUnavailable):
        await deployment.rooms.list_by_member(ALICE)
    with pytest.raises(BackendUnavailable):
        await deployment.rooms.delete(new_room_id(b"\x02" * 16))
    assert await add(deployment, "a")


async def test_the_error_can_be_chosen(deployment: Deployment, faults: Faults) -> None:
    lost = RevisionConflict("lost the race")
    faults.fail("nonces.add", nth=1, error=lost)
    faults.fail("nonces.add", nth=2, error=lambda: BackendUnavailable(retry_after=7))
    with pytest.raises(RevisionConflict) as first:
        await add(deployment, "a")
    assert first.value is lost
    with pytest.raises(BackendUnavailable) as second:
        await add(deployment, "a")
    assert second.value.retry_after == 7


async def test_every_matching_plan_counts_each_call(
    deployment: Deployment, faults: Faults
) -> None:
    faults.fail("nonces.add", nth=1, error=RevisionConflict("first plan"))
    faults.fail("nonces.*", nth=2)
    with pytest.raises(RevisionConflict):
        await add(deployment, "a")
    with pytest.raises(BackendUnavailable):
        await add(deployment, "a")
    assert await add(deployment, "a")


def test_nth_counts_from_one(faults: Faults) -> None:
    with pytest.raises(ValueError):
        faults.fail("rooms.get", nth=0)


async def test_heal_with_no_operation_clears_every_plan(
    deployment: Deployment, faults: Faults
) -> None:
    faults.fail("nonces.add")
    faults.delay("nonces.add", 5)
    faults.heal()
    with trio.fail_after(1):
        assert await add(deployment, "a")


async def test_a_delay_holds_the_call_back(
    deployment: Deployment, faults: Faults, autojump_clock: trio.testing.MockClock
) -> None:
    faults.delay("nonces.*", 3)
    start = trio.current_time()
    assert await add(deployment, "a")
    assert trio.current_time() - start == pytest.approx(3)
    faults.heal("nonces.*")
    start = trio.current_time()
    await add(deployment, "b")
    assert trio.current_time() == start


async def test_the_log_records_every_attempt_in_order(
    deployment: Deployment, faults: Faults, log: CallLog
) -> None:
    streams = deployment.streams
    assert streams is not None
    faults.fail("streams.info", nth=1)
    await add(deployment, "a")
    with pytest.raises(BackendUnavailable):
        await streams.info("ROOM_X")
    await deployment.bus.publish("rooms.x", b"frame")
    async with deployment.bus.subscribe("rooms.x"):
        pass
    await deployment.check_ready()
    assert log.ops == ["nonces.add", "streams.info", "bus.publish", "bus.subscribe",
                       "check_ready"]
    assert log.calls[1] == Call("streams.info", ("ROOM_X",))
    log.clear()
    assert log.ops == []


async def test_every_port_method_is_named(deployment: Deployment, log: CallLog) -> None:
    streams = deployment.streams
    assert streams is not None
    spec_name, subject = "ROOM_X", "rooms.x"
    await streams.info(spec_name)
    await streams.fetch(spec_name, 1, 10)
    with pytest.raises(NotFound):
        await streams.publish(subject, b"x", msg_id="m")
    await streams.delete_message(spec_name, 1)
    await streams.delete(spec_name)
    await deployment.rooms.list_by_member(ALICE)
    assert log.ops == ["streams.info", "streams.fetch", "streams.publish",
                       "streams.delete_message", "streams.delete", "rooms.list_by_member"]
    assert log.calls[2].args == (subject, b"x", "m")


async def test_check_ready_can_be_failed(deployment: Deployment, faults: Faults) -> None:
    faults.fail("check_ready")
    with pytest.raises(BackendUnavailable):
        await deployment.check_ready()


async def test_a_subscribe_can_be_failed(deployment: Deployment, faults: Faults) -> None:
    faults.fail("bus.subscribe", nth=1)
    with pytest.raises(BackendUnavailable):
        async with deployment.bus.subscribe("rooms.x"):
            pass  # pragma: no cover
    async with deployment.bus.subscribe("rooms.x") as frames:
        await deployment.bus.publish("rooms.x", b"through the wrapper")
        assert await anext(frames) == b"through the wrapper"


def test_wrapping_keeps_a_missing_jetstream_missing() -> None:
    plain = memory_deployment(jetstream=False)
    wrapped = wrap_deployment(plain, Faults(), CallLog())
    assert wrapped.streams is None
    assert (wrapped.clock, wrapped.entropy, wrapped.lifespan) == (
        plain.clock, plain.entropy, plain.lifespan)


async def test_wrapping_without_a_plan_or_log_changes_nothing() -> None:
    wrapped = wrap_deployment(memory_deployment())
    assert await wrapped.nonces.add(ALICE, "n", wrapped.clock() + 60)
    assert not await wrapped.nonces.add(ALICE, "n", wrapped.clock() + 60)
