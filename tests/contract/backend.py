"""What the contract suites run against: a Backend bundles one implementation's ports,
all talking to the same backend, with its clock; an Implementation says how to open
one. conftest.IMPLEMENTATIONS lists them by name.

A factory is an async context manager factory taking the test's FixtureRequest, so
it can ask for fixtures such as a session server with ``request.getfixturevalue``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import pytest
import trio

from roomkeeper.adapters.memory import ManualClock, memory_deployment
from roomkeeper.ports import Bus, NonceStore, RoomStore, StreamStore

__all__ = ["Backend", "BackendFactory", "Capture", "Implementation", "memory_backend"]


@dataclass(frozen=True)
class Backend:
    streams: StreamStore
    rooms: RoomStore
    nonces: NonceStore
    bus: Bus
    #: The clock the backend expires things by (unix seconds).
    now: Callable[[], float]
    advance: Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Capture:
    """A bus and a stream store on the same backend: what one publishes, the other
    stores (R3)."""

    bus: Bus
    streams: StreamStore


@asynccontextmanager
async def memory_backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    clock = ManualClock()
    deployment = memory_deployment(clock=clock)
    assert deployment.streams is not None

    async def advance(seconds: float) -> None:
        clock.advance(seconds)
        await trio.lowlevel.checkpoint()

    yield Backend(deployment.streams, deployment.rooms, deployment.nonces, deployment.bus,
                  now=clock, advance=advance)


BackendFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[Backend]]


@dataclass(frozen=True)
class Implementation:
    factory: BackendFactory
    #: advance() really sleeps, so tests that use it take seconds.
    real_time: bool = False
