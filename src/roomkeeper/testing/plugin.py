"""The pytest plugin: the ``roomkeeper`` fixture, an in-process deployment per test.

Async fixtures need pytest-trio (``trio_mode = true``, or mark tests ``@pytest.mark.trio``).
Choose the users or turn JetStream off by overriding a fixture, in a conftest or per
test::

    @pytest.mark.parametrize("roomkeeper_users", [["alice", "mallory"]])
    @pytest.mark.parametrize("roomkeeper_jetstream", [False])
    async def test_something(roomkeeper): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._deployment import InProcessDeployment

__all__ = ["roomkeeper", "roomkeeper_jetstream", "roomkeeper_users"]


@pytest.fixture
def roomkeeper_users() -> list[str]:
    """The users the ``roomkeeper`` fixture makes clients for."""
    return ["alice", "bob", "carol"]


@pytest.fixture
def roomkeeper_jetstream() -> bool:
    """False: the deployment has no JetStream (rooms work, history stays empty)."""
    return True


@pytest.fixture
async def roomkeeper(roomkeeper_users: list[str],
                     roomkeeper_jetstream: bool) -> AsyncIterator[InProcessDeployment]:
    """An in-memory roomkeeper, its app running in process, a client per user."""
    # Imported here: an installed plugin is loaded by every pytest run, and most of
    # them never ask for this fixture (the app and its dependencies are not small).
    from ._deployment import roomkeeper_deployment

    async with roomkeeper_deployment(roomkeeper_users, jetstream=roomkeeper_jetstream) as rk:
        yield rk
