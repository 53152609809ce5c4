"""Fixtures for the contract suites: the ports of one Backend per implementation.

Every suite here is written against the Protocols in roomkeeper.ports only, and runs
once per entry of IMPLEMENTATIONS. To run them against another implementation, add
one entry: a name and an Implementation (backend.py) whose factory yields a Backend
whose ports all talk to the same backend (so that a bus publish reaches its streams,
R3).

Time: ``advance(seconds)`` moves the backend's clock forward. The memory backend
moves a ManualClock; a real server just sleeps, so keep every age short (1-2 s).
Declare such an implementation ``real_time=True``: the tests that use ``advance``
are then marked slow on it, which keeps the default run fast.
Isolation: tests make unique stream names, subjects, room ids and keyids, so a
factory may share one server between tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from roomkeeper.ports import Bus, NonceStore, RoomStore, StreamStore
from tests.nats.backend import nats_backend

from .backend import Backend, Capture, Implementation, memory_backend

__all__ = ["IMPLEMENTATIONS", "Backend", "Capture"]

#: Real NATS joins with one entry: "nats": Implementation(nats_backend, real_time=True).
IMPLEMENTATIONS: dict[str, Implementation] = {
    "memory": Implementation(memory_backend),
    "nats": Implementation(nats_backend, real_time=True),
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
