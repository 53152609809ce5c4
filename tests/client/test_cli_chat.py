"""The terminal client, driven in process against the app served by Hypercorn on a real
loopback socket (memory deployment): the commands, their output, their errors."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from roomkeeper.adapters.cli_chat import build_parser, execute, register
from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.client import Identity, Keyring, RoomsClient, RoomSession, RoomsNats, Via
from roomkeeper.ports import Deployment

#: Commands with a second word ("rooms create").
GROUPS = frozenset({"rooms", "members", "keys"})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def serve_app(nursery: trio.Nursery, deployment: Deployment) -> str:
    """The app for ``deployment`` on 127.0.0.1, a free port; its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    app = create_app(deployment)
    binds = await nursery.start(partial(serve, app, config,
                                        shutdown_trigger=trio.sleep_forever))
    return str(binds[0])


@dataclass
class Terminal:
    """One user's shell: their identity file and the server they talk to."""

    capsys: pytest.CaptureFixture[str]
    identity_path: Path
    server: str
    nats: str

    @property
    def keyid(self) -> str:
        return Identity.load(self.identity_path).keyid

    async def run(self, *argv: str) -> tuple[int, str, str]:
        """Run one command; (status, stdout, stderr). The connection options go right
        after the command words, so that ``argv`` may end with ``-- ARGS``."""
        self.capsys.readouterr()
        words = 2 if argv[0] in GROUPS else 1
        common = ["--server", self.server, "--nats", self.nats,
                  "--identity", str(self.identity_path)]
        args = build_parser().parse_args([*argv[:words], *common, *argv[words:]])
        status = await execute(args)
        out, err = self.capsys.readouterr()
        return status, out, err

    async def send_with_sdk(self, room: str, text: str, via: Via) -> None:
        """Send as this user without touching the captured terminal output."""
        identity = Identity.load(self.identity_path)
        keyring = Keyring.load(self.identity_path.parent / "keyring.json")
        async with RoomsClient(self.server, identity) as client:
            if via is Via.HTTP:
                await RoomSession.from_keyring(client, room, keyring).send(text)
                return
            async with RoomsNats.connect(self.nats) as nats:
                session = RoomSession.from_keyring(client, room, keyring, nats=nats)
                await session.send(text, via=via)

    async def ok(self, *argv: str) -> str:
        status, out, err = await self.run(*argv)
        assert status == 0, err
        return out

    async def fails(self, *argv: str) -> str:
        """The one-line error of a command that must fail with status 1."""
        status, out, err = await self.run(*argv)
        assert (status, out) == (1, ""), err
        assert err.count("\n") == 1 and err.startswith("roomkeeper "), err
        return err.strip()


@pytest.fixture
async def server(nursery: trio.Nursery) -> str:
    return await serve_app(nursery, memory_deployment())


def make_terminal(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str,
                  server: str) -> Terminal:
    path = tmp_path / name / "identity.json"
    path.parent.mkdir(mode=0o700)
    Identity.generate().save(path)
    return Terminal(capsys, path, server, f"nats://127.0.0.1:{closed_port()}")


@pytest.fixture
def alice(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: str) -> Terminal:
    return make_terminal(capsys, tmp_path, "alice", server)


@pytest.fixture
def bob(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: str) -> Terminal:
    return make_terminal(capsys, tmp_path, "bob", server)


async def shared_room(alice: Terminal, bob: Terminal) -> str:
    room = (await alice.ok("rooms", "create", "general")).strip()
    await alice.ok("members", "add", "--", room, bob.keyid)
    sealed = (await alice.ok("keys", "share", "--", room, bob.keyid)).strip()
    await bob.ok("keys", "accept", "--", room, sealed)
    return room


async def test_two_users_chat_over_http(alice: Terminal, bob: Terminal) -> None:
    room = await shared_room(alice, bob)
    await alice.ok("send", room, "hello bob", "--via", "http")
    await bob.ok("send", room, "hi alice", "--via", "http")
    lines = (await bob.ok("history", room)).splitlines()
    assert [line.split("  ", 2)[1:] for line in lines] == [
        [alice.keyid, "hello bob"], [bob.keyid, "hi alice"]]
    assert lines[0][:2] == "20" and lines[0][23] == "Z"  # 2026-...T..:..:..._Z
    assert (await alice.ok("history", room, "--limit", "1")).endswith("hi alice\n")


async def test_rooms_create_prints_the_id_and_stores_a_key(alice: Terminal) -> None:
    status, out, err = await alice.run("rooms", "create", "general")
    room = out.strip()
    assert status == 0 and len(room) == 26 and "its key is in" in err
    keyring = (alice.identity_path.parent / "keyring.json").read_text()
    assert room in keyring
    listing = await alice.ok("rooms", "list")
    assert listing.split() == [room, "matrix", "1", "members", "key", "general"]


