"""The signature middleware: R4 step 1, before any handler runs.

It rebuilds the request exactly as it came over the wire (the raw target from the ASGI
scope, never the decoded URL), reads the body under the size cap before anything hashes
it, lets the core verify, then asks the NonceStore whether the nonce is new. Every
failure is one ``Unauthorized``; the error handler turns it into the single fixed 401.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from quart import Request
from werkzeug.exceptions import RequestEntityTooLarge

from ...core import KeyId, PayloadTooLarge, SignedRequest, Unauthorized, verify_request
from ...ports import Deployment

__all__ = ["PUBLIC_PATHS", "authenticate", "raw_target", "read_body"]

#: API.md: these answer without a signature (so do CORS preflights).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


def raw_target(scope: Mapping[str, Any]) -> tuple[str, str]:
    """(path, query) as sent on the wire; query without '?'. Latin-1 keeps every byte."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:  # servers may omit raw_path; re-encoding is the best left to do
        raw = quote(scope["path"], safe="/:@!$&'()*+,;=~").encode("ascii")
    path = raw.decode("latin-1")
    if not path.startswith("/"):
        # An absolute-form target ("GET http://host/p HTTP/1.1"): @path is its path.
        path = urlsplit(path).path or "/"
    return path, bytes(scope.get("query_string", b"")).decode("latin-1")


async def read_body(request: Request, max_body: int) -> bytes:
    """The whole body, or PayloadTooLarge as soon as Content-Length or the bytes
    received exceed ``max_body`` (Quart's MAX_CONTENT_LENGTH enforces both)."""
    try:
        return await request.get_data(cache=True, as_text=False, parse_form_data=False)
    except RequestEntityTooLarge:
        raise PayloadTooLarge(f"the body is larger than {max_body} bytes") from None


def signed_request(request: Request, body: bytes, public_authority: str | None) -> SignedRequest:
    path, query = raw_target(request.scope)
    headers = request.headers
    return SignedRequest(
        # Werkzeug upper-cases request.method; the signature covers the method as sent.
        method=str(request.scope.get("method", request.method)),
        authority=public_authority or headers.get("Host", ""),
        path=path,
        query=query,
        body=body,
        content_digest=tuple(headers.getlist("Content-Digest")),
        signature_input=tuple(headers.getlist("Signature-Input")),
        signature=tuple(headers.getlist("Signature")),
    )


async def authenticate(
    request: Request, body: bytes, deployment: Deployment, public_authority: str | None
) -> KeyId:
    """The caller's keyid, or Unauthorized. The nonce is recorded only after the
    signature verified, so nobody can burn another key's nonces."""
    verified = verify_request(
        signed_request(request, body, public_authority), now=deployment.clock()
    )
    remember_until = float(verified.replay_until)
    if not await deployment.nonces.add(verified.keyid, verified.nonce, remember_until):
        raise Unauthorized("replayed nonce")
    return verified.keyid
