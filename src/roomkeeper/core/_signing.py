"""RFC 9421 HTTP Message Signatures with ed25519, as API.md specifies: the signature
base, every check, the time window and the single 401 answer. Pure: the clock is an
argument, nonces come in from the caller, and structured fields are parsed with http-sf.

The checks ``verify_request`` makes. Any failure raises ``Unauthorized`` whose message
is for the logs only: the HTTP layer answers all of them with one fixed 401 body.

S1. One field line each. Content-Digest, Signature-Input and Signature each arrive
    exactly once. A proxy that folds repeated lines into one comma-joined line does not
    get around this: the duplicate dictionary key is rejected by S2, S3 and S9.
S2. The digest. Content-Digest is a dictionary of ``sha-256`` / ``sha-512`` byte
    sequences and nothing else (no other algorithm, no parameters, no repeated key).
    Every member is recomputed over the raw body and compared in constant time.
S3. One entry. Signature-Input is a dictionary with exactly one entry, an inner list.
    Its ``tag`` (S5) is what selects it, so a second entry, tagged or not, is refused
    rather than ignored: there is never a choice to make.
S4. Components. Exactly COVERED_COMPONENTS, in that order, as plain strings without
    parameters ("@Method", a repeat, a missing or an extra one all fail).
S5. Parameters. ``created`` and ``expires`` are integers; ``nonce``, ``keyid`` and
    ``tag`` are strings; all five are required and ``tag`` is SIGNATURE_TAG. ``alg`` may
    appear only as "ed25519". Any other parameter, or a repeated one, fails.
S6. Window. created < expires <= created + MAX_WINDOW, created <= now + MAX_CLOCK_SKEW,
    expires >= now - MAX_CLOCK_SKEW.
S7. Nonce shape (see ``NONCE_RULE``). Whether it was seen before is the NonceStore's
    business, asked by the HTTP layer after this function succeeds.
S8. Key. The keyid decodes strictly and names a valid point of the prime-order
    subgroup: the all-zero key, the identity and every other small-order or
    non-canonical encoding are refused before any signature math.
S9. Signature. A dictionary with the one label of S3, a 64-byte byte sequence, which
    verifies over the signature base.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NoReturn, cast

import http_sf
import nacl.bindings
import nacl.exceptions
import nacl.signing
from http_sf.types import DictionaryType, InnerListType, ItemType, ParamsType

from ._errors import Unauthorized
from ._ids import KeyId, decode_keyid, encode_keyid

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

#: S7. A server cannot measure randomness, only shape. 22 characters is the length of
#: 128 bits in unpadded base64url (what the client SDK sends), so the floor refuses
#: counters, timestamps and other short guessable values. The alphabet is RFC 3986's
#: unreserved set, which base64url and the API vector's nonce both fit in; the ceiling
#: bounds what the replay cache has to store per request.
NONCE_RULE = re.compile(r"[A-Za-z0-9._~-]{22,128}")

SIGNATURE_BYTES = 64
_ALGORITHM = "ed25519"
#: Content-Digest algorithm (RFC 9530) -> hashlib name.
_DIGESTS = {"sha-256": "sha256", "sha-512": "sha512"}
_PARAMETERS = frozenset({"created", "expires", "nonce", "keyid", "tag", "alg"})
#: What may appear in a signature base line (RFC 9421 2.5): visible ASCII, space, and
#: the tab that field values may hold inside. No CR/LF, so no line can be forged.
_BASE_VALUE = re.compile(r"[\t\x20-\x7e]*")


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

    @property
    def replay_until(self) -> int:
        """Until when the nonce must be remembered: S6 still accepts the signature up
        to MAX_CLOCK_SKEW seconds after ``expires``, so a replay cache that forgot it
        at ``expires`` would let it be replayed in that last minute."""
        return self.expires + MAX_CLOCK_SKEW


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest header value for ``body``."""
    if algorithm not in _DIGESTS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return http_sf.ser({algorithm: (hashlib.new(_DIGESTS[algorithm], body).digest(), {})})


def signature_base(
    method: str, authority: str, path: str, query: str, digest: str, params: str
) -> bytes:
    """The RFC 9421 signature base over COVERED_COMPONENTS; ``params`` is the serialized
    signature parameters (the inner list with its parameters)."""
    if not method or not authority or not path.startswith("/"):
        raise ValueError("a method, an authority and an absolute path are required")
    values = (method, authority.lower(), path, "?" + query, digest)
    return signature_base_for(zip(COVERED_COMPONENTS, values, strict=True), params)


