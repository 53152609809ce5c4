"""Two roomkeeper instances on one NATS, changing the same room at once: the room
record is compare-and-set, so no acknowledged change is lost, whichever instance made
it; a change that kept losing the race is a 409, never a silent drop or a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from tests.reliability.backends import removing_new_streams
from tests.reliability.harness import AUTHORITY, Caller, new_signer, record

MEMBERS = 16


@pytest.fixture
async def instances(nats_server: Any) -> AsyncIterator[list[Caller]]:
    """The same key, calling through two instances (each its own NATS connection)."""
    signer = new_signer()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(removing_new_streams(nats_server.url))
        callers = []
        for _ in range(2):
            deployment = await stack.enter_async_context(
                open_nats_deployment(nats_server.url, connect_timeout=2))
            app = create_app(deployment, public_authority=AUTHORITY)
            test_app = await stack.enter_async_context(app.test_app())
            callers.append(Caller(test_app.test_client(), signer))
        yield callers


async def test_concurrent_member_adds_through_two_instances_lose_nothing(
    instances: list[Caller],
) -> None:
    one, two = instances
    room = (await one.create_room("crowded")).json()
    members = [new_signer().keyid for _ in range(MEMBERS)]
    statuses: dict[str, int] = {}

    async def add(caller: Caller, member: str) -> None:
        reply = await caller.call("POST", f"/rooms/{room['id']}/members",
                                  json_body={"member": member})
        statuses[member] = reply.status

    async with trio.open_nursery() as nursery:
        for index, member in enumerate(members):
            nursery.start_soon(add, instances[index % 2], member)

    final = (await two.call("GET", f"/rooms/{room['id']}")).json()
    added = [m for m in members if statuses[m] == 200]
    record("concurrency", concurrent_member_adds=MEMBERS, acknowledged=len(added),
           conflicts_409=sum(1 for s in statuses.values() if s == 409))
    assert set(statuses.values()) <= {200, 409}, statuses
    # Every acknowledged add is there (none lost) and no refused one is (none half-made).
    assert set(final["members"]) == {room["owner"], *added}
    assert added, "every add lost the race"
