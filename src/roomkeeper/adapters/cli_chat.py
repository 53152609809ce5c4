"""The terminal client: ``rooms``, ``members``, ``keys``, ``send``, ``history``, ``follow``.

``register(subparsers)`` adds them to the ``roomkeeper`` command; ``main(argv)`` runs
them on their own (``python -m roomkeeper.adapters.cli_chat``). Every command signs
as the identity file, keeps room keys in a keyring file next to it, and ends with one
line on stderr and exit status 1 when something is wrong (no identity, no server, no
such room, no room key). Ctrl-C ends ``follow`` with status 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Final

import trio

from ..client import (
    DEFAULT_BACKLOG,
    DEFAULT_NATS_URL,
    ApiError,
    FrameError,
    Identity,
    Keyring,
    PollingFeed,
    ReceivedMessage,
    RoomInfo,
    RoomKeyMissing,
    RoomsClient,
    RoomSession,
    RoomsNats,
    ServerUnreachable,
    UnexpectedResponse,
    Via,
    accept_text,
    create_room_with_key,
    share_text,
)
from ..client.frames import MalformedChatMessage, RoomKeyError
from ..client.keys import IdentityError, KeyFileNotFound
from ..client.paths import default_identity_path
from ..core import BackendUnavailable, Mode, NotFound, RoomId, RoomkeeperError, parse_room_id

__all__ = ["DEFAULT_SERVER", "execute", "main", "register"]

DEFAULT_SERVER: Final = "http://127.0.0.1:8080"
KEYRING_NAME: Final = "keyring.json"

EPILOG: Final = """\
examples:
  roomkeeper keygen                                  # once: your identity
  ROOM=$(roomkeeper rooms create general)            # a room, and its key in your keyring
  roomkeeper members add -- $ROOM <their keyid>
  roomkeeper keys share -- $ROOM <their keyid>       # they run: roomkeeper keys accept ...
  roomkeeper send $ROOM 'hello'
  roomkeeper history $ROOM --limit 20
  roomkeeper follow $ROOM                            # history, then live; Ctrl-C to stop

Defaults: --server $ROOMKEEPER_SERVER or http://127.0.0.1:8080, --nats $ROOMKEEPER_NATS_URL
or nats://127.0.0.1:4222, --identity $ROOMKEEPER_IDENTITY or
~/.config/roomkeeper/identity.json, --keyring: keyring.json next to the identity.
A keyid or a sealed key may start with '-': put options first, then -- before them."""


class CliError(Exception):
    """A failure to report as one line, exit status 1."""


Handler = Callable[["Context"], Awaitable[int]]


# --- context: identity, keyring, clients -------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    client: RoomsClient
    keyring_path: Path

    @property
    def identity(self) -> Identity:
        return self.client.identity

    def load_keyring(self) -> Keyring:
        return Keyring.load(self.keyring_path, missing_ok=True)

    def save_keyring(self, keyring: Keyring) -> None:
        self.keyring_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        keyring.save(self.keyring_path)

    def room_id(self) -> RoomId:
        room_id = parse_room_id(self.args.room)
        if room_id is None:
            raise CliError(f"unknown room {self.args.room!r}: not a room id")
        return room_id

    async def room(self) -> RoomInfo:
        """The room named on the command line, as its member sees it."""
        return await self.client.get_room(self.room_id())

    def room_key(self, room_id: str) -> bytes:
        try:
            return self.load_keyring().get(room_id)
        except RoomKeyMissing:
            raise CliError(
                f"no key for room {room_id} in {self.keyring_path}; ask a member to run "
                f"'roomkeeper keys share -- {room_id} {self.identity.keyid}' and then run "
                f"'roomkeeper keys accept -- {room_id} SEALED'") from None

    @asynccontextmanager
    async def session(self, room: RoomInfo, with_nats: bool) -> AsyncIterator[RoomSession]:
        """The room's session; over NATS, or with HTTP polling for following."""
        key = self.room_key(room.id)
        if not with_nats:
            feed = PollingFeed(self.client, getattr(self.args, "interval", 1.0))
            yield RoomSession(self.client, room.id, key, feed=feed)
            return
        async with RoomsNats.connect(self.args.nats) as nats:
            yield RoomSession(self.client, room.id, key, nats=nats)


# --- the commands --------------------------------------------------------------------------


async def rooms_create(ctx: Context) -> int:
    keyring = ctx.load_keyring()
    mode = Mode.EPHEMERAL if ctx.args.ephemeral else Mode.MATRIX
    room, _ = await create_room_with_key(ctx.client, ctx.args.name, mode,
                                         tuple(ctx.args.member), keyring)
    ctx.save_keyring(keyring)
    print(room.id)
    _note(f"created {room.mode.value} room {room.name!r}; its key is in {ctx.keyring_path}")
    return 0


