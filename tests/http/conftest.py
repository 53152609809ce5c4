"""Fixtures for the HTTP suite: the app over an in-memory deployment, wrapped with a
fault plan and a call log, and a small client that signs like a real one.

Everything is deterministic: the clock is a ManualClock shared by the deployment and
the signers, room ids come from a counter, nonces from another counter.
"""

from __future__ import annotations

import itertools
import json as jsonlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from quart.typing import TestClientProtocol
from werkzeug.datastructures import Headers

from roomkeeper.adapters.faults import CallLog, Faults, wrap_deployment
from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import ManualClock, memory_deployment
from roomkeeper.client.signer import RequestSigner
from roomkeeper.ports import Deployment

AUTHORITY = "roomkeeper.test"
#: Port operations that change what is stored; bad input must cause none of them (R11).
WRITES = frozenset({
    "rooms.put", "rooms.delete", "streams.ensure", "streams.delete", "streams.publish",
    "streams.delete_message", "bus.publish",
})


def counter_entropy() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def counter_nonces(prefix: str) -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):024d}"


@dataclass
class Reply:
    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("Content-Type") == "application/json", self.headers
        return jsonlib.loads(self.body)

    @property
    def error(self) -> str:
        body = self.json()
        assert set(body) == {"error", "message"}, body
        return str(body["error"])


class ApiClient:
    """Signed requests through the Quart test client (no sockets)."""

    def __init__(self, client: TestClientProtocol, deployment: Deployment,
                 signers: dict[str, RequestSigner]) -> None:
        self.client = client
        self.deployment = deployment
        self.signers = signers

    def keyid(self, who: str) -> str:
        return self.signers[who].keyid

    async def raw(self, method: str, target: str, *, body: bytes = b"",
                  headers: Headers | dict[str, str] | None = None,
                  scope_base: dict[str, Any] | None = None) -> Reply:
        """Exactly these headers and bytes; ``target`` is path?query as sent."""
        response = await self.client.open(
            target, method=method, data=body, headers=Headers(headers or {}),
            scope_base=scope_base,
        )
        reply = Reply(response.status_code, response.headers, await response.get_data())
        # A 5xx other than 503 is a bug (API.md), whatever the test is about.
        assert reply.status < 500 or reply.status == 503, reply
        return reply

    def sign(self, who: str, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        path, _, query = target.partition("?")
        return self.signers[who].sign(method, AUTHORITY, path, query, body)

    async def call(self, method: str, target: str, *, as_: str = "alice", body: bytes = b"",
                   json: Any = None, headers: dict[str, str] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        all_headers.update(self.sign(as_, method, target, body))
        return await self.raw(method, target, body=body, headers=all_headers)

    async def create_room(self, name: str = "general", *, as_: str = "alice",
                          **fields: Any) -> dict[str, Any]:
        reply = await self.call("POST", "/rooms", as_=as_, json={"name": name, **fields})
        assert reply.status == 201, reply
        room: dict[str, Any] = reply.json()
        return room

    async def history(self, room_id: str, query: str = "", *, as_: str = "alice") -> Reply:
        target = f"/rooms/{room_id}/history" + (f"?{query}" if query else "")
        return await self.call("GET", target, as_=as_)

    async def snapshot(self) -> object:
        """What is stored, as every caller sees it: their rooms and each room's history."""
        state = {}
        for who in self.signers:
            rooms = (await self.call("GET", "/rooms", as_=who)).json()["rooms"]
            pages = [(await self.history(r["id"], as_=who)).json() for r in rooms]
            state[who] = (rooms, pages)
        return state


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def calls() -> CallLog:
    return CallLog()


@pytest.fixture
def jetstream() -> bool:
    """Override with ``@pytest.mark.parametrize("jetstream", [False])`` for R2 tests."""
    return True


@pytest.fixture
def deployment(clock: ManualClock, faults: Faults, calls: CallLog, jetstream: bool) -> Deployment:
    inner = memory_deployment(jetstream=jetstream, clock=clock, entropy=counter_entropy())
    return wrap_deployment(inner, faults, calls)


@pytest.fixture
def signers(clock: ManualClock) -> dict[str, RequestSigner]:
    return {
        who: RequestSigner(bytes([index]) * 32, authority=AUTHORITY, clock=clock,
                           nonce=counter_nonces(who))
        for index, who in enumerate(("alice", "bob", "carol"), start=1)
    }


@pytest.fixture
async def api(deployment: Deployment,
              signers: dict[str, RequestSigner]) -> AsyncIterator[ApiClient]:
    app = create_app(deployment, public_authority=AUTHORITY)
    async with app.test_app() as test_app:
        yield ApiClient(test_app.test_client(), deployment, signers)


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A 500 is always a bug: fail any test during which the app logged one."""
    yield
    errors = [r for r in caplog.records
              if r.name == "roomkeeper.http" and r.levelname == "ERROR"]
    assert not errors, [r.getMessage() for r in errors]
