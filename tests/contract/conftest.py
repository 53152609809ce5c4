"""Fixtures for the contract suites: one Backend per implementation of the ports.

Every suite here is written against the Protocols in roomkeeper.ports only, and runs
once per entry of IMPLEMENTATIONS. To run them against another implementation, add
one entry: a name and an async context manager factory yielding a Backend whose
ports all talk to the same backend (so that a bus publish reaches its streams, R3).
The factory gets the test's FixtureRequest, so it can ask for other fixtures (a
session server, say) with ``request.getfixturevalue``.

Time: ``advance(seconds)`` moves the backend's clock forward. The memory backend
moves a ManualClock; a real server just sleeps, so keep every age short (1-2 s). On an
implementation declared ``real_time``, the tests that use ``advance`` are marked slow,
which keeps the default run fast.
Isolation: tests make unique stream names, subjects, room ids and keyids, so a
factory may share one server between tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from roomkeeper.adapters.memory import ManualClock, memory_deployment
from roomkeeper.ports import Bus, NonceStore, RoomStore, StreamStore


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


#: Real NATS joins with one entry: "nats": Implementation(nats_backend, real_time=True).
IMPLEMENTATIONS: dict[str, Implementation] = {
    "memory": Implementation(memory_backend),
}


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:
            continue
        callspec = getattr(item, "callspec", None)
        if callspec is None or "advance" not in getattr(item, "fixturenames", ()):
            continue
        name = callspec.params.get("backend")
        if name in IMPLEMENTATIONS and IMPLEMENTATIONS[name].real_time:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    async with IMPLEMENTATIONS[request.param].factory(request) as opened:
        yield opened


@pytest.fixture
def stream_store(backend: Backend) -> StreamStore:
    return backend.streams


@pytest.fixture
def room_store(backend: Backend) -> RoomStore:
    return backend.rooms


@pytest.fixture
def nonce_store(backend: Backend) -> NonceStore:
    return backend.nonces


@pytest.fixture
def bus(backend: Backend) -> Bus:
    return backend.bus


@pytest.fixture
def capture(backend: Backend) -> Capture:
    return Capture(backend.bus, backend.streams)


@pytest.fixture
def advance(backend: Backend) -> Callable[[float], Awaitable[None]]:
    return backend.advance


@pytest.fixture
def now(backend: Backend) -> Callable[[], float]:
    return backend.now
