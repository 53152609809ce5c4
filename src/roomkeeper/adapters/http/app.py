"""The app factory: middleware, error mapping, CORS and the access log.

``create_app(deployment)`` holds no global state: everything the handlers need is the
deployment passed in, so tests build as many independent apps as they like.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator

from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, NotFound

from ...core import RoomkeeperError, Unauthorized
from ...ports import Deployment
from ..driver import wiring_of
from .auth import PUBLIC_PATHS, authenticate, raw_target, read_body
from .responses import error_response, json_response, no_content
from .routes import Api, reject_unknown_query

__all__ = ["DEFAULT_MAX_BODY", "create_app"]

log = logging.getLogger("roomkeeper.http")

DEFAULT_MAX_BODY = 1024 * 1024

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
ALLOWED_HEADERS = "Signature, Signature-Input, Content-Digest, Content-Type"
EXPOSED_HEADERS = "Location, Retry-After, WWW-Authenticate, Allow"

#: werkzeug's own names, where API.md or the core already has a code for the status.
_HTTP_CODES = {413: "payload_too_large", 405: "method_not_allowed", 404: "not_found"}


def create_app(
    deployment: Deployment,
    *,
    public_authority: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> QuartTrio:
    app = QuartTrio("roomkeeper.adapters.http")
    # Quart enforces this on Content-Length up front and on the bytes as they arrive.
    app.config["MAX_CONTENT_LENGTH"] = max_body
    # No redirects ("//rooms" to "/rooms"): a redirect is not JSON, and a signature
    # covers the path as sent. Without trailing-slash rules, "/rooms/" is a plain 404.
    app.url_map.merge_slashes = False
    Api(deployment, wiring_of(deployment)).register(app)
    _add_lifespan(app, deployment)
    _add_middleware(app, deployment, public_authority, max_body)
    _add_error_handlers(app)
    return app


def _add_lifespan(app: QuartTrio, deployment: Deployment) -> None:
    @app.while_serving
    async def lifespan() -> AsyncGenerator[None, None]:
        # The backends open before the first request and drain after the last.
        if deployment.lifespan is None:
            yield
            return
        async with deployment.lifespan():
            yield


def _preflight() -> Response:
    """A CORS preflight: answered without a signature, since browsers never sign it."""
    if isinstance(request.routing_exception, NotFound):
        raise request.routing_exception
    response = no_content()
    response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    response.headers["Access-Control-Max-Age"] = "600"
    return response


def _add_middleware(
    app: QuartTrio, deployment: Deployment, public_authority: str | None, max_body: int
) -> None:
    @app.before_request
    async def guard() -> Response | None:
        # Runs before routing errors and handlers alike (R4): an unsigned request for a
        # missing room is 401, not 404.
        g.started = time.perf_counter()
        g.keyid = None
        if request.method == "OPTIONS":
            return _preflight()
        g.body = await read_body(request, max_body)
        if raw_target(request.scope)[0] not in PUBLIC_PATHS:
            g.keyid = await authenticate(request, g.body, deployment, public_authority)
            reject_unknown_query(request)
        return None

    @app.after_request
    async def finish(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        started: float = g.get("started", time.perf_counter())
        log.info(
            "%s %s %d %.1fms %s",
            request.method,
            request.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
            g.get("keyid") or "-",
        )
        return response


def _add_error_handlers(app: QuartTrio) -> None:
    @app.errorhandler(RoomkeeperError)
    async def core_error(error: RoomkeeperError) -> Response:
        if isinstance(error, Unauthorized):
            # The reason goes to the log only; the client gets the one fixed 401.
            log.info("unauthorized %s %s: %s", request.method, request.path, error.message)
        return error_response(error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _HTTP_CODES.get(status) or (error.name or "error").lower().replace(" ", "_")
        response = json_response({"error": code, "message": error.description or code}, status)
        for name, value in error.get_headers():
            if name.lower() == "allow":  # 405 says which methods the path takes
                response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        # A 500 is always a bug: log it with its traceback, answer without details.
        log.error("internal error on %s %s", request.method, request.path, exc_info=error)
        return json_response(
            {"error": "internal_error", "message": "an unexpected error occurred"}, 500
        )
