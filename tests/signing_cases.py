"""Bad signing inputs, shared by the core tests and the HTTP tests.

Plain data and functions, no test framework: ``make_valid_case()`` builds a correctly
signed request, and every entry of ``BAD_CASES`` is ``(name, mutate)`` where ``mutate``
turns such a request into one that must be refused with ``EXPECTED_STATUS`` (401).

Where the mutation changes something the signature covers (a parameter, the component
list, the keyid, the digest header), the case is signed again over its own signature
base, so the check under test is the only one that fails. The small-order key cases go
further: their signatures are forged to verify under a plain cofactorless ed25519
verifier, so only the explicit key check can catch them.

How to replay a case over HTTP: send ``case.method`` to ``case.target`` with exactly
``case.headers`` (a list: repeated names are repeated field lines) and ``case.body``, to
a server whose public authority is ``case.authority`` and whose clock reads the ``now``
the case was made for (or a few seconds later). ``REPLAY_CASES`` hold what only the
HTTP layer can check: send the request once (accepted), then again (401).

Quart's test client rebuilds ``raw_path`` from the *decoded* path, which would undo the
``%2F`` and ``%41``-style cases; give it the wire bytes with
``scope_base={"raw_path": case.path.encode("latin-1")}``. Replayed that way against
``create_app`` (with and without a public authority), every case gets 401.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

import http_sf
import nacl.bindings
import nacl.signing
from http_sf import Token
from http_sf.types import ItemType, ParamsType

from roomkeeper.core import (
    MAX_CLOCK_SKEW,
    MAX_WINDOW,
    SignedRequest,
    content_digest,
    encode_keyid,
    sign_request,
)
from roomkeeper.core._signing import signature_base_for

__all__ = [
    "AUTHORITY",
    "BAD_CASES",
    "EXPECTED_STATUS",
    "KEYID",
    "NOW",
    "OTHER_SEED",
    "REPLAY_CASES",
    "SEED",
    "SMALL_ORDER_KEYS",
    "Entry",
    "Mutation",
    "SignedCase",
    "entry_of",
    "make_valid_case",
    "resign",
]

#: RFC 9421 Appendix B.1.4, the key of API.md's vectors.
SEED = bytes.fromhex("9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5")
KEYID = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"
OTHER_SEED = hashlib.sha256(b"roomkeeper signing cases: another key").digest()
AUTHORITY = "chat.example"
#: The instant the cases are made for (also where ManualClock starts).
NOW = 1_733_300_000
LIFETIME = 60
EXPECTED_STATUS = 401

Entry = tuple[list[ItemType], ParamsType]
Mutation = Callable[["SignedCase"], "SignedCase"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
#: y of the order-8 points (RFC 7748 / libsodium's blocklist).
_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022


def _point(y: int, x_sign: int = 0) -> bytes:
    return (y | x_sign << 255).to_bytes(32, "little")


#: Every encoding of a point of order 1, 2, 4 or 8, canonical or not (y + p where that
#: still fits), with both signs of x: 14 keys, all of which must be refused.
SMALL_ORDER_KEYS = {
    f"{name}{'_neg' if sign else ''}": _point(y, sign)
    for name, y in (("zero", 0), ("identity", 1), ("order2", _P - 1), ("order8", _Y8),
                    ("order8_other", _P - _Y8), ("zero_noncanonical", _P),
                    ("identity_noncanonical", _P + 1))
    for sign in (0, 1)
}

_nonces = itertools.count(1)


def _next_nonce() -> str:
    return f"case-nonce-{next(_nonces):011d}"  # 22 characters, the minimum


@dataclass(frozen=True)
class SignedCase:
    """A request as it goes on the wire, plus what signed it (to sign variants)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    authority: str = AUTHORITY
    seed: bytes = field(default=SEED, repr=False)

    @property
    def target(self) -> str:
        return self.path + (f"?{self.query}" if self.query else "")

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def value(self, name: str) -> str:
        (only,) = self.values(name)
        return only

    def with_header(self, name: str, *values: str) -> SignedCase:
        """Every line of ``name`` replaced by ``values`` (none: the header is removed)."""
        kept = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        return replace(self, headers=kept + [(name.lower(), v) for v in values])

    def to_signed_request(self, authority: str | None = None) -> SignedRequest:
        """What the HTTP layer hands the core; the authority defaults to Host."""
        hosts = self.values("host")
        return SignedRequest(
            method=self.method,
            authority=authority if authority is not None else (hosts[0] if hosts else ""),
            path=self.path,
            query=self.query,
            body=self.body,
            content_digest=tuple(self.values("content-digest")),
            signature_input=tuple(self.values("signature-input")),
            signature=tuple(self.values("signature")),
        )