def signature_base_for(components: Iterable[tuple[str, str]], params: str) -> bytes:
    """The signature base for any list of (component name, value): the lower-level
    builder that ``signature_base`` uses, open to other component lists (the RFC's
    own test vectors). ValueError when a value cannot appear in a base."""
    lines = [f"{http_sf.ser(name)}: {_base_value(value)}" for name, value in components]
    lines.append(f'"@signature-params": {_base_value(params)}')
    return "\n".join(lines).encode("ascii")


def verify_request(req: SignedRequest, now: float) -> VerifiedSignature:
    """Every check of API.md but the nonce replay (the caller asks the NonceStore).
    Raises Unauthorized on any failure; the message is for logs, never for the client."""
    digest = _single(req.content_digest, "Content-Digest")
    _check_digest(digest, req.body)
    label, entry = _select_entry(_single(req.signature_input, "Signature-Input"))
    _check_components(entry[0])
    created, expires, nonce, keyid = _check_params(entry[1])
    _check_window(created, expires, now)
    if not NONCE_RULE.fullmatch(nonce):
        _fail("nonce: not 22-128 characters of the unreserved set")
    public_key = _public_key(keyid)
    signature = _signature(_single(req.signature, "Signature"), label)
    _check_signature(public_key, _base(req, digest, http_sf.ser([entry])), signature)
    return VerifiedSignature(KeyId(keyid), nonce, created, expires)


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
    # Refuse to sign what no verifier would accept: a silent 401 helps nobody.
    if not 0 < expires - created <= MAX_WINDOW:
        raise ValueError(f"expires must be after created, by at most {MAX_WINDOW} s")
    if not NONCE_RULE.fullmatch(nonce):
        raise ValueError("a nonce is 22-128 characters of [A-Za-z0-9._~-]")
    key = nacl.signing.SigningKey(seed)
    keyid = encode_keyid(bytes(key.verify_key))
    items: list[ItemType] = [(name, {}) for name in COVERED_COMPONENTS]
    params: ParamsType = {
        "created": created, "expires": expires, "nonce": nonce, "keyid": keyid,
        "tag": SIGNATURE_TAG,
    }
    entry: InnerListType = (items, params)
    digest = content_digest(body)
    base = signature_base(method, authority, path, query, digest, http_sf.ser([entry]))
    return {
        "Content-Digest": digest,
        "Signature-Input": http_sf.ser({label: entry}),
        "Signature": http_sf.ser({label: (key.sign(base).signature, {})}),
    }


# --- the checks -------------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    raise Unauthorized(message)


def _single(lines: tuple[str, ...], field: str) -> str:
    """S1. The one field line, without the surrounding whitespace RFC 9421 2.1 strips."""
    if len(lines) != 1:
        _fail(f"{field}: {len(lines)} field lines, expected exactly one")
    return lines[0].strip(" \t")


def _reject_duplicate(key: str, context: str) -> None:
    # RFC 8941 would keep the last value silently; two meanings in one header is an attack.
    _fail(f"repeated {context} key {key!r}")


def _dictionary(value: str, field: str) -> DictionaryType:
    try:
        parsed = http_sf.parse(
            value.encode("ascii"), tltype="dictionary", on_duplicate_key=_reject_duplicate
        )
    except ValueError as exc:  # StructuredFieldError and UnicodeEncodeError both are
        _fail(f"{field}: not a structured-field dictionary: {exc}")
    return cast(DictionaryType, parsed)


def _byte_sequence(member: ItemType | InnerListType, what: str) -> bytes:
    """A parsed dictionary member that must be a byte sequence without parameters."""
    if not isinstance(member, tuple) or not isinstance(member[0], bytes) or member[1]:
        _fail(f"{what}: not a plain byte sequence")
    return member[0]


def _check_digest(value: str, body: bytes) -> None:
    """S2."""
    members = _dictionary(value, "Content-Digest")
    if not members:
        _fail("Content-Digest: empty")
    for algorithm, member in members.items():
        expected = _byte_sequence(member, f"Content-Digest {algorithm}")
        if algorithm not in _DIGESTS:
            _fail(f"Content-Digest: algorithm {algorithm!r} is not accepted")
        if not hmac.compare_digest(expected, hashlib.new(_DIGESTS[algorithm], body).digest()):
            _fail(f"Content-Digest: {algorithm} does not match the body")


