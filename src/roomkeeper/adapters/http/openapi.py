"""The OpenAPI 3.1 description served at /openapi.json, written by hand so that it
states the contract of API.md precisely (it is validated and fuzzed in tests)."""

from __future__ import annotations

from typing import Any

from ... import __version__

__all__ = ["openapi_document"]

Json = dict[str, Any]

ROOM_ID = {"type": "string", "pattern": "^[a-z0-9]{26}$"}
KEYID = {
    "type": "string",
    "pattern": "^[A-Za-z0-9_-]{43}$",
    "description": "Unpadded base64url of a 32-byte ed25519 public key, canonical.",
}
NAME = {
    "type": "string", "minLength": 1, "maxLength": 200,
    "description": "1 to 200 characters, not only whitespace, no control characters.",
    "allOf": [{"pattern": "\\S"}, {"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}],
}
ERROR = {"$ref": "#/components/schemas/Error"}

SIGNING = """\
Every request except GET /healthz, GET /readyz, GET /openapi.json and CORS preflight \
OPTIONS carries three headers (RFC 9421 HTTP Message Signatures with ed25519):

* `Content-Digest`: `sha-256=:<base64 of SHA-256 of the raw body>:` (sha-512 also \
accepted), required even for an empty body.
* `Signature-Input`: one dictionary entry tagged `tag="roomkeeper-v1"` covering exactly \
`("@method" "@authority" "@path" "@query" "content-digest")` with the parameters \
`created`, `expires` (at most 300 s later), `nonce` (at least 128 random bits, never \
reused), `keyid` (the signer's key) and `tag`; `alg` may only be `"ed25519"`.
* `Signature`: `<label>=:<base64 of the 64-byte ed25519 signature>:`.

`@path` and `@query` are the raw request target as sent; `@query` is `?` when empty; \
`@authority` is the server's public authority (by default the Host header). Any failure \
gets the same 401 with `WWW-Authenticate: Signature`."""

MEDIA_TYPES = """\
JSON bodies are accepted with `Content-Type: application/json` or no Content-Type; any \
other media type gets 415. Bodies must be UTF-8 JSON without duplicate keys; request \
objects reject unknown fields. Bodies over 1 MiB get 413."""


def _error(description: str, headers: Json | None = None) -> Json:
    response: Json = {"description": description,
                      "content": {"application/json": {"schema": ERROR}}}
    if headers:
        response["headers"] = headers
    return response


def _ok(description: str, schema: Json) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def _responses(success: Json, *errors: str) -> Json:
    """``success`` maps status to response; every signed operation can also get 401, and
    400 for a query parameter it does not read."""
    result = dict(success)
    for status in ("400", "401", "403", "404", "409", "413", "415", "503"):
        if status in errors or status in ("400", "401"):
            result[status] = _ref("responses", status)
    return result


def _schemas() -> Json:
    room = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "name", "mode", "owner", "members", "created_at", "subject",
                     "persisted"],
        "properties": {
            "id": ROOM_ID,
            "name": NAME,
            "mode": {"type": "string", "enum": ["matrix", "ephemeral"]},
            "owner": KEYID,
            "members": {"type": "array", "items": KEYID, "minItems": 1, "uniqueItems": True},
            "created_at": {"type": "string", "format": "date-time"},
            "subject": {"type": "string", "pattern": "^rooms\\.[a-z0-9]{26}$"},
            "persisted": {"type": "boolean"},
        },
    }
    seq_or_null = {"type": ["integer", "null"], "minimum": 1}
    return {
        "RoomId": ROOM_ID,
        "KeyId": KEYID,
        "Room": room,
        "RoomList": {
            "type": "object", "additionalProperties": False, "required": ["rooms"],
            "properties": {"rooms": {"type": "array", "items": _ref("schemas", "Room")}},
        },
        "CreateRoom": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {
                "name": NAME,
                "mode": {"type": "string", "enum": ["matrix", "ephemeral"],
                         "default": "matrix"},
                "members": {"type": "array", "items": KEYID, "maxItems": 1000},
            },
        },
        "AddMember": {
            "type": "object", "additionalProperties": False, "required": ["member"],
            "properties": {"member": KEYID},
        },
        "HistoryPage": {
            "type": "object", "additionalProperties": False,
            "required": ["messages", "first_seq", "last_seq", "has_more"],
            "properties": {
                "messages": {
                    "type": "array", "maxItems": 1000,
                    "description": "Oldest to newest; standard base64 of the stored bytes.",
                    "items": {"type": "string", "contentEncoding": "base64"},
                },
                "first_seq": seq_or_null,
                "last_seq": seq_or_null,
                "has_more": {"type": "boolean"},
            },
        },
        "Published": {
            "type": "object", "additionalProperties": False, "required": ["seq"],
            "properties": {"seq": {"type": "integer", "minimum": 1}},
        },
        "Accepted": {"type": "object", "additionalProperties": False, "maxProperties": 0},
        "Status": {
            "type": "object", "additionalProperties": False, "required": ["status"],
            "properties": {"status": {"type": "string"}},
        },
        "Error": {
            "type": "object", "additionalProperties": False, "required": ["error", "message"],
            "properties": {
                "error": {"type": "string", "description": "Machine-readable code."},
                "message": {"type": "string"},
            },
        },
    }