def make_valid_case(
    method: str = "GET",
    path: str = "/rooms/r1/history",
    query: str = "limit=50",
    body: bytes = b"",
    *,
    now: float = NOW,
    nonce: str | None = None,
    seed: bytes = SEED,
    authority: str = AUTHORITY,
    extra_headers: list[tuple[str, str]] | None = None,
) -> SignedCase:
    """A request signed by the project's signer, valid at ``now`` (created = now)."""
    created = int(now)
    signed = sign_request(seed, method, authority, path, query, body, created=created,
                          expires=created + LIFETIME, nonce=nonce or _next_nonce())
    headers = [("host", authority), *(extra_headers or [])]
    headers += [(name.lower(), value) for name, value in signed.items()]
    return SignedCase(method, path, query, headers, body, authority, seed)


# --- signing variants ------------------------------------------------------------


def entry_of(case: SignedCase) -> tuple[str, Entry]:
    """The (label, entry) of the case's one Signature-Input entry, as mutable copies."""
    parsed = http_sf.parse(case.value("signature-input").encode(), tltype="dictionary")
    ((label, (items, params)),) = parsed.items()
    assert isinstance(items, list)
    return label, ([*items], dict(params))


def _component_value(case: SignedCase, name: str, authority: str) -> str:
    derived = {"@method": case.method, "@authority": authority.lower(), "@path": case.path,
               "@query": "?" + case.query}
    if name.lower() in derived:  # "@Method" gets the method, so only its name is wrong
        return derived[name.lower()]
    return ", ".join(case.values(name))


def signature_for(case: SignedCase, entry: Entry, *, seed: bytes | None = None,
                  authority: str | None = None) -> bytes:
    """The ed25519 signature over the base that ``entry`` describes for this request."""
    base = _base(case, entry, authority or case.authority)
    return nacl.signing.SigningKey(seed or case.seed).sign(base).signature


def _base(case: SignedCase, entry: Entry, authority: str) -> bytes:
    names = [str(item[0] if isinstance(item, tuple) else item) for item in entry[0]]
    components = [(name, _component_value(case, name, authority)) for name in names]
    return signature_base_for(components, http_sf.ser([entry]))


def resign(case: SignedCase, entry: Entry, *, label: str = "sig1", seed: bytes | None = None,
           authority: str | None = None, signature: bytes | None = None) -> SignedCase:
    """The case with one Signature-Input entry and its Signature (by default, a real
    signature over the entry's own base)."""
    if signature is None:
        signature = signature_for(case, entry, seed=seed, authority=authority)
    return (case.with_header("signature-input", http_sf.ser({label: entry}))
            .with_header("signature", http_sf.ser({label: (signature, {})})))


def _params(change: Callable[[ParamsType], object]) -> Mutation:
    """Change the parameters, then sign the result properly."""
    def mutate(case: SignedCase) -> SignedCase:
        label, (items, params) = entry_of(case)
        change(params)
        return resign(case, (items, params), label=label)
    return mutate


