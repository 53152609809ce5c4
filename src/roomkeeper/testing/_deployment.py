"""An in-process roomkeeper for client test suites: no sockets, no NATS, no files.

``roomkeeper_deployment()`` starts the in-memory deployment and the real HTTP app (its
lifespan included) inside the caller's Trio run, and hands back ready clients: one
``RoomsClient`` per user, calling the ASGI app directly. Every port sits behind
``roomkeeper.adapters.faults``, so a test can take JetStream away or fail the next
stream ensure, and read the exact order of backend calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from roomkeeper.adapters.faults import CallLog, Faults, wrap_deployment
from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.client import (
    Identity,
    Keyring,
    RoomInfo,
    RoomsClient,
    RoomSession,
    SubjectFeed,
    accept_text,
    create_room_with_key,
    share_text,
)
from roomkeeper.core import BackendUnavailable, KeyId, Mode
from roomkeeper.ports import Deployment

__all__ = ["DEFAULT_USERS", "InProcessDeployment", "User", "roomkeeper_deployment"]

DEFAULT_USERS = ("alice", "bob", "carol")


@dataclass
class User:
    """One person in the test: an identity, a client signing as it, a keyring."""

    name: str
    identity: Identity
    client: RoomsClient
    keyring: Keyring = field(default_factory=Keyring)

    @property
    def keyid(self) -> KeyId:
        return self.identity.keyid


class InProcessDeployment:
    """What ``roomkeeper_deployment`` yields. ``users``, ``clients``, ``identities`` and
    ``keyrings`` are keyed by user name."""

    __test__ = False  # not a test class, whatever a test module imports it as

    def __init__(self, deployment: Deployment, app: Any, faults: Faults,
                 calls: CallLog) -> None:
        #: The deployment the app serves, every port wrapped by ``faults``/``calls``.
        self.deployment = deployment
        #: The Quart-Trio app; ``RoomsClient.for_asgi(app, identity)`` makes more clients.
        self.app = app
        #: The fault plan: ``faults.fail("streams.*")``, ``faults.delay(...)``, ...
        self.faults = faults
        #: Every backend call the app made, in order (``calls.ops``).
        self.calls = calls
        self.users: dict[str, User] = {}

    @property
    def clients(self) -> dict[str, RoomsClient]:
        return {name: user.client for name, user in self.users.items()}

    @property
    def identities(self) -> dict[str, Identity]:
        return {name: user.identity for name, user in self.users.items()}

    @property
    def keyrings(self) -> dict[str, Keyring]:
        return {name: user.keyring for name, user in self.users.items()}

    def keyid(self, name: str) -> KeyId:
        return self.users[name].keyid

    def add_user(self, name: str, identity: Identity | None = None) -> User:
        """A new user with a fresh identity (or the one given) and a client."""
        if name in self.users:
            raise ValueError(f"there is already a user called {name!r}")
        identity = identity if identity is not None else Identity.generate()
        user = User(name, identity, RoomsClient.for_asgi(self.app, identity))
        self.users[name] = user
        return user

    async def close_clients(self) -> None:
        for user in self.users.values():
            await user.client.aclose()

    # --- rooms and keys -------------------------------------------------------------------

    async def create_room(self, owner: str, name: str = "general", *,
                          members: Iterable[str] = (), mode: Mode | str = Mode.MATRIX,
                          ) -> RoomInfo:
        """``owner`` creates a room with the named users as members, makes its room key
        and shares it with each of them (sealed, as real clients would)."""
        names = list(members)
        creator = self.users[owner]
        room, _ = await create_room_with_key(
            creator.client, name, mode, tuple(self.keyid(n) for n in names), creator.keyring)
        for member in names:
            self.share_room_key(room.id, owner, member)
        return room

    def share_room_key(self, room_id: str, sender: str, recipient: str) -> None:
        """Seal ``sender``'s key for the room to ``recipient`` and open it into the
        recipient's keyring."""
        sealed = share_text(self.users[sender].keyring.get(room_id), self.keyid(recipient))
        key = accept_text(sealed, self.users[recipient].identity)
        self.users[recipient].keyring.set(room_id, key)

    def session(self, name: str, room_id: str) -> RoomSession:
        """``name``'s session in the room: sends over HTTP (``via="http"``), follows the
        room on the in-memory bus."""
        user = self.users[name]
        return RoomSession.from_keyring(user.client, room_id, user.keyring, feed=self.feed)

    @property
    def feed(self) -> SubjectFeed:
        """Live frames from the in-memory bus, for ``follow_room``."""
        return SubjectFeed(self.deployment.bus)

    async def publish_raw(self, subject: str, data: bytes) -> None:
        """Publish bytes on a subject as anyone on the NATS network could: the way to
        test what a client does with forged or garbage frames."""
        await self.deployment.bus.publish(subject, data)

    # --- faults ---------------------------------------------------------------------------

    def jetstream_unavailable(self) -> None:
        """Every stream operation fails with BackendUnavailable (503) until ``heal()``."""
        self.faults.fail("streams.*", error=BackendUnavailable)

    def fail_next_ensure(self) -> None:
        """The next stream ensure (room creation, lazy backfill) fails once."""
        self.faults.fail("streams.ensure", nth=1, error=BackendUnavailable)

    def heal(self) -> None:
        self.faults.heal()


@asynccontextmanager
async def roomkeeper_deployment(
    users: Iterable[str] = DEFAULT_USERS, *, jetstream: bool = True,
) -> AsyncIterator[InProcessDeployment]:
    """An in-memory roomkeeper with the app running and a client per user, for the
    duration of the block. ``jetstream=False`` wires no stream store (rule R2: rooms
    work, history is empty)."""
    faults, calls = Faults(), CallLog()
    deployment = wrap_deployment(memory_deployment(jetstream=jetstream), faults, calls)
    app = create_app(deployment)
    async with app.test_app():
        harness = InProcessDeployment(deployment, app, faults, calls)
        try:
            for name in users:
                harness.add_user(name)
            yield harness
        finally:
            await harness.close_clients()