async def test_an_ephemeral_room_and_a_member_without_key(alice: Terminal,
                                                          bob: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "lobby", "--ephemeral",
                           f"--member={bob.keyid}")).strip()
    assert (await bob.ok("rooms", "list")).split() == [
        room, "ephemeral", "2", "members", "no-key", "lobby"]


async def test_members_add_and_remove(alice: Terminal, bob: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "general")).strip()
    status, out, err = await alice.run("members", "add", "--", room, bob.keyid)
    assert status == 0
    assert out.splitlines() == [f"{alice.keyid}  (owner)", bob.keyid]
    assert f"keys share -- {room} {bob.keyid}" in err
    assert (await alice.ok("members", "remove", "--", room, bob.keyid)).splitlines() == [
        f"{alice.keyid}  (owner)"]


async def test_a_keyid_that_starts_with_a_dash(alice: Terminal) -> None:
    dashed = next(k for k in (Identity.generate().keyid for _ in range(10_000))
                  if k.startswith("-"))
    room = (await alice.ok("rooms", "create", "general")).strip()
    assert dashed in await alice.ok("members", "add", "--", room, dashed)


async def test_history_reports_frames_that_fail_verification(alice: Terminal,
                                                             bob: Terminal) -> None:
    room = await shared_room(alice, bob)
    async with RoomsClient(alice.server, Identity.load(alice.identity_path)) as client:
        await client.publish(room, b"not a frame")
    await alice.ok("send", room, "real", "--via", "http")
    status, out, err = await bob.run("history", room)
    assert status == 0 and out.endswith("real\n") and out.count("\n") == 1
    assert "1 frames failed verification" in err and "unknown_frame_version x1" in err


async def test_follow_over_http_shows_history_then_new_messages(
    alice: Terminal, bob: Terminal, capsys: pytest.CaptureFixture[str],
) -> None:
    room = await shared_room(alice, bob)
    await alice.ok("send", room, "before", "--via", "http")
    seen = await follow_until(
        ["follow", room, "--via", "http", "--interval", "0.01", "--server", bob.server,
         "--identity", str(bob.identity_path)], capsys, "out", "before",
        # Not through alice's terminal: it would read (and drop) what bob's prints.
        then=lambda: alice.send_with_sdk(room, "after", Via.HTTP), then_text="after")
    assert [line.split("  ")[-1] for line in seen.splitlines()] == ["before", "after"]


async def test_history_shows_a_payload_that_is_not_chat(alice: Terminal, bob: Terminal) -> None:
    room = await shared_room(alice, bob)
    identity = Identity.load(alice.identity_path)
    keyring = Keyring.load(alice.identity_path.parent / "keyring.json")
    async with RoomsClient(alice.server, identity) as client:
        session = RoomSession.from_keyring(client, room, keyring)
        await session.publish(session.seal(b"\x00binary"))
    line = (await bob.ok("history", room)).strip()
    assert line.split() == ["-", alice.keyid, "[7", "bytes,", "not", "a", "chat", "message]"]


async def follow_until(args: list[str], capsys: pytest.CaptureFixture[str],
                       stream: str, text: str, *,
                       then: Callable[[], Awaitable[object]] | None = None,
                       then_text: str = "") -> str:
    """Run ``follow`` until ``text`` shows on ``stream`` ("out" or "err"); with ``then``,
    await it and go on until ``then_text`` shows as well. Everything seen on ``stream``."""
    seen = ""

    async def until(wanted: str) -> None:
        nonlocal seen
        while wanted not in seen:
            seen += getattr(capsys.readouterr(), stream)
            await trio.sleep(0.005)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(execute, build_parser().parse_args(args))
        with trio.fail_after(5):
            await until(text)
            if then is not None:
                await then()
                await until(then_text)
        nursery.cancel_scope.cancel()
    return seen


async def test_follow_over_http_on_an_ephemeral_room_says_it_sees_nothing(
    alice: Terminal, capsys: pytest.CaptureFixture[str],
) -> None:
    room = (await alice.ok("rooms", "create", "lobby", "--ephemeral")).strip()
    err = await follow_until(["follow", room, "--via", "http", "--server", alice.server,
                              "--identity", str(alice.identity_path)], capsys, "err", "\n")
    assert err == ("this room keeps no history: only new messages will show, "
                   "and only over --via nats\n")


async def test_follow_reports_frames_that_fail_verification(
    alice: Terminal, bob: Terminal, capsys: pytest.CaptureFixture[str],
) -> None:
    room = await shared_room(alice, bob)
    async with RoomsClient(alice.server, Identity.load(alice.identity_path)) as client:
        await client.publish(room, b"\x01forged")
    await alice.send_with_sdk(room, "real", Via.HTTP)
    err = await follow_until(["follow", room, "--via", "http", "--server", bob.server,
                              "--identity", str(bob.identity_path)], capsys, "err", "\n")
    assert err == "1 frames failed verification and were not shown\n"