def _components(change: Callable[[list[ItemType]], list[ItemType]]) -> Mutation:
    def mutate(case: SignedCase) -> SignedCase:
        label, (items, params) = entry_of(case)
        return resign(case, (change(items), params), label=label)
    return mutate


def _keyid(keyid: str) -> Mutation:
    """The signer's own signature, over a base that claims ``keyid``."""
    return _params(lambda p: p.update(keyid=keyid))


def _resigned(*, seed: bytes | None = None, authority: str | None = None) -> Mutation:
    """The same entry, signed by another key or for another authority."""
    def mutate(case: SignedCase) -> SignedCase:
        label, entry = entry_of(case)
        return resign(case, entry, label=label, seed=seed, authority=authority)
    return mutate


def _shift_window(created: int, expires: int) -> Mutation:
    """created and expires moved by these many seconds from the valid case's created."""
    def change(params: ParamsType) -> None:
        base = params["created"]
        assert isinstance(base, int)
        params.update(created=base + created, expires=base + expires)
    return _params(change)


def _two_entries(second_tag: str, second_label: str = "sig2") -> Mutation:
    """A second, properly signed entry next to the first, in the same field lines."""
    def mutate(case: SignedCase) -> SignedCase:
        label, first = entry_of(case)
        second: Entry = ([*first[0]], {**first[1], "nonce": _next_nonce(), "tag": second_tag})
        entries = {label: first, second_label: second}
        signatures = {name: (signature_for(case, e), {}) for name, e in entries.items()}
        return (case.with_header("signature-input", http_sf.ser(entries))
                .with_header("signature", http_sf.ser(signatures)))
    return mutate


# --- forged signatures for keys that are not in the prime-order group --------------


def forge_for_key(case: SignedCase, public_key: bytes, seed: bytes | None = None) -> SignedCase:
    """The case claiming ``public_key``, with a signature that a cofactorless verifier
    without a key check accepts: R = rB and s = r + h·a for a nonce r whose
    h = H(R || A || base) is a multiple of 8, so h·T vanishes for the torsion part T of
    A. With ``seed`` the key is A = aB + T (mixed order); without, A = T (small order)."""
    label, (items, params) = entry_of(case)
    params["keyid"] = encode_keyid(public_key)
    entry: Entry = (items, params)
    base = _base(case, entry, case.authority)
    secret = _secret_scalar(seed) if seed is not None else 0
    for counter in itertools.count():
        r = _scalar(hashlib.sha512(b"forge" + counter.to_bytes(8, "little")).digest())
        big_r = nacl.bindings.crypto_scalarmult_ed25519_base_noclamp(r.to_bytes(32, "little"))
        h = _scalar(hashlib.sha512(big_r + public_key + base).digest())
        if h % 8 == 0:
            s = (r + h * secret) % _L
            return resign(case, entry, label=label, signature=big_r + s.to_bytes(32, "little"))
    raise AssertionError("unreachable")  # pragma: no cover


def mixed_order_key(seed: bytes) -> bytes:
    """aB + T8: the key of ``seed`` plus a point of order 8."""
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return nacl.bindings.crypto_core_ed25519_add(public, SMALL_ORDER_KEYS["order8"])


def _scalar(digest: bytes) -> int:
    return int.from_bytes(digest, "little") % _L


def _secret_scalar(seed: bytes) -> int:
    """The clamped ed25519 secret scalar a of ``seed`` (RFC 8032 5.1.5)."""
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def _small_order(name: str) -> Mutation:
    return lambda case: forge_for_key(case, SMALL_ORDER_KEYS[name])


# --- simple header and request edits ---------------------------------------------


def _drop(*names: str) -> Mutation:
    def mutate(case: SignedCase) -> SignedCase:
        for name in names:
            case = case.with_header(name)
        return case
    return mutate


def _set(name: str, value: Callable[[str], str]) -> Mutation:
    """Replace the header's one value by a function of it, without signing again."""
    return lambda case: case.with_header(name, value(case.value(name)))