def _parameters() -> Json:
    def cursor(name: str, text: str) -> Json:
        return {"name": name, "in": "query", "required": False, "description": text,
                "schema": {"type": "integer", "minimum": 0}}

    return {
        "RoomId": {"name": "room_id", "in": "path", "required": True, "schema": ROOM_ID,
                   "description": "An id that cannot name a room gets 404."},
        "KeyId": {"name": "keyid", "in": "path", "required": True, "schema": KEYID},
        "Limit": {"name": "limit", "in": "query", "required": False,
                  "description": "Default 200; values above 1000 are clamped to 1000.",
                  "schema": {"type": "integer", "minimum": 1, "default": 200}},
        "Before": cursor("before", "The newest `limit` frames with a sequence below this. "
                                   "Not together with `after`."),
        "After": cursor("after", "The oldest `limit` frames with a sequence above this. "
                                 "Not together with `before`."),
    }


def _components_responses() -> Json:
    retry = {"Retry-After": {"description": "Seconds to wait before retrying.",
                             "schema": {"type": "integer", "minimum": 0}}}
    www = {"WWW-Authenticate": {"schema": {"type": "string", "const": "Signature"}}}
    return {
        "400": _error("Bad input: invalid JSON, a wrong type, an unknown field, an "
                      "invalid name, keyid, mode, limit or cursor, or a query parameter the "
                      "operation does not read (unknown_parameter)."),
        "401": _error("The request signature is missing or invalid (always the same "
                      "body).", www),
        "403": _error("Signed, but not allowed: the caller is not a member or not the "
                      "owner."),
        "404": _error("No such room (or no such route)."),
        "409": _error("Conflict: the owner cannot be removed, or a concurrent update "
                      "kept winning."),
        "413": _error("The body is larger than 1 MiB (or, for a published frame, than the "
                      "NATS server's max_payload)."),
        "415": _error("The Content-Type is neither application/json nor absent."),
        "503": _error("A backend (NATS, JetStream, KV) did not answer, or JetStream "
                      "refused: an account or server limit (error jetstream_limit) or "
                      "another reason (jetstream_error), both logged; nothing was "
                      "half-written.", retry),
    }


def _json_body(schema: str) -> Json:
    return {"required": True,
            "content": {"application/json": {"schema": _ref("schemas", schema)}}}


