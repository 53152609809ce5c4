"""Test helpers for programs that use roomkeeper: an in-process deployment with ready
clients, and a pytest plugin (``roomkeeper.testing.plugin``) that provides it as the
``roomkeeper`` fixture.

::

    async with roomkeeper_deployment(users=["alice", "bob"]) as rk:
        room = await rk.create_room("alice", "general", members=["bob"])
        await rk.session("alice", room.id).send("hi")
"""

from ._deployment import DEFAULT_USERS, InProcessDeployment, User, roomkeeper_deployment

__all__ = ["DEFAULT_USERS", "InProcessDeployment", "User", "roomkeeper_deployment"]
