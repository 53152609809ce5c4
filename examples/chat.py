"""Two people chat in an end-to-end-encrypted room; then a reloaded client reads it back.

    python examples/chat.py --memory
    python examples/chat.py --url http://127.0.0.1:8080 --nats nats://127.0.0.1:4222

1. Alice creates a matrix room with Bob as a member, and a fresh room key.
2. She seals the room key to Bob's keyid; Bob opens it into his keyring.
3. Bob follows the room while they chat: Alice publishes like a browser (plain core
   NATS), Bob with a JetStream publish. (``--memory`` has no NATS: both use HTTP.)
4. Bob "reloads": a brand-new client, with only his identity and keyring files, reads
   the history over HTTP, verifies and decrypts every message.

The exit status is 0 only if every message came back intact, both live and reloaded.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from roomkeeper.client import (
    Identity,
    Keyring,
    LiveFeed,
    RoomsClient,
    RoomSession,
    RoomsNats,
    Via,
    accept_text,
    create_room_with_key,
    share_text,
)
from roomkeeper.core import RoomkeeperError
from roomkeeper.testing import roomkeeper_deployment

CONVERSATION = [
    ("alice", "hi bob, this room is end-to-end encrypted"),
    ("bob", "so the server only ever sees ciphertext?"),
    ("alice", "exactly. and it keeps the history for when you reload"),
    ("bob", "let me try that"),
]


@dataclass
class Backend:
    """Where the example runs: how to make a client, and where live frames come from."""

    client_for: Callable[[Identity], RoomsClient]
    nats: RoomsNats | None
    feed: LiveFeed

    @property
    def ways(self) -> dict[str, Via]:
        if self.nats is None:
            return {"alice": Via.HTTP, "bob": Via.HTTP}
        return {"alice": Via.NATS, "bob": Via.JETSTREAM}


@asynccontextmanager
async def memory_backend() -> AsyncIterator[Backend]:
    """Everything in this process: the in-memory deployment and the real app."""
    async with roomkeeper_deployment(users=()) as rk:
        yield Backend(lambda identity: RoomsClient.for_asgi(rk.app, identity), None, rk.feed)


@asynccontextmanager
async def live_backend(url: str, nats_url: str) -> AsyncIterator[Backend]:
    """A running ``roomkeeper serve`` and its NATS."""
    async with RoomsNats.connect(nats_url) as nats:
        yield Backend(lambda identity: RoomsClient(url, identity), nats, nats)


async def chat(backend: Backend, home: Path) -> list[str]:
    """Run the conversation; returns what the reloaded client read."""
    alice_id, bob_id = Identity.generate(), Identity.generate()
    async with backend.client_for(alice_id) as alice_client, \
            backend.client_for(bob_id) as bob_client:
        # 1. The room, and its key in Alice's keyring only.
        alice_keys = Keyring()
        room, _ = await create_room_with_key(alice_client, "example", members=[bob_id.keyid],
                                             keyring=alice_keys)
        print(f"alice created room {room.id} (persisted: {room.persisted})")

        # 2. The key travels sealed to Bob's keyid; only Bob can open it.
        sealed = share_text(alice_keys.get(room.id), bob_id.keyid)
        bob_keys = Keyring({room.id: accept_text(sealed, bob_id)})

        # 3. Chat, with Bob following the room live.
        sessions = {
            "alice": RoomSession.from_keyring(alice_client, room.id, alice_keys,
                                              nats=backend.nats),
            "bob": RoomSession.from_keyring(bob_client, room.id, bob_keys,
                                            nats=backend.nats, feed=backend.feed),
        }
        live = await converse(sessions, backend.ways)
        check("bob's live view", live)

        # 4. Bob's identity and keyring go to disk, as a real client keeps them...
        bob_id.save(home / "identity.json")
        bob_keys.save(home / "keyring.json")
    # ...and a fresh client, knowing nothing but those two files, reads the history.
    return await reload(backend, home, room.id)


async def converse(sessions: dict[str, RoomSession], ways: dict[str, Via]) -> list[str]:
    seen: list[str] = []
    async with sessions["bob"].follow(backlog=None) as follower:
        for sender, text in CONVERSATION:
            await sessions[sender].send(text, via=ways[sender])
            print(f"{sender:>5} ({ways[sender].value}): {text}")
        with trio.fail_after(10):
            async for message in follower:
                seen.append(message.chat().text)
                if len(seen) == len(CONVERSATION):
                    break
    return seen


async def reload(backend: Backend, home: Path, room_id: str) -> list[str]:
    identity = Identity.load(home / "identity.json")
    keyring = Keyring.load(home / "keyring.json")
    async with backend.client_for(identity) as client:
        history = await RoomSession.from_keyring(client, room_id, keyring).history()
    if history.rejected:
        raise RoundTripError(f"{len(history.rejected)} frames failed verification")
    print(f"reloaded: {len(history.messages)} messages, all verified and decrypted")
    return [message.chat().text for message in history.messages]


class RoundTripError(Exception):
    pass


def check(what: str, texts: list[str]) -> None:
    expected = [text for _, text in CONVERSATION]
    if texts != expected:
        raise RoundTripError(f"{what} differs from what was sent: {texts!r}")


async def run(backend_factory: Callable[[], AbstractAsyncContextManager[Backend]]) -> None:
    with tempfile.TemporaryDirectory() as home:
        async with backend_factory() as backend:
            check("the reloaded history", await chat(backend, Path(home)))
    print("ok: every message round-tripped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--memory", action="store_true", help="run everything in process")
    where.add_argument("--url", help="a running roomkeeper server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="its NATS server")
    args = parser.parse_args(argv)
    factory: Callable[[], AbstractAsyncContextManager[Backend]] = (
        memory_backend if args.memory else lambda: live_backend(args.url, args.nats))
    status = 0
    try:
        trio.run(run, factory)
    except* (RoundTripError, RoomkeeperError, trio.TooSlowError) as group:
        print(f"chat example failed: {group.exceptions[0]}", file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