async def rooms_list(ctx: Context) -> int:
    keyring = ctx.load_keyring()
    for room in await ctx.client.list_rooms():
        key = "key" if room.id in keyring else "no-key"
        print(f"{room.id}  {room.mode.value:<9}  {len(room.members):>3} members  "
              f"{key:<6}  {room.name}")
    return 0


async def members_add(ctx: Context) -> int:
    room = await ctx.client.add_member(ctx.room_id(), ctx.args.keyid)
    _print_members(room)
    _note(f"share the room key with them: roomkeeper keys share -- {room.id} {ctx.args.keyid}")
    return 0


async def members_remove(ctx: Context) -> int:
    room = await ctx.client.remove_member(ctx.room_id(), ctx.args.keyid)
    _print_members(room)
    return 0


def _print_members(room: RoomInfo) -> None:
    for member in room.members:
        print(f"{member}{'  (owner)' if member == room.owner else ''}")


async def keys_share(ctx: Context) -> int:
    print(share_text(ctx.room_key(ctx.room_id()), ctx.args.keyid))
    return 0


async def keys_accept(ctx: Context) -> int:
    room_id = ctx.room_id()
    keyring = ctx.load_keyring()
    keyring.set(room_id, accept_text(ctx.args.sealed, ctx.identity))
    ctx.save_keyring(keyring)
    _note(f"stored the key for room {room_id} in {ctx.keyring_path}")
    return 0


async def send(ctx: Context) -> int:
    via = Via(ctx.args.via)
    async with ctx.session(await ctx.room(), with_nats=via is not Via.HTTP) as session:
        await session.send(ctx.args.text, via=via)
    return 0


async def history(ctx: Context) -> int:
    async with ctx.session(await ctx.room(), with_nats=False) as session:
        page = await session.history(limit=ctx.args.limit)
    for message in page.messages:
        print(format_message(message))
    if page.rejected:
        counts = ", ".join(f"{code} x{n}" for code, n in sorted(page.reasons.items()))
        _note(f"{len(page.rejected)} frames failed verification and are not shown: {counts}")
    return 0


async def follow(ctx: Context) -> int:
    room = await ctx.room()
    if not room.persisted:
        _note("this room keeps no history: only new messages will show"
              + ("" if ctx.args.via == "nats" else ", and only over --via nats"))
    async with ctx.session(room, with_nats=ctx.args.via == "nats") as session, \
            session.follow(backlog=ctx.args.backlog) as follower:
        reported = 0
        async for message in follower:
            print(format_message(message), flush=True)
            if len(follower.rejected) > reported:
                reported = len(follower.rejected)
                _note(f"{reported} frames failed verification and were not shown")
    return 0


def format_message(message: ReceivedMessage) -> str:
    """``<sent_at UTC>  <sender keyid>  <text>``; the time is the sender's own claim."""
    try:
        chat = message.chat()
    except MalformedChatMessage:
        return f"{'-':<24}  {message.sender}  [{len(message.plaintext)} bytes, not a chat message]"
    when = chat.sent_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{when}  {message.sender}  {chat.text}"


def _note(text: str) -> None:
    print(text, file=sys.stderr)


# --- running ------------------------------------------------------------------------------


async def execute(args: argparse.Namespace) -> int:
    """Run the parsed command; 1 with a one-line error on stderr when it fails."""
    handler: Handler = args.chat_handler
    try:
        identity = _load_identity(args.identity)
        keyring_path = args.keyring or Path(args.identity).parent / KEYRING_NAME
        async with RoomsClient(args.server, identity) as client:
            return await handler(Context(args, client, Path(keyring_path)))
    except (CliError, RoomkeeperError) as exc:
        print(f"roomkeeper {args.chat_name}: {describe(exc, args)}", file=sys.stderr)
        return 1


def _load_identity(path: Path) -> Identity:
    try:
        return Identity.load(path)
    except KeyFileNotFound:
        raise CliError(f"no identity at {path} (create one with: roomkeeper keygen)") from None


def describe(exc: Exception, args: argparse.Namespace) -> str:
    """One line for the user, by what went wrong rather than by where."""
    room = getattr(args, "room", None)
    if isinstance(exc, ServerUnreachable):
        what = "NATS" if exc.url == args.nats else "the roomkeeper server"
        return f"cannot reach {what} at {exc.url} ({exc.reason})"
    if isinstance(exc, ApiError) and exc.code == "room_not_found":
        return f"unknown room {room}"
    if isinstance(exc, ApiError) and exc.code == "not_a_member":
        return f"you are not a member of room {room}"
    if isinstance(exc, ApiError):
        return f"the server refused: {exc.message} ({exc.code}, HTTP {exc.status})"
    if isinstance(exc, UnexpectedResponse):
        return f"{args.server} does not look like a roomkeeper server: {exc.message}"
    if isinstance(exc, NotFound | BackendUnavailable | IdentityError | RoomKeyError
                  | FrameError):
        return exc.message
    return str(exc)


