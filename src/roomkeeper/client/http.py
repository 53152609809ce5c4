"""``RoomsClient``: one async method per endpoint of API.md, signed, with typed results.

It runs on Trio or asyncio (httpx picks its backend through anyio). Every request is
signed by ``SignatureAuth``; every error answer becomes an ``ApiError`` subclass, and a
connection that cannot be made becomes ``ServerUnreachable``.

Two ways to build one::

    async with RoomsClient("http://127.0.0.1:8080", identity) as client:
        room = await client.create_room("general")

    # In process, no sockets: over the ASGI app itself (its lifespan must be running,
    # e.g. inside ``app.test_app()``). This is what ``roomkeeper.testing`` does.
    client = RoomsClient.for_asgi(app, identity)
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import httpx

from roomkeeper.core import MAX_LIMIT, KeyId, Mode, RoomId, subject_for_room

from .errors import ServerUnreachable, UnexpectedResponse, describe, error_from_response
from .keys import Identity
from .signer import RequestSigner, SignatureAuth

__all__ = [
    "DEFAULT_TIMEOUT",
    "IN_PROCESS_URL",
    "HistoryPage",
    "RoomInfo",
    "RoomsClient",
]

#: Seconds for connecting and for each read; a history page of 1000 large frames fits.
DEFAULT_TIMEOUT: Final = 30.0
#: The base URL of an in-process client; the host is also the signed @authority.
IN_PROCESS_URL: Final = "http://roomkeeper.test"


@dataclass(frozen=True, slots=True)
class RoomInfo:
    """A room as the server describes it (API.md "Rooms")."""

    id: RoomId
    name: str
    mode: Mode
    owner: KeyId
    members: tuple[KeyId, ...]
    created_at: datetime
    #: The NATS subject the room's frames go to.
    subject: str
    #: True when the server keeps a history for the room (matrix mode with JetStream).
    persisted: bool

    @classmethod
    def from_json(cls, doc: object) -> RoomInfo:
        try:
            return _room_from_json(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(f"not a room object: {exc}") from None


def _room_from_json(doc: Any) -> RoomInfo:
    members = doc["members"]
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise TypeError("members must be a list of keyids")
    room_id = RoomId(_text(doc["id"]))
    if doc["subject"] != subject_for_room(room_id):
        raise ValueError("the subject does not belong to the room id")
    return RoomInfo(
        id=room_id,
        name=_text(doc["name"]),
        mode=Mode(doc["mode"]),
        owner=KeyId(_text(doc["owner"])),
        members=tuple(KeyId(m) for m in members),
        created_at=datetime.fromisoformat(_text(doc["created_at"])),
        subject=doc["subject"],
        persisted=_flag(doc["persisted"]),
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a room's history: the exact stored frames, oldest to newest."""

    frames: tuple[bytes, ...]
    #: Stream sequences of the first and last frame; None for an empty page.
    first_seq: int | None
    last_seq: int | None
    #: More frames exist beyond this page in the direction of paging.
    has_more: bool

    @classmethod
    def from_json(cls, doc: object) -> HistoryPage:
        try:
            return _page_from_json(doc)
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise UnexpectedResponse(f"not a history page: {exc}") from None


def _page_from_json(doc: Any) -> HistoryPage:
    messages = doc["messages"]
    if not isinstance(messages, list):
        raise TypeError("messages must be a list")
    frames = tuple(base64.b64decode(_text(m), validate=True) for m in messages)
    first, last = _seq(doc["first_seq"]), _seq(doc["last_seq"])
    if (first is None) != (not frames) or (last is None) != (not frames):
        raise ValueError("first_seq and last_seq must be null exactly when the page is empty")
    return HistoryPage(frames, first, last, _flag(doc["has_more"]))


