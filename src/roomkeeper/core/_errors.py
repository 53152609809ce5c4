"""Typed errors. Every error carries a machine-readable code and the HTTP status it maps to.

Callers branch on the type or on ``code``, never on the message text.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "RevisionConflict",
    "RoomkeeperError",
    "Unauthorized",
]


class RoomkeeperError(Exception):
    """Base class: ``code`` is machine-readable, ``status`` is the HTTP status."""

    code: str = "error"
    status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, str]:
        return {"error": self.code, "message": self.message}


class BadRequest(RoomkeeperError):
    code = "bad_request"
    status = 400


class Unauthorized(RoomkeeperError):
    """Any authentication failure. The response body never says which check failed."""

    code = "unauthorized"
    status = 401


class Forbidden(RoomkeeperError):
    code = "forbidden"
    status = 403


class NotFound(RoomkeeperError):
    code = "not_found"
    status = 404


class Conflict(RoomkeeperError):
    code = "conflict"
    status = 409


class PayloadTooLarge(RoomkeeperError):
    code = "payload_too_large"
    status = 413


class BackendUnavailable(RoomkeeperError):
    """NATS, JetStream or KV did not answer. Maps to 503 with Retry-After."""

    code = "backend_unavailable"
    status = 503

    def __init__(self, message: str = "a backend did not answer", *, code: str | None = None,
                 retry_after: int = 1) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class RevisionConflict(RoomkeeperError):
    """A compare-and-set write lost a race. Machines reload and retry; a caller that
    still sees it after the retries gets 409."""

    code = "revision_conflict"
    status = 409
