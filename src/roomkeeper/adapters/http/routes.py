"""The endpoints of API.md. Each handler parses, builds a core machine, drives it and
shapes the answer; every decision (R1-R11) is made in the core."""

from __future__ import annotations

from quart import Request, Response, g, request
from quart.typing import RouteCallable
from quart_trio import QuartTrio

from ...core import (
    ROOM_ID_ENTROPY_BYTES,
    BadRequest,
    KeyId,
    Wiring,
    add_member,
    create_room,
    delete_room,
    get_room,
    list_rooms,
    new_room_id,
    parse_create_room,
    parse_member_body,
    parse_page_request,
    publish,
    read_history,
    remove_member,
    room_to_json,
)
from ...ports import Deployment
from ..driver import drive
from .bodies import decode_json, require_json_media_type
from .openapi import openapi_document
from .responses import history_response, json_response, no_content

__all__ = ["Api", "reject_unknown_query"]

#: The query parameters each signed endpoint reads; any other is a mistake worth a 400
#: (a mistyped ``limt=5`` silently ignored would answer a different question).
QUERY_PARAMETERS: dict[str, frozenset[str]] = {
    "history": frozenset({"limit", "before", "after"}),
}


def caller() -> KeyId:
    """The keyid the signature middleware authenticated for this request."""
    keyid: KeyId | None = g.keyid
    if keyid is None:  # pragma: no cover - the middleware guarantees it on signed routes
        raise RuntimeError("a signed route ran without an authenticated caller")
    return keyid


def json_body(req: Request) -> object:
    require_json_media_type(req.mimetype)
    body: bytes = g.body
    return decode_json(body)


def reject_unknown_query(req: Request) -> None:
    if req.endpoint is None:  # no route: the 404 or 405 comes from routing
        return
    unknown = sorted(set(req.args) - QUERY_PARAMETERS.get(req.endpoint, frozenset()))
    if unknown:
        raise BadRequest(f"unknown query parameter: {unknown[0]}", code="unknown_parameter")


def single_query(req: Request, name: str) -> str | None:
    """One query value; a repeated parameter is ambiguous, so it is rejected."""
    values = req.args.getlist(name)
    if len(values) > 1:
        code = "invalid_limit" if name == "limit" else "invalid_cursor"
        raise BadRequest(f"{name} may appear at most once", code=code)
    return values[0] if values else None


class Api:
    def __init__(self, deployment: Deployment, wiring: Wiring) -> None:
        self.deployment = deployment
        self.wiring = wiring

    def register(self, app: QuartTrio) -> None:
        rules: list[tuple[str, str, RouteCallable, str]] = [
            ("/healthz", "healthz", self.healthz, "GET"),
            ("/readyz", "readyz", self.readyz, "GET"),
            ("/openapi.json", "openapi", self.openapi, "GET"),
            ("/rooms", "create_room", self.create_room, "POST"),
            ("/rooms", "list_rooms", self.list_rooms, "GET"),
            ("/rooms/<room_id>", "get_room", self.get_room, "GET"),
            ("/rooms/<room_id>", "delete_room", self.delete_room, "DELETE"),
            ("/rooms/<room_id>/members", "add_member", self.add_member, "POST"),
            ("/rooms/<room_id>/members/<member>", "remove_member", self.remove_member, "DELETE"),
            ("/rooms/<room_id>/history", "history", self.history, "GET"),
            ("/rooms/<room_id>/messages", "publish", self.publish, "POST"),
        ]
        for rule, endpoint, view, method in rules:
            app.add_url_rule(
                rule, endpoint, view, methods=[method], provide_automatic_options=False
            )

    async def healthz(self) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self) -> Response:
        # BackendUnavailable propagates to the error handler: 503 with Retry-After.
        await self.deployment.check_ready()
        return json_response({"status": "ready"})

    async def openapi(self) -> Response:
        return json_response(openapi_document())

    async def create_room(self) -> Response:
        req = parse_create_room(json_body(request))
        room_id = new_room_id(self.deployment.entropy(ROOM_ID_ENTROPY_BYTES))
        machine = create_room(req, caller(), room_id, self.deployment.clock(), self.wiring)
        room = await drive(machine, self.deployment)
        return json_response(
            room_to_json(room, self.wiring), 201, {"Location": f"/rooms/{room.id}"}
        )

    async def list_rooms(self) -> Response:
        rooms = await drive(list_rooms(caller()), self.deployment)
        return json_response({"rooms": [room_to_json(room, self.wiring) for room in rooms]})

    async def get_room(self, room_id: str) -> Response:
        room = await drive(get_room(room_id, caller()), self.deployment)
        return json_response(room_to_json(room, self.wiring))

    async def delete_room(self, room_id: str) -> Response:
        await drive(delete_room(room_id, caller(), self.wiring), self.deployment)
        return no_content()

    async def add_member(self, room_id: str) -> Response:
        member = parse_member_body(json_body(request))
        room = await drive(add_member(room_id, caller(), member), self.deployment)
        return json_response(room_to_json(room, self.wiring))

    async def remove_member(self, room_id: str, member: str) -> Response:
        room = await drive(remove_member(room_id, caller(), member), self.deployment)
        return json_response(room_to_json(room, self.wiring))

    async def history(self, room_id: str) -> Response:
        page_request = parse_page_request(
            single_query(request, "limit"),
            single_query(request, "before"),
            single_query(request, "after"),
        )
        machine = read_history(room_id, caller(), page_request, self.wiring)
        return history_response(await drive(machine, self.deployment))

    async def publish(self, room_id: str) -> Response:
        # The frame is opaque (R9): any Content-Type is accepted and nothing is parsed.
        frame: bytes = g.body
        seq = await drive(publish(room_id, caller(), frame, self.wiring), self.deployment)
        if seq is None:
            return json_response({}, 202)
        return json_response({"seq": seq}, 201)