def _twice(name: str) -> Mutation:
    return lambda case: case.with_header(name, case.value(name), case.value(name))


def _signature_bytes(change: Callable[[bytes], bytes]) -> Mutation:
    def mutate(case: SignedCase) -> SignedCase:
        label, member = next(iter(http_sf.parse(case.value("signature").encode(),
                                                tltype="dictionary").items()))
        assert isinstance(member, tuple) and isinstance(member[0], bytes)
        return case.with_header("signature", http_sf.ser({label: (change(member[0]), {})}))
    return mutate


def _digest_then_sign(value: Callable[[SignedCase], str]) -> Mutation:
    """A different Content-Digest, covered by a fresh signature: only S2 can fail."""
    def mutate(case: SignedCase) -> SignedCase:
        changed = case.with_header("content-digest", value(case))
        label, entry = entry_of(changed)
        return resign(changed, entry, label=label)
    return mutate


def _md5(case: SignedCase) -> str:
    return http_sf.ser({"md5": (hashlib.md5(case.body).digest(), {})})


def _pct_encode_letter(path: str) -> str:
    """The first letter of the last segment percent-encoded (like %41 for 'A')."""
    head, _, last = path.rpartition("/")
    return f"{head}/%{ord(last[0]):02X}{last[1:]}"


def _pct_encode_slash(path: str, instead: str = "%2F") -> str:
    """The second '/' as %2F (or ``instead``): "/rooms%2Fr1/history"."""
    head, _, rest = path[1:].partition("/")
    return f"/{head}{instead}{rest}"


def _unpadded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _swap(items: list[ItemType], i: int, j: int) -> list[ItemType]:
    items[i], items[j] = items[j], items[i]
    return items


_KEYID_RAW = base64.urlsafe_b64decode(KEYID + "=")
_ALIASED_KEYID = KEYID[:-1] + "t"  # 's' and 't' differ only in the 2 unused low bits
_DATE = datetime.fromtimestamp(NOW, UTC)


