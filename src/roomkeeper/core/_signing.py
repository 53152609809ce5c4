"""RFC 9421 HTTP Message Signatures with ed25519, as API.md specifies: the signature
base, every check, the time window and the single 401 answer. Pure: the clock is an
argument and structured fields are parsed with http-sf.

To be implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._ids import KeyId

__all__ = [
    "COVERED_COMPONENTS",
    "MAX_CLOCK_SKEW",
    "MAX_WINDOW",
    "SIGNATURE_TAG",
    "SignedRequest",
    "VerifiedSignature",
    "content_digest",
    "sign_request",
    "signature_base",
    "verify_request",
]

SIGNATURE_TAG = "roomkeeper-v1"
COVERED_COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")
#: expires - created may not exceed this.
MAX_WINDOW = 300
#: created may be at most this far in the future, expires at most this far in the past.
MAX_CLOCK_SKEW = 60


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received. ``path`` and ``query`` come from the raw request target
    (query without the leading '?', '' when empty). Header fields are lists of every
    value received for that header name, so duplicates are visible."""

    method: str
    authority: str
    path: str
    query: str
    body: bytes
    content_digest: tuple[str, ...]
    signature_input: tuple[str, ...]
    signature: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VerifiedSignature:
    keyid: KeyId
    nonce: str
    created: int
    expires: int


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest header value for ``body``."""
    raise NotImplementedError


def signature_base(
    method: str, authority: str, path: str, query: str, digest: str, params: str
) -> bytes:
    """The RFC 9421 signature base over COVERED_COMPONENTS; ``params`` is the serialized
    signature parameters (the inner list with its parameters)."""
    raise NotImplementedError


def verify_request(req: SignedRequest, now: float) -> VerifiedSignature:
    """Every check of API.md but the nonce replay (the caller asks the NonceStore).
    Raises Unauthorized on any failure; the message is for logs, never for the client."""
    raise NotImplementedError


def sign_request(
    seed: bytes,
    method: str,
    authority: str,
    path: str,
    query: str,
    body: bytes,
    *,
    created: int,
    expires: int,
    nonce: str,
    label: str = "sig1",
) -> dict[str, str]:
    """The three headers (Content-Digest, Signature-Input, Signature) for a request,
    signed with the ed25519 ``seed`` (32 bytes)."""
    raise NotImplementedError