# --- errors: one line each, status 1 ----------------------------------------------------


async def test_unreachable_server(alice: Terminal) -> None:
    alice.server = f"http://127.0.0.1:{closed_port()}"
    error = await alice.fails("rooms", "list")
    assert error.startswith(f"roomkeeper rooms list: cannot reach the roomkeeper server at "
                            f"{alice.server}")


async def test_a_server_that_is_not_roomkeeper(alice: Terminal,
                                               nursery: trio.Nursery) -> None:
    async def hello(scope: dict[str, object], receive: Any, send: Any) -> None:
        """An ASGI app that answers every request with 200 'hello'."""
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    binds = await nursery.start(partial(serve, hello, config,
                                        shutdown_trigger=trio.sleep_forever))
    alice.server = str(binds[0])
    error = await alice.fails("rooms", "list")
    assert error.startswith(
        f"roomkeeper rooms list: {alice.server} does not look like a roomkeeper server: ")


async def test_unreachable_nats(alice: Terminal, bob: Terminal) -> None:
    room = await shared_room(alice, bob)
    error = await alice.fails("send", room, "hello")  # --via nats is the default
    assert error.startswith(f"roomkeeper send: cannot reach NATS at {alice.nats}")


async def test_missing_identity(alice: Terminal, tmp_path: Path) -> None:
    alice.identity_path = tmp_path / "nobody" / "identity.json"
    error = await alice.fails("rooms", "list")
    assert error == (f"roomkeeper rooms list: no identity at {alice.identity_path} "
                     "(create one with: roomkeeper keygen)")


async def test_insecure_identity_file(alice: Terminal) -> None:
    alice.identity_path.chmod(0o644)
    error = await alice.fails("rooms", "list")
    assert "chmod 600" in error


@pytest.mark.parametrize("command", [["history"], ["send", "x", "--via", "http"],
                                     ["follow"]])
async def test_unknown_room(alice: Terminal, command: list[str]) -> None:
    room = "a" * 26
    name, *rest = command
    assert await alice.fails(name, room, *rest) == f"roomkeeper {name}: unknown room {room}"


async def test_not_a_room_id(alice: Terminal) -> None:
    assert await alice.fails("history", "general") == (
        "roomkeeper history: unknown room 'general': not a room id")


async def test_not_a_member(alice: Terminal, bob: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "general")).strip()
    assert await bob.fails("history", room) == (
        f"roomkeeper history: you are not a member of room {room}")


async def test_missing_room_key(alice: Terminal, bob: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "general")).strip()
    await alice.ok("members", "add", "--", room, bob.keyid)
    error = await bob.fails("send", room, "hi", "--via", "http")
    assert error.startswith(f"roomkeeper send: no key for room {room} in ")
    assert f"roomkeeper keys share -- {room} {bob.keyid}" in error


async def test_a_sealed_key_for_someone_else(alice: Terminal, bob: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "general")).strip()
    sealed_for_alice = (await alice.ok("keys", "share", "--", room, alice.keyid)).strip()
    error = await bob.fails("keys", "accept", "--", room, sealed_for_alice)
    assert error == "roomkeeper keys accept: the room key was not sealed to this identity"


async def test_the_server_refusing_is_reported_with_its_code(alice: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "general")).strip()
    error = await alice.fails("members", "add", room, "not-a-keyid")
    assert error.startswith("roomkeeper members add: the server refused: ")
    assert error.endswith("(invalid_keyid, HTTP 400)")


# --- the parser ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["rooms", "create"], ["rooms", "list"], ["members", "add"], ["members", "remove"],
    ["keys", "share"], ["keys", "accept"], ["send"], ["history"], ["follow"]])
def test_every_command_has_help_with_examples(command: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "--server URL" in out and "--identity FILE" in out


def test_register_adds_the_commands_to_another_parser() -> None:
    parser = argparse.ArgumentParser(prog="roomkeeper")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve")
    register(commands)
    args = parser.parse_args(["send", "r", "t", "--via", "http"])
    assert (args.command, args.chat_name, args.via) == ("send", "send", "http")
    assert parser.parse_args(["serve"]).command == "serve"


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOMKEEPER_SERVER", "http://chat.example:9000")
    monkeypatch.setenv("ROOMKEEPER_IDENTITY", "/keys/me.json")
    args = build_parser().parse_args(["rooms", "list"])
    assert (args.server, args.identity, args.keyring) == (
        "http://chat.example:9000", Path("/keys/me.json"), None)


