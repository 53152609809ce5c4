"""What the SDK raises when the server says no, or cannot be reached.

Every error the server sends is JSON ``{"error": code, "message": text}`` with a status
(API.md). ``ApiError`` carries both; its subclasses also derive from the matching core
error, so ``except roomkeeper.core.NotFound`` catches a 404 from the server too.
Branch on the type or on ``code``, never on the message.
"""

from __future__ import annotations

import json

import httpx

from roomkeeper.core import (
    BackendUnavailable,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RoomkeeperError,
    Unauthorized,
)

__all__ = [
    "ApiError",
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ServerUnreachable",
    "ServiceUnavailableError",
    "UnauthorizedError",
    "UnexpectedResponse",
    "describe",
    "error_from_response",
]


class ApiError(RoomkeeperError):
    """The server answered with an error. ``code`` is the server's machine-readable
    ``error``, ``status`` the HTTP status."""

    def __init__(self, message: str, *, code: str, status: int) -> None:
        super().__init__(message, code=code)
        self.status = status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r})"


class BadRequestError(ApiError, BadRequest):
    pass


class UnauthorizedError(ApiError, Unauthorized):
    """The signature was refused. The server never says why: check the identity, the
    clock (a few seconds of skew is fine, a minute is not) and the server URL."""


class ForbiddenError(ApiError, Forbidden):
    pass


class NotFoundError(ApiError, NotFound):
    pass


class ConflictError(ApiError, Conflict):
    pass


class PayloadTooLargeError(ApiError, PayloadTooLarge):
    pass


class ServiceUnavailableError(ApiError, BackendUnavailable):
    """A backend behind the server did not answer; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, code: str, status: int, retry_after: int) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class UnexpectedResponse(RoomkeeperError):
    """The server answered with something that is not roomkeeper's API: usually the URL
    points at another service, or a proxy in between rewrote the answer."""

    code = "unexpected_response"


class ServerUnreachable(RoomkeeperError, ConnectionError):
    """No connection to ``url`` (HTTP server or NATS): refused, timed out or lost."""

    code = "server_unreachable"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach {url}: {reason}")
        self.url = url
        self.reason = reason


def describe(exc: BaseException) -> str:
    """One line naming the exception's type as well as its text: the messages of nats-py
    ("nats: timeout") and httpx (often empty: ``ConnectError()``) say little alone."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
}

#: API.md always sends Retry-After with a 503; this covers a proxy's 503 without one.
DEFAULT_RETRY_AFTER = 1


def error_from_response(response: httpx.Response) -> ApiError:
    """The typed error for a 4xx/5xx answer."""
    code, message = _error_body(response)
    status = response.status_code
    if status == 503:
        return ServiceUnavailableError(message, code=code, status=status,
                                       retry_after=_retry_after(response))
    cls = _BY_STATUS.get(status, ApiError)
    return cls(message, code=code, status=status)


def _error_body(response: httpx.Response) -> tuple[str, str]:
    """(code, message) from the JSON error body; made up from the status when the body
    is not one (an error page from a proxy, say)."""
    fallback = (f"http_{response.status_code}",
                f"HTTP {response.status_code} {response.reason_phrase}".strip())
    try:
        body = json.loads(response.content)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return fallback
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return fallback
    message = body.get("message")
    return body["error"], message if isinstance(message, str) else fallback[1]


def _retry_after(response: httpx.Response) -> int:
    value = response.headers.get("Retry-After", "")
    # An HTTP-date is allowed too, but roomkeeper sends seconds; anything else: default.
    return int(value) if value.isascii() and value.isdigit() else DEFAULT_RETRY_AFTER
