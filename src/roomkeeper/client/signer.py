"""Request signing for clients: the three headers of API.md "Request signing", and an
``httpx.Auth`` that puts them on every request, sync or async.

The core builds and signs the signature base; this module only supplies what the core
must not touch: the real clock, fresh random nonces, and the request as httpx will put
it on the wire (the raw target, and the authority httpx writes into ``Host``).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Generator

import httpx
import nacl.signing

from roomkeeper.core import MAX_WINDOW, KeyId, encode_keyid, sign_request

from .keys import Identity

__all__ = ["DEFAULT_LIFETIME", "RequestSigner", "SignatureAuth", "authority_of", "new_nonce"]

#: Seconds from ``created`` to ``expires``. Short, because a signature is used once, at
#: once; the server's clock-skew allowance covers clocks that are a little off.
DEFAULT_LIFETIME = 60
#: 16 bytes = 128 bits, the minimum API.md asks for; base64url makes 22 characters.
_NONCE_BYTES = 16


def new_nonce() -> str:
    """A fresh url-safe nonce with 128 random bits."""
    return secrets.token_urlsafe(_NONCE_BYTES)


def authority_of(url: httpx.URL) -> str:
    """``host[:port]`` exactly as httpx writes it into the Host header: the IDNA form,
    lowercase, IPv6 literals in brackets, the scheme's default port left out."""
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


class RequestSigner:
    """Signs requests with one ed25519 key.

    ``authority`` is the server's public authority as it sees it (its
    ``--public-authority``, or the Host header clients send). Give it when signing
    paths without a host, or when a proxy rewrites Host. ``clock`` and ``nonce`` exist
    so tests can freeze what would otherwise be time and randomness.
    """

    def __init__(
        self,
        signing_key_or_seed: nacl.signing.SigningKey | Identity | bytes,
        *,
        authority: str | None = None,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = new_nonce,
        lifetime: int = DEFAULT_LIFETIME,
    ) -> None:
        if not 0 < lifetime <= MAX_WINDOW:
            raise ValueError(f"lifetime must be 1..{MAX_WINDOW} seconds")
        self._seed = _seed_of(signing_key_or_seed)
        self._keyid = encode_keyid(bytes(nacl.signing.SigningKey(self._seed).verify_key))
        self._authority = authority
        self._clock = clock
        self._nonce = nonce
        self._lifetime = lifetime

    @property
    def keyid(self) -> KeyId:
        return self._keyid

    @property
    def authority(self) -> str | None:
        return self._authority

    def headers(self, method: str, url_or_path_and_query: str, body: bytes = b"") -> dict[str, str]:
        """Content-Digest, Signature-Input and Signature for a request.

        ``url_or_path_and_query`` is an absolute URL (its host[:port] is the authority
        unless this signer has one) or a path with its query (then the signer needs an
        authority). It is read the way httpx sends it: percent-escapes are kept as they
        are, a fragment is dropped. The method is upper-cased, as httpx does.
        """
        url = httpx.URL(url_or_path_and_query)
        authority = self._authority
        if authority is None:
            if url.is_relative_url:
                raise ValueError("a path without a host needs a signer with an authority")
            authority = authority_of(url)
        path, query = _split_target(url)
        return self.sign(method.upper(), authority, path, query, body)

    def sign(
        self, method: str, authority: str, path: str, query: str, body: bytes
    ) -> dict[str, str]:
        """The headers for exact component values (``query`` without its '?')."""
        created = int(self._clock())
        return sign_request(
            self._seed, method, authority, path, query, body,
            created=created, expires=created + self._lifetime, nonce=self._nonce(),
        )


class SignatureAuth(httpx.Auth):
    """Signs every request an ``httpx.Client`` or ``httpx.AsyncClient`` sends, each
    with its own nonce.

    The authority is, in order: ``authority`` given here, the signer's own, or the
    request URL's host[:port]. ``@path`` and ``@query`` come from the raw target.

    httpx follows redirects *inside* one auth step, so a redirected request would carry
    the first request's signature and be refused. The roomkeeper API never redirects;
    leave ``follow_redirects`` off (httpx's default) with this auth.
    """

    #: The digest covers the body, so httpx must read it before the flow runs.
    requires_request_body = True

    def __init__(
        self,
        signer: RequestSigner | nacl.signing.SigningKey | Identity | bytes,
        *,
        authority: str | None = None,
    ) -> None:
        self._signer = signer if isinstance(signer, RequestSigner) else RequestSigner(signer)
        self._authority = authority

    @property
    def signer(self) -> RequestSigner:
        return self._signer

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        authority = self._authority or self._signer.authority or authority_of(request.url)
        path, query = _split_target(request.url)
        signed = self._signer.sign(request.method, authority, path, query, request.content)
        request.headers.update(signed)  # replaces any earlier signature headers
        yield request


def _split_target(url: httpx.URL) -> tuple[str, str]:
    """(path, query without '?') from the target as it goes on the wire."""
    path, _, query = url.raw_path.decode("ascii").partition("?")
    return path, query


def _seed_of(key: nacl.signing.SigningKey | Identity | bytes) -> bytes:
    if isinstance(key, Identity):
        return key.seed
    if isinstance(key, nacl.signing.SigningKey):
        return bytes(key)
    if len(key) != 32:
        raise ValueError("an ed25519 seed is 32 bytes")
    return bytes(key)
