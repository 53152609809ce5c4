"""Reading a room's history as messages: every frame verified and decrypted first.

The server stores whatever was published on a room's subject (R9), so a page may hold
frames from non-members, frames sealed under another key, or tampered bytes. Those are
never returned as messages: each is reported as a ``RejectedFrame`` carrying the
``FrameError`` code that rejected it, so a client can say "2 frames could not be
verified" without ever showing their content.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from roomkeeper.core import KeyId

from .frames import ChatMessage, FrameError, open_frame
from .http import RoomsClient

__all__ = [
    "Origin",
    "ReceivedMessage",
    "RejectedFrame",
    "VerifiedHistory",
    "open_frames",
    "read_history",
]

#: Where a frame came from: a history page, or the live subscription.
Origin = Literal["history", "live"]


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A frame that verified and decrypted: it was sealed by ``sender`` for this room
    under the room key."""

    sender: KeyId
    #: The frame nonce: unique per frame, so it identifies the frame.
    nonce: bytes
    plaintext: bytes
    origin: Origin = "history"

    def chat(self) -> ChatMessage:
        """The plaintext as a chat message (``MalformedChatMessage`` if it is not one)."""
        return ChatMessage.decode(self.plaintext)


@dataclass(frozen=True, slots=True)
class RejectedFrame:
    """A frame that did not verify or decrypt. Its bytes are deliberately not kept."""

    #: The ``FrameError`` code, e.g. ``bad_frame_signature`` or ``bad_frame_mac``.
    code: str
    size: int
    origin: Origin = "history"


@dataclass(frozen=True, slots=True)
class VerifiedHistory:
    """One history page after verification: the good messages, oldest to newest, and a
    report of the frames that were rejected. The paging fields are the page's own."""

    messages: tuple[ReceivedMessage, ...]
    rejected: tuple[RejectedFrame, ...]
    first_seq: int | None
    last_seq: int | None
    has_more: bool
    #: Good frames left out because the page already held one with the same nonce
    #: (the same frame published twice, e.g. a retried HTTP publish).
    duplicates: int = 0

    @property
    def reasons(self) -> Counter[str]:
        """How many frames were rejected, per reason code."""
        return Counter(frame.code for frame in self.rejected)


def open_frame_or_reject(frame: bytes, room_key: bytes, room_id: str,
                         origin: Origin) -> ReceivedMessage | RejectedFrame:
    try:
        opened = open_frame(frame, room_key, room_id=room_id)
    except FrameError as exc:
        return RejectedFrame(exc.code, len(frame), origin)
    return ReceivedMessage(opened.sender_keyid, opened.nonce, opened.plaintext, origin)


def open_frames(frames: Iterable[bytes], room_key: bytes, room_id: str,
                origin: Origin = "history",
                ) -> tuple[list[ReceivedMessage], list[RejectedFrame]]:
    """Verify and decrypt each frame, keeping their order."""
    good: list[ReceivedMessage] = []
    bad: list[RejectedFrame] = []
    for frame in frames:
        result = open_frame_or_reject(frame, room_key, room_id, origin)
        if isinstance(result, ReceivedMessage):
            good.append(result)
        else:
            bad.append(result)
    return good, bad


async def read_history(client: RoomsClient, room_id: str, room_key: bytes, *,
                       limit: int | None = None, before: int | None = None,
                       after: int | None = None) -> VerifiedHistory:
    """One page of history (see ``RoomsClient.history``), verified and decrypted."""
    page = await client.history(room_id, limit=limit, before=before, after=after)
    good, bad = open_frames(page.frames, room_key, room_id)
    unique = _first_of_each_nonce(good)
    return VerifiedHistory(tuple(unique), tuple(bad), page.first_seq, page.last_seq,
                           page.has_more, duplicates=len(good) - len(unique))


def _first_of_each_nonce(messages: list[ReceivedMessage]) -> list[ReceivedMessage]:
    # After verification only: a forged copy of a nonce never got this far.
    seen: set[bytes] = set()
    unique = []
    for message in messages:
        if message.nonce not in seen:
            seen.add(message.nonce)
            unique.append(message)
    return unique