def _room_paths() -> Json:
    room = _ok("The room.", _ref("schemas", "Room"))
    return {
        "/rooms": {
            "post": {
                "operationId": "createRoom",
                "summary": "Create a room; the caller becomes owner and member.",
                "description": "For a matrix room the stream is ensured before the room "
                               "is stored (R1); a failure gives 503 and no room.",
                "requestBody": _json_body("CreateRoom"),
                "responses": _responses(
                    {"201": {**room, "headers": {"Location": {"schema": {"type": "string"}}}}},
                    "400", "413", "415", "503"),
            },
            "get": {
                "operationId": "listRooms",
                "summary": "The rooms the caller is a member of.",
                "responses": _responses({"200": _ok("The rooms.", _ref("schemas", "RoomList"))},
                                        "503"),
            },
        },
        "/rooms/{room_id}": {
            "parameters": [_ref("parameters", "RoomId")],
            "get": {
                "operationId": "getRoom", "summary": "A room, for its members.",
                "responses": _responses({"200": room}, "403", "404", "503"),
            },
            "delete": {
                "operationId": "deleteRoom",
                "summary": "Delete a room (owner only): the record, then its stream.",
                "responses": _responses({"204": {"description": "Deleted."}},
                                        "403", "404", "409", "503"),
            },
        },
        "/rooms/{room_id}/members": {
            "parameters": [_ref("parameters", "RoomId")],
            "post": {
                "operationId": "addMember", "summary": "Add a member (owner only; idempotent).",
                "requestBody": _json_body("AddMember"),
                "responses": _responses({"200": room},
                                        "400", "403", "404", "409", "413", "415", "503"),
            },
        },
        "/rooms/{room_id}/members/{keyid}": {
            "parameters": [_ref("parameters", "RoomId"), _ref("parameters", "KeyId")],
            "delete": {
                "operationId": "removeMember",
                "summary": "Remove a member: the owner, or the member themselves.",
                "description": "The owner cannot be removed (409).",
                "responses": _responses({"200": room}, "400", "403", "404", "409", "503"),
            },
        },
    }


def _history_paths() -> Json:
    return {
        "/rooms/{room_id}/history": {
            "parameters": [_ref("parameters", "RoomId")],
            "get": {
                "operationId": "readHistory",
                "summary": "A page of the room's stored frames, for members.",
                "description": "Checks run signature (401), room exists (404), membership "
                               "(403). Ephemeral rooms and deployments without JetStream "
                               "answer an empty page.",
                "parameters": [_ref("parameters", n) for n in ("Limit", "Before", "After")],
                "responses": _responses(
                    {"200": _ok("The page.", _ref("schemas", "HistoryPage"))},
                    "400", "403", "404", "503"),
            },
        },
        "/rooms/{room_id}/messages": {
            "parameters": [_ref("parameters", "RoomId")],
            "post": {
                "operationId": "publishFrame",
                "summary": "Publish a raw frame on the room's subject, for members.",
                "description": "The body is the opaque frame (at most 1 MiB, may be empty); "
                               "its Content-Type is not checked.",
                "requestBody": {"required": True, "content": {"application/octet-stream": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                }}},
                "responses": _responses({
                    "201": _ok("Persisted: the stream sequence.", _ref("schemas", "Published")),
                    "202": _ok("Published without persistence.", _ref("schemas", "Accepted")),
                }, "403", "404", "413", "503"),
            },
        },
    }


def _operations_paths() -> Json:
    def public(operation_id: str, summary: str, extra: Json | None = None) -> Json:
        responses: Json = {"200": _ok(summary, _ref("schemas", "Status")), **(extra or {})}
        return {"get": {"operationId": operation_id, "summary": summary, "security": [],
                        "responses": responses}}

    return {
        "/healthz": public("healthz", "The process is up."),
        "/readyz": public("readyz", "The backends answer.",
                          {"503": _ref("responses", "503")}),
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document.", "security": [],
            "responses": {"200": {"description": "The OpenAPI description.",
                                  "content": {"application/json": {"schema": {
                                      "type": "object"}}}}},
        }},
    }


def openapi_document() -> Json:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "roomkeeper",
            "version": __version__,
            "description": "Control plane for end-to-end-encrypted chat rooms on NATS.\n\n"
                           + SIGNING + "\n\n" + MEDIA_TYPES,
        },
        "paths": {**_room_paths(), **_history_paths(), **_operations_paths()},
        "components": {
            "schemas": _schemas(),
            "parameters": _parameters(),
            "responses": _components_responses(),
            "securitySchemes": {"httpMessageSignature": {
                "type": "apiKey", "in": "header", "name": "Signature", "description": SIGNING,
            }},
        },
        "security": [{"httpMessageSignature": []}],
    }