def _select_entry(value: str) -> tuple[str, tuple[list[ItemType], ParamsType]]:
    """S3."""
    entries = _dictionary(value, "Signature-Input")
    if len(entries) != 1:
        _fail(f"Signature-Input: {len(entries)} entries, expected exactly one")
    ((label, entry),) = entries.items()
    if not isinstance(entry, tuple) or not isinstance(entry[0], list):
        _fail("Signature-Input: the entry is not an inner list")
    return label, entry


def _check_components(items: list[ItemType]) -> None:
    """S4. An item that is not a bare string becomes None, so the comparison fails."""
    names = tuple(
        item[0] if isinstance(item, tuple) and type(item[0]) is str and not item[1] else None
        for item in items
    )
    if names != COVERED_COMPONENTS:
        _fail(f"Signature-Input: covered components {names!r}")


def _check_params(params: ParamsType) -> tuple[int, int, str, str]:
    """S5. ``type(...) is`` on purpose: a boolean is an int and a Token is no str."""
    unknown = params.keys() - _PARAMETERS
    if unknown:
        _fail(f"Signature-Input: unknown parameters {sorted(unknown)}")
    if _string(params, "tag") != SIGNATURE_TAG:
        _fail("Signature-Input: wrong tag")
    if "alg" in params and _string(params, "alg") != _ALGORITHM:
        _fail("Signature-Input: alg other than ed25519")
    return (
        _integer(params, "created"),
        _integer(params, "expires"),
        _string(params, "nonce"),
        _string(params, "keyid"),
    )


def _integer(params: ParamsType, name: str) -> int:
    value = params.get(name)
    if type(value) is not int:
        _fail(f"Signature-Input: {name} missing or not an integer")
    return value


def _string(params: ParamsType, name: str) -> str:
    value = params.get(name)
    if type(value) is not str:
        _fail(f"Signature-Input: {name} missing or not a string")
    return value


def _check_window(created: int, expires: int, now: float) -> None:
    """S6. expires must be strictly after created: an empty window is valid at no
    instant worth signing for, and it would hand the replay cache a nonce to forget
    at once."""
    if expires <= created:
        _fail("window: expires is not after created")
    if expires - created > MAX_WINDOW:
        _fail(f"window: longer than {MAX_WINDOW} s")
    if created > now + MAX_CLOCK_SKEW:
        _fail("window: created is in the future")
    if expires < now - MAX_CLOCK_SKEW:
        _fail("window: expired")


def _public_key(keyid: str) -> bytes:
    """S8. libsodium's is_valid_point refuses small-order points (the all-zero key, the
    identity and the other six), non-canonical encodings and points outside the
    prime-order subgroup. VerifyKey would take any 32 bytes, so ask explicitly."""
    try:
        public_key = decode_keyid(keyid)
    except ValueError as exc:
        _fail(f"keyid: {exc}")
    if not nacl.bindings.crypto_core_ed25519_is_valid_point(public_key):
        _fail("keyid: not a valid prime-order ed25519 public key")
    return public_key


def _signature(value: str, label: str) -> bytes:
    """S9, the field: one member, named like the Signature-Input entry."""
    members = _dictionary(value, "Signature")
    if list(members) != [label]:
        _fail(f"Signature: labels {list(members)!r}, expected [{label!r}]")
    signature = _byte_sequence(members[label], "Signature")
    if len(signature) != SIGNATURE_BYTES:
        _fail(f"Signature: {len(signature)} bytes, expected {SIGNATURE_BYTES}")
    return signature


def _base(req: SignedRequest, digest: str, params: str) -> bytes:
    try:
        return signature_base(req.method, req.authority, req.path, req.query, digest, params)
    except ValueError as exc:
        _fail(f"request: {exc}")


def _check_signature(public_key: bytes, base: bytes, signature: bytes) -> None:
    """S9, the math."""
    try:
        nacl.signing.VerifyKey(public_key).verify(base, signature)
    except nacl.exceptions.BadSignatureError:
        _fail("Signature: does not verify")


def _base_value(value: str) -> str:
    if not _BASE_VALUE.fullmatch(value):
        raise ValueError("a signature base value must be printable ASCII on one line")
    return value