def _run(args: argparse.Namespace) -> int:
    status = 130
    try:
        status = trio.run(execute, args)
    except* KeyboardInterrupt:
        # Ctrl-C (bare, or inside a nursery's group) is how ``follow`` is meant to end;
        # elsewhere it is an interruption.
        status = 0 if args.chat_name == "follow" else 130
    return status


# --- the parser ---------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--server", metavar="URL",
                        default=os.environ.get("ROOMKEEPER_SERVER", DEFAULT_SERVER),
                        help=f"the roomkeeper server (default {DEFAULT_SERVER})")
    common.add_argument("--nats", metavar="URL",
                        default=os.environ.get("ROOMKEEPER_NATS_URL", DEFAULT_NATS_URL),
                        help=f"the NATS server (default {DEFAULT_NATS_URL})")
    common.add_argument("--identity", metavar="FILE", type=Path,
                        default=default_identity_path(),
                        help="identity file (default: $ROOMKEEPER_IDENTITY or "
                             "~/.config/roomkeeper/identity.json)")
    common.add_argument("--keyring", metavar="FILE", type=Path,
                        default=os.environ.get("ROOMKEEPER_KEYRING") or None,
                        help=f"room keys (default: {KEYRING_NAME} next to the identity)")
    return common


def _leaf(parent: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
          full_name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
    parser = parent.add_parser(
        name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".",
        parents=[_common()], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(run=_run, chat_handler=handler, chat_name=full_name)
    return parser


def _group(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
           help_text: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    group = commands.add_parser(name, help=help_text, description=help_text + ".")
    return group.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the chat commands to a ``roomkeeper`` parser's subcommands."""
    rooms = _group(commands, "rooms", "create and list rooms")
    create = _leaf(rooms, "create", "rooms create", rooms_create,
                   "create a room and a fresh room key; prints the room id")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--ephemeral", action="store_true",
                        help="core NATS only: no stream, no history")
    create.add_argument("--member", metavar="KEYID", action="append", default=[],
                        help="add a member (repeatable)")
    _leaf(rooms, "list", "rooms list", rooms_list, "list the rooms you are a member of")

    members = _group(commands, "members", "add and remove room members (owner only)")
    for name, handler in (("add", members_add), ("remove", members_remove)):
        leaf = _leaf(members, name, f"members {name}", handler, f"{name} a member")
        leaf.add_argument("room", metavar="ROOM")
        leaf.add_argument("keyid", metavar="KEYID")

    keys = _group(commands, "keys", "hand room keys to members")
    share = _leaf(keys, "share", "keys share", keys_share,
                  "print the room key sealed to a member's keyid")
    share.add_argument("room", metavar="ROOM")
    share.add_argument("keyid", metavar="KEYID")
    accept = _leaf(keys, "accept", "keys accept", keys_accept,
                   "store a room key someone shared with you")
    accept.add_argument("room", metavar="ROOM")
    accept.add_argument("sealed", metavar="SEALED")

    _add_messaging(commands)


def _add_messaging(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send_cmd = _leaf(commands, "send", "send", send, "encrypt and send a message to a room")
    send_cmd.add_argument("room", metavar="ROOM")
    send_cmd.add_argument("text", metavar="TEXT")
    send_cmd.add_argument("--via", choices=[v.value for v in Via], default=Via.NATS.value,
                          help="core NATS (default), a JetStream publish, or the HTTP API")

    history_cmd = _leaf(commands, "history", "history", history,
                        "print a room's recent messages, verified and decrypted")
    history_cmd.add_argument("room", metavar="ROOM")
    history_cmd.add_argument("--limit", type=int, metavar="N", help="how many (default 200)")

    follow_cmd = _leaf(commands, "follow", "follow", follow,
                       "print a room's history, then new messages as they come")
    follow_cmd.add_argument("room", metavar="ROOM")
    follow_cmd.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, metavar="N",
                            help=f"messages of history to start with (default "
                                 f"{DEFAULT_BACKLOG})")
    follow_cmd.add_argument("--via", choices=["nats", "http"], default="nats",
                            help="live over NATS (default), or by polling the HTTP API")
    follow_cmd.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                            help="how often --via http polls (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomkeeper", description="roomkeeper chat client.")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