BAD_CASES: list[tuple[str, Mutation]] = [
    # S1: missing and repeated field lines
    ("missing_content_digest", _drop("content-digest")),
    ("missing_signature_input", _drop("signature-input")),
    ("missing_signature", _drop("signature")),
    ("missing_all_signature_headers", _drop("content-digest", "signature-input", "signature")),
    ("duplicate_content_digest_line", _twice("content-digest")),
    ("duplicate_signature_input_line", _twice("signature-input")),
    ("duplicate_signature_line", _twice("signature")),
    ("duplicate_all_lines", lambda c: _twice("signature")(_twice("signature-input")(
        _twice("content-digest")(c)))),
    # S2: the digest
    ("changed_body_old_digest", lambda c: replace(c, body=c.body + b"x")),
    ("changed_body_new_digest", lambda c: replace(c, body=c.body + b"x").with_header(
        "content-digest", content_digest(c.body + b"x"))),
    ("digest_md5_only", _digest_then_sign(_md5)),
    ("digest_md5_and_sha256", _digest_then_sign(
        lambda c: f"{_md5(c)}, {c.value('content-digest')}")),
    ("digest_sha512_of_other_body", _digest_then_sign(lambda c: content_digest(b"x", "sha-512"))),
    ("digest_empty", _digest_then_sign(lambda c: "")),
    ("digest_as_string", _digest_then_sign(lambda c: 'sha-256="' + c.value(
        "content-digest").split(":")[1] + '"')),
    ("digest_with_parameter", _digest_then_sign(lambda c: c.value("content-digest") + ";q=1")),
    ("digest_repeated_key", _digest_then_sign(
        lambda c: f"{c.value('content-digest')}, {c.value('content-digest')}")),
    ("digest_bad_base64", _digest_then_sign(lambda c: "sha-256=:!" + c.value(
        "content-digest")[10:])),
    # S3: entries and labels
    ("label_mismatch", _set("signature", lambda v: "sig2" + v.removeprefix("sig1"))),
    ("duplicate_label_in_signature_input", _set("signature-input", lambda v: f"{v}, {v}")),
    ("duplicate_label_in_signature", _set("signature", lambda v: f"{v}, {v}")),
    ("two_tagged_entries", _two_entries("roomkeeper-v1")),
    ("second_entry_other_tag", _two_entries("another-app")),
    ("signature_extra_label", _set("signature", lambda v: f"{v}, sig2=:AAAA:")),
    ("entry_not_inner_list", _set("signature-input", lambda v: 'sig1="@method"' + v[v.index(
        ")") + 1:])),
    ("signature_input_not_a_dictionary", _set("signature-input", lambda v: v.replace("=", " ", 1))),
    ("signature_input_not_ascii", _set("signature-input", lambda v: v.replace("sig1", "sïg1"))),
    # S4: components
    ("component_missing", _components(lambda items: items[:4])),
    ("component_query_missing", _components(lambda items: items[:3] + items[4:])),
    ("components_reordered", _components(lambda items: _swap(items, 2, 3))),
    ("component_duplicated", _components(lambda items: [items[0], *items])),
    ("component_uppercase_method", _components(lambda items: [("@Method", {}), *items[1:]])),
    ("component_extra_date", lambda c: _components(lambda items: [*items, ("date", {})])(
        c.with_header("date", "Tue, 20 Apr 2021 02:07:55 GMT"))),
    ("component_with_parameter", _components(lambda items: [*items[:4], ("content-digest",
                                                                          {"sf": True})])),
    ("component_as_token", _components(lambda items: [*items[:4], (Token("content-digest"),
                                                                    {})])),
    ("components_empty", _components(lambda items: [])),
    # S5: parameters
    ("unknown_parameter", _params(lambda p: p.update(foo="bar"))),
    ("alg_hmac_sha256", _params(lambda p: p.update(alg="hmac-sha256"))),
    ("alg_as_token", _params(lambda p: p.update(alg=Token("ed25519")))),
    ("missing_created", _params(lambda p: p.pop("created"))),
    ("missing_expires", _params(lambda p: p.pop("expires"))),
    ("missing_nonce", _params(lambda p: p.pop("nonce"))),
    ("missing_keyid", _params(lambda p: p.pop("keyid"))),
    ("missing_tag", _params(lambda p: p.pop("tag"))),
    ("wrong_tag", _params(lambda p: p.update(tag="roomkeeper-v2"))),
    ("created_as_string", _params(lambda p: p.update(created=str(p["created"])))),
    ("created_as_boolean", _params(lambda p: p.update(created=True))),
    ("created_as_date", _params(lambda p: p.update(created=_DATE))),
    ("expires_as_decimal", _params(lambda p: p.update(expires=Decimal(f"{p['expires']}.0")))),
    ("nonce_as_token", _params(lambda p: p.update(nonce=Token(str(p["nonce"]))))),
    ("keyid_as_token", _params(lambda p: p.update(keyid=Token(str(p["keyid"]))))),
    ("keyid_as_bytes", _params(lambda p: p.update(keyid=_KEYID_RAW))),
    ("tag_as_token", _params(lambda p: p.update(tag=Token("roomkeeper-v1")))),
    ("duplicate_parameter", _set("signature-input", lambda v: v + ";tag=\"roomkeeper-v1\"")),
    # S6: the window, relative to the valid case's created (= now)
    ("created_in_future", _shift_window(MAX_CLOCK_SKEW + 1, MAX_CLOCK_SKEW + 1 + LIFETIME)),
    ("expired", _shift_window(-MAX_CLOCK_SKEW - 1 - LIFETIME, -MAX_CLOCK_SKEW - 1)),
    ("window_over_300", _shift_window(0, MAX_WINDOW + 1)),
    ("expires_equals_created", _shift_window(0, 0)),
    ("expires_before_created", _shift_window(0, -1)),
    # S7: nonce shape
    ("nonce_too_short", _params(lambda p: p.update(nonce="n" * 21))),
    ("nonce_too_long", _params(lambda p: p.update(nonce="n" * 129))),
    ("nonce_bad_characters", _params(lambda p: p.update(nonce="nonce/with+base64/chars="))),
    ("nonce_empty", _params(lambda p: p.update(nonce=""))),
    # S8: keys
    ("unknown_key", _resigned(seed=OTHER_SEED)),
    ("keyid_padded", _keyid(KEYID + "=")),
    ("keyid_aliased", _keyid(_ALIASED_KEYID)),
    ("keyid_31_bytes", _keyid(_unpadded(_KEYID_RAW[:31]))),
    ("keyid_33_bytes", _keyid(_unpadded(_KEYID_RAW + b"\0"))),
    ("keyid_standard_alphabet", _keyid(KEYID.replace("_", "/").replace("-", "+"))),
    ("keyid_not_a_point", _keyid(encode_keyid(_point(2)))),
    ("key_all_zero", _small_order("zero")),
    ("key_identity", _small_order("identity")),
    ("key_order_2", _small_order("order2")),
    ("key_order_8", _small_order("order8")),
    ("key_mixed_order", lambda c: forge_for_key(c, mixed_order_key(c.seed), seed=c.seed)),
    # S9: the signature field and the math
    ("signature_63_bytes", _signature_bytes(lambda s: s[:63])),
    ("signature_65_bytes", _signature_bytes(lambda s: s + b"\0")),
    ("signature_bit_flipped", _signature_bytes(lambda s: bytes([s[0] ^ 1]) + s[1:])),
    ("signature_bad_base64", _set("signature", lambda v: v.replace(":", ":!", 1))),
    ("signature_bad_padding", _set("signature", lambda v: v[:-1] + "=:")),
    ("signature_unterminated", _set("signature", lambda v: v[:-1])),
    ("signature_as_string", _set("signature", lambda v: 'sig1="' + v[6:-1] + '"')),
    ("signature_as_integer", _set("signature", lambda v: "sig1=1")),
    ("signature_with_parameter", _set("signature", lambda v: v + ";x=1")),
    ("signature_as_inner_list", _set("signature", lambda v: f"sig1=({v[5:]})")),
    # The request the signature covers, changed after signing
    ("changed_method", lambda c: replace(c, method="POST" if c.method != "POST" else "PUT")),
    ("method_lowercase", lambda c: replace(c, method=c.method.lower())),
    ("signed_for_other_authority", _resigned(authority="other.example")),
    ("changed_path", lambda c: replace(c, path=c.path + "x")),
    ("path_pct_2F", lambda c: replace(c, path=_pct_encode_slash(c.path))),
    ("path_pct_encoded_letter", lambda c: replace(c, path=_pct_encode_letter(c.path))),
    ("path_trailing_slash", lambda c: replace(c, path=c.path + "/")),
    ("path_double_slash", lambda c: replace(c, path=_pct_encode_slash(c.path, "//"))),
    ("changed_query", lambda c: replace(c, query=c.query + "0")),
    ("query_added_parameter", lambda c: replace(c, query=c.query + "&after=1")),
    ("query_dropped_or_added", lambda c: replace(c, query="" if c.query else "limit=1")),
    ("query_pct_encoded", lambda c: replace(c, query=c.query.replace("=", "%3D", 1)
                                            if "=" in c.query else "%3D")),
]

#: Checks only the HTTP layer can make (the core does not remember nonces). Send the
#: mutated request twice: the first is accepted, the second gets EXPECTED_STATUS.
REPLAY_CASES: list[tuple[str, Mutation]] = [
    ("replayed_nonce", lambda c: c),
]
