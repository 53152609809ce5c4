"""The app around the endpoints: health, readiness, OpenAPI, CORS, the lifespan, the
access log and the last-resort 500."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from openapi_spec_validator import validate

from roomkeeper.adapters.faults import Faults
from roomkeeper.adapters.http import create_app, openapi_document
from roomkeeper.client.signer import RequestSigner
from roomkeeper.ports import Deployment

from .conftest import AUTHORITY, ApiClient


async def test_healthz_answers_unsigned(api: ApiClient) -> None:
    reply = await api.raw("GET", "/healthz")

    assert (reply.status, reply.json()) == (200, {"status": "ok"})


async def test_readyz_follows_the_backends(api: ApiClient, faults: Faults) -> None:
    ready = await api.raw("GET", "/readyz")
    faults.fail("check_ready")
    down = await api.raw("GET", "/readyz")

    assert (ready.status, ready.json()) == (200, {"status": "ready"})
    assert (down.status, down.error) == (503, "backend_unavailable")
    assert down.headers["Retry-After"] == "1"


async def test_openapi_is_served_unsigned_and_valid(api: ApiClient) -> None:
    reply = await api.raw("GET", "/openapi.json")

    document = reply.json()
    validate(document)
    assert document == openapi_document()


def test_openapi_describes_every_route(deployment: Deployment) -> None:
    document = openapi_document()
    app = create_app(deployment)
    routes = {
        (rule.rule.replace("<", "{").replace(">", "}").replace("{member}", "{keyid}"), method)
        for rule in app.url_map.iter_rules() if rule.endpoint != "static"
        for method in rule.methods or () if method not in ("HEAD", "OPTIONS")
    }
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item if method != "parameters"
    }
    assert documented == routes


async def test_cors_preflight_needs_no_signature(api: ApiClient) -> None:
    headers = {"Origin": "https://chat.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "signature, signature-input, content-digest"}

    reply = await api.raw("OPTIONS", "/rooms/abcdefghijklmnopqrstuvwxyz/history",
                          headers=headers)

    assert (reply.status, reply.body) == (204, b"")
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert {"GET", "POST", "DELETE"} <= set(
        reply.headers["Access-Control-Allow-Methods"].split(", "))
    allowed = {h.lower() for h in reply.headers["Access-Control-Allow-Headers"].split(", ")}
    assert {"signature", "signature-input", "content-digest", "content-type"} <= allowed


async def test_preflight_for_an_unknown_path_is_404(api: ApiClient) -> None:
    reply = await api.raw("OPTIONS", "/nowhere")

    assert (reply.status, reply.error) == (404, "not_found")


async def test_every_response_lets_browsers_read_it(api: ApiClient) -> None:
    for reply in (await api.call("GET", "/rooms"), await api.raw("GET", "/rooms")):
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        exposed = reply.headers["Access-Control-Expose-Headers"]
        assert {"Retry-After", "WWW-Authenticate"} <= set(exposed.split(", "))


async def test_one_log_line_per_request_without_bodies(
    api: ApiClient, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="roomkeeper.http")
    await api.call("POST", "/rooms", json={"name": "secret-room-name"})
    await api.raw("GET", "/rooms")

    lines = [r.getMessage() for r in caplog.records
             if r.name == "roomkeeper.http" and r.getMessage().startswith(("POST", "GET"))]
    assert len(lines) == 2
    method, path, status, duration, keyid = lines[0].split(" ")
    assert (method, path, status, keyid) == ("POST", "/rooms", "201", api.keyid("alice"))
    assert duration.endswith("ms")
    assert lines[1].startswith("GET /rooms 401 ")
    assert lines[1].endswith("ms -")
    assert not any("secret-room-name" in r.getMessage() for r in caplog.records)


async def test_lifespan_opens_before_serving_and_closes_after(deployment: Deployment) -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        events.append("open")
        yield
        events.append("close")

    app = create_app(dataclasses.replace(deployment, lifespan=lifespan))
    async with app.test_app() as test_app:
        assert events == ["open"]
        reply = await test_app.test_client().get("/healthz")
        assert reply.status_code == 200
    assert events == ["open", "close"]


async def test_an_unexpected_exception_is_a_logged_json_500(
    deployment: Deployment, signers: dict[str, RequestSigner],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The safety net for bugs: a port that raises something it must not."""

    async def broken(keyid: str) -> tuple[()]:
        raise ZeroDivisionError("a bug")

    deployment.rooms.list_by_member = broken  # type: ignore[method-assign]
    app = create_app(deployment, public_authority=AUTHORITY)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        headers = signers["alice"].sign("GET", AUTHORITY, "/rooms", "", b"")
        response = await client.get("/rooms", headers=headers)
        body = await response.get_json()

    assert response.status_code == 500
    assert body == {"error": "internal_error", "message": "an unexpected error occurred"}
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and errors[0].exc_info is not None
    caplog.clear()  # the autouse check would (rightly) fail this test otherwise
