"""Response shaping: compact JSON, the error body, and the streamed history page.

Every body this API sends is built here, so the wire format lives in one place.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import AsyncIterator, Mapping

from quart import Response

from ...core import BackendUnavailable, Page, RoomkeeperError, Unauthorized

__all__ = [
    "UNAUTHORIZED_BODY",
    "error_response",
    "history_content_length",
    "history_response",
    "json_response",
    "no_content",
    "page_chunks",
]

JSON = "application/json"

#: R4 / API.md: every authentication failure gets exactly this body, so a caller
#: cannot learn which check failed.
UNAUTHORIZED_BODY = {"error": "unauthorized", "message": "request signature missing or invalid"}

#: History pages are streamed in chunks of about this size. Each chunk is one trip
#: through Quart, Hypercorn, h11 and the socket: at 64 KiB a page of 1000 x 64 KiB
#: frames went out as 1000 chunks and cost ~15% more server CPU, a page of 4 KiB
#: frames ~5 ms more latency. A megabyte is still nothing beside that large page's
#: 87 MB of JSON, which is never held as one string (the frames plus one chunk).
CHUNK_BYTES = 1024 * 1024


def dumps(value: object) -> bytes:
    # ensure_ascii keeps every body 7-bit clean, so encoding can never fail.
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def json_response(
    value: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(dumps(value), status=status, headers=dict(headers or {}), content_type=JSON)


def no_content() -> Response:
    """204 without a Content-Type: there is no body to describe."""
    response = Response(b"", status=204)
    del response.headers["Content-Type"]
    return response


def error_response(error: RoomkeeperError) -> Response:
    """The JSON error body for a core error, with the headers its status calls for."""
    if isinstance(error, Unauthorized):
        return json_response(UNAUTHORIZED_BODY, 401, {"WWW-Authenticate": "Signature"})
    headers = {}
    if isinstance(error, BackendUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    return json_response(error.to_json(), error.status, headers)


def _page_tail(page: Page) -> bytes:
    return b"]," + dumps(
        {"first_seq": page.first_seq, "last_seq": page.last_seq, "has_more": page.has_more}
    )[1:]


def _b64_len(size: int) -> int:
    return 4 * ((size + 2) // 3)


def history_content_length(page: Page) -> int:
    """The exact length of the streamed body, so the response need not be chunked."""
    count = len(page.messages)
    frames = sum(_b64_len(len(m.data)) + 2 for m in page.messages)
    return len(b'{"messages":[') + frames + max(count - 1, 0) + len(_page_tail(page))


async def page_chunks(page: Page) -> AsyncIterator[bytes]:
    """The page as JSON, one chunk at a time (R5: standard base64 of the exact stored
    bytes, oldest to newest). Base64 needs no JSON escaping, so each frame is written
    as-is between quotes."""
    pieces: list[bytes] = [b'{"messages":[']
    size = 0
    for index, message in enumerate(page.messages):
        encoded = binascii.b2a_base64(message.data, newline=False)
        pieces.append(b',"' if index else b'"')
        pieces.append(encoded)
        pieces.append(b'"')
        size += len(encoded) + 3
        if size >= CHUNK_BYTES:
            yield b"".join(pieces)
            pieces.clear()
            size = 0
    pieces.append(_page_tail(page))
    yield b"".join(pieces)


def history_response(page: Page) -> Response:
    response = Response(page_chunks(page), status=200, content_type=JSON)
    response.headers["Content-Length"] = str(history_content_length(page))
    return response
