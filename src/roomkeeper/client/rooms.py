"""``RoomSession``: one room as a member uses it -- seal, send, read, follow.

It binds a ``RoomsClient`` (HTTP), optionally a ``RoomsNats`` connection, the room id
and the room key. Sending goes one of three ways (``Via``); reading verifies and
decrypts every frame; following joins history and live frames with no gap.

Room keys travel between members as sealed boxes (``seal_room_key``); ``share_text`` /
``accept_text`` turn those into copy-pasteable text (unpadded base64url).
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

from roomkeeper.core import Mode, RoomId, parse_room_id

from .follow import DEFAULT_BACKLOG, Follower, LiveFeed, follow_room
from .frames import (
    ChatMessage,
    RoomKeyUnsealFailed,
    new_room_key,
    open_room_key,
    seal_frame,
    seal_room_key,
)
from .history import VerifiedHistory, read_history
from .http import RoomInfo, RoomsClient
from .keys import Identity, Keyring
from .nats import RoomsNats

__all__ = [
    "NoLiveConnection",
    "RoomSession",
    "Via",
    "accept_text",
    "create_room_with_key",
    "share_text",
]


class Via(enum.Enum):
    """How a frame gets into the room."""

    #: A core-NATS publish, as a browser client does; the room's stream captures it.
    NATS = "nats"
    #: A JetStream publish with the frame nonce as Nats-Msg-Id (deduplicated, acked).
    JETSTREAM = "jetstream"
    #: ``POST /rooms/{id}/messages`` through the server.
    HTTP = "http"


class NoLiveConnection(RuntimeError):
    """The session has no NATS connection or live feed for what was asked."""


class RoomSession:
    def __init__(self, client: RoomsClient, room_id: str, room_key: bytes, *,
                 nats: RoomsNats | None = None, feed: LiveFeed | None = None) -> None:
        """``feed`` is where live frames come from when following; it defaults to
        ``nats``. Without either, the session can still send over HTTP and read."""
        valid = parse_room_id(room_id)
        if valid is None:
            raise ValueError(f"not a room id: {room_id!r}")
        self.client = client
        self.room_id: RoomId = valid
        self._room_key = room_key
        self._nats = nats
        self._feed = feed if feed is not None else nats

    @classmethod
    def from_keyring(cls, client: RoomsClient, room_id: str, keyring: Keyring, *,
                     nats: RoomsNats | None = None, feed: LiveFeed | None = None,
                     ) -> RoomSession:
        """A session with the room key from ``keyring`` (``RoomKeyMissing`` if absent)."""
        return cls(client, room_id, keyring.get(room_id), nats=nats, feed=feed)

    @property
    def identity(self) -> Identity:
        return self.client.identity

    def seal(self, plaintext: bytes) -> bytes:
        """A frame carrying ``plaintext``, sealed and signed for this room."""
        return seal_frame(self.identity, self._room_key, plaintext, room_id=self.room_id)

    def seal_chat(self, text: str, sent_at: datetime | None = None) -> bytes:
        chat = ChatMessage(text, sent_at if sent_at is not None else datetime.now(UTC))
        return self.seal(chat.encode())

    async def send(self, text: str, *, via: Via | str = Via.HTTP) -> bytes:
        """Send a chat message; returns the frame that was published."""
        frame = self.seal_chat(text)
        await self.publish(frame, via=via)
        return frame

    async def publish(self, frame: bytes, *, via: Via | str = Via.HTTP) -> int | None:
        """Put ``frame`` into the room. The stream sequence when the way of sending
        reports one (JetStream, or HTTP into a persisted room), else None."""
        way = Via(via)
        if way is Via.HTTP:
            return await self.client.publish(self.room_id, frame)
        nats = self._require_nats()
        if way is Via.JETSTREAM:
            return await nats.publish_jetstream(self.room_id, frame)
        await nats.publish(self.room_id, frame)
        return None

    async def history(self, limit: int | None = None, before: int | None = None,
                      after: int | None = None) -> VerifiedHistory:
        return await read_history(self.client, self.room_id, self._room_key,
                                  limit=limit, before=before, after=after)

    def follow(self, backlog: int | None = DEFAULT_BACKLOG,
               ) -> AbstractAsyncContextManager[Follower]:
        """``async with session.follow() as messages: async for m in messages: ...``"""
        if self._feed is None:
            raise NoLiveConnection("following a room needs a NATS connection or a live feed")
        return follow_room(self.client, self._feed, self.room_id, self._room_key,
                           backlog=backlog)

    def share_key(self, recipient_keyid: str) -> str:
        """This room's key sealed to ``recipient_keyid``, as text (see ``accept_text``)."""
        return share_text(self._room_key, recipient_keyid)

    def _require_nats(self) -> RoomsNats:
        if self._nats is None:
            raise NoLiveConnection("publishing over NATS needs a NATS connection")
        return self._nats


async def create_room_with_key(client: RoomsClient, name: str, mode: Mode | str = Mode.MATRIX,
                               members: Iterable[str] = (),
                               keyring: Keyring | None = None) -> tuple[RoomInfo, bytes]:
    """Create a room and a fresh room key for it (stored in ``keyring`` if given).
    The key never leaves this process: share it with ``share_text``."""
    room = await client.create_room(name, mode, members)
    room_key = new_room_key()
    if keyring is not None:
        keyring.set(room.id, room_key)
    return room, room_key


def share_text(room_key: bytes, recipient_keyid: str) -> str:
    """``room_key`` sealed to ``recipient_keyid``, as unpadded base64url text."""
    sealed = seal_room_key(room_key, recipient_keyid)
    return base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")


def accept_text(text: str, identity: Identity) -> bytes:
    """The room key in ``text`` (from ``share_text``); ``RoomKeyUnsealFailed`` when it
    is not valid text or was not sealed to ``identity``."""
    cleaned = "".join(text.split())  # tolerate line breaks from a copy and paste
    try:
        sealed = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        raise RoomKeyUnsealFailed("the shared key is not base64url text") from None
    return open_room_key(sealed, identity)
