"""Test helpers for programs that use roomkeeper: an in-process deployment with ready
clients, and a pytest plugin (``roomkeeper.testing.plugin``) that provides it as the
``roomkeeper`` fixture.

::

    async with roomkeeper_deployment(users=["alice", "bob"]) as rk:
        room = await rk.create_room("alice", "general", members=["bob"])
        await rk.session("alice", room.id).send("hi")

The names load on first use, so that the plugin (which pytest imports in every run once
it is installed) costs nothing until a test asks for the fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._deployment import DEFAULT_USERS, InProcessDeployment, User, roomkeeper_deployment

__all__ = ["DEFAULT_USERS", "InProcessDeployment", "User", "roomkeeper_deployment"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _deployment

        return getattr(_deployment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