def _seq(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 1:
        raise TypeError("a stream sequence is a positive integer")
    return value


class RoomsClient:
    """An async client for one roomkeeper server, signing as one identity."""

    def __init__(
        self,
        base_url: str,
        identity: Identity,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        authority: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """``authority`` is the server's ``--public-authority`` when it has one (by
        default the signature covers host[:port] of ``base_url``)."""
        self._identity = identity
        self._base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            auth=SignatureAuth(RequestSigner(identity), authority=authority),
            transport=transport,
            timeout=timeout,
            # The API never redirects; following one would sign for another target.
            follow_redirects=False,
            # Proxy variables aimed at the internet should not capture a local server.
            trust_env=False,
        )

    @classmethod
    def for_asgi(cls, app: Any, identity: Identity, *, base_url: str = IN_PROCESS_URL) -> Self:
        """A client that calls the ASGI ``app`` in process: no sockets at all."""
        return cls(base_url, identity, transport=httpx.ASGITransport(app=app))

    @property
    def identity(self) -> Identity:
        return self._identity

    @property
    def keyid(self) -> KeyId:
        return self._identity.keyid

    @property
    def base_url(self) -> str:
        return self._base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    # --- rooms --------------------------------------------------------------------------

    async def create_room(self, name: str, mode: Mode | str = Mode.MATRIX,
                          members: Iterable[str] = ()) -> RoomInfo:
        body: dict[str, object] = {"name": name, "mode": Mode(mode).value}
        if extra := list(members):
            body["members"] = extra
        return RoomInfo.from_json(await self._json("POST", "/rooms", json=body))

    async def list_rooms(self) -> list[RoomInfo]:
        doc = await self._json("GET", "/rooms")
        rooms = doc.get("rooms") if isinstance(doc, dict) else None
        if not isinstance(rooms, list):
            raise UnexpectedResponse("the room list has no 'rooms' array")
        return [RoomInfo.from_json(room) for room in rooms]

    async def get_room(self, room_id: str) -> RoomInfo:
        return RoomInfo.from_json(await self._json("GET", _room_path(room_id)))

    async def add_member(self, room_id: str, keyid: str) -> RoomInfo:
        path = f"{_room_path(room_id)}/members"
        return RoomInfo.from_json(await self._json("POST", path, json={"member": keyid}))

    async def remove_member(self, room_id: str, keyid: str) -> RoomInfo:
        path = f"{_room_path(room_id)}/members/{_segment(keyid)}"
        return RoomInfo.from_json(await self._json("DELETE", path))

    async def delete_room(self, room_id: str) -> None:
        await self._request("DELETE", _room_path(room_id))

    # --- history and publishing ---------------------------------------------------------

    async def history(self, room_id: str, limit: int | None = None,
                      before: int | None = None, after: int | None = None) -> HistoryPage:
        """One page (API.md "History"): the newest ``limit`` frames, or those just
        before/after a stream sequence. The server checks the arguments."""
        params = {name: str(value) for name, value in
                  (("limit", limit), ("before", before), ("after", after)) if value is not None}
        path = f"{_room_path(room_id)}/history"
        return HistoryPage.from_json(await self._json("GET", path, params=params))

    async def iter_history(self, room_id: str, page_size: int = MAX_LIMIT, *,
                           max_frames: int | None = None) -> AsyncIterator[HistoryPage]:
        """Every page of the backlog (or of its newest ``max_frames`` frames), newest
        page first, paging backwards with ``before`` until the server says there is
        nothing older. Frames inside each page stay oldest to newest."""
        before: int | None = None
        remaining = math.inf if max_frames is None else max_frames
        while remaining > 0:
            page = await self.history(room_id, limit=int(min(remaining, page_size)),
                                      before=before)
            if page.frames:
                yield page
            remaining -= len(page.frames)
            if not page.has_more or page.first_seq is None:
                return
            before = page.first_seq

    async def publish(self, room_id: str, frame: bytes) -> int | None:
        """Publish ``frame`` on the room's subject through the server. Returns the
        stream sequence for a persisted room, None for one without history."""
        response = await self._request(
            "POST", f"{_room_path(room_id)}/messages", content=frame,
            headers={"Content-Type": "application/octet-stream"})
        if response.status_code == 202:
            return None
        doc = _decode_json(response)
        seq = doc.get("seq") if isinstance(doc, dict) else None
        if type(seq) is not int:
            raise UnexpectedResponse("a publish answer without a sequence")
        return seq

    # --- plumbing -----------------------------------------------------------------------

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return _decode_json(await self._request(method, path, **kwargs))

    async def _request(self, method: str, path: str, *, json: object = None,
                       params: Mapping[str, str] | None = None, content: bytes | None = None,
                       headers: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            response = await self._http.request(method, path, json=json, params=params,
                                                content=content, headers=headers)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self._base_url, describe(exc)) from exc
        if response.is_error:
            raise error_from_response(response)
        return response


def _decode_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponse(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code} without a JSON body") from None


def _segment(value: str) -> str:
    """``value`` as one path segment: a '/' or '?' in an id must not change the route."""
    return quote(value, safe="")


def _room_path(room_id: str) -> str:
    return f"/rooms/{_segment(room_id)}"
