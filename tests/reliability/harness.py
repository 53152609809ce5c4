"""Shared pieces of the reliability suite: signed callers (in process or over a socket),
the R1 check, the exact errors the NATS adapter raises, bounded waits, and the figures
every test records.

Figures go to ``tests/reliability/results/<name>.json`` (git-ignored) and into the
pytest terminal summary (see conftest.py), so a CI log shows them without artifacts.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio
from quart.typing import TestClientProtocol
from werkzeug.datastructures import Headers

from roomkeeper.adapters.nats.errors import translate_errors
from roomkeeper.client.signer import RequestSigner, SignatureAuth
from roomkeeper.core import BackendUnavailable, KeyId, Mode, stream_name_for_room
from roomkeeper.ports import Deployment

AUTHORITY = "roomkeeper.test"
RESULTS_DIR = Path(__file__).parent / "results"

#: Every figure recorded in this process, for the terminal summary.
RECORDED: dict[str, dict[str, Any]] = {}


def record(name: str, **figures: Any) -> None:
    """Merge ``figures`` into results/<name>.json and the session summary."""
    merged = {**RECORDED.get(name, {}), **figures}
    RECORDED[name] = merged
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")


# --- signed calls ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def new_signer(seed: bytes | None = None) -> RequestSigner:
    return RequestSigner(seed if seed is not None else os.urandom(32), authority=AUTHORITY)


class Caller:
    """Signed requests as one key through the app's test client (no socket)."""

    def __init__(self, client: TestClientProtocol, signer: RequestSigner | None = None) -> None:
        self.client = client
        self.signer = signer or new_signer()

    @property
    def keyid(self) -> KeyId:
        return self.signer.keyid

    def headers(self, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        path, _, query = target.partition("?")
        return self.signer.sign(method, AUTHORITY, path, query, body)

    async def call(self, method: str, target: str, *, body: bytes = b"",
                   json_body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(self.headers(method, target, body))
        return await self.send(method, target, body, all_headers)

    async def send(self, method: str, target: str, body: bytes,
                   headers: dict[str, str]) -> Reply:
        response = await self.client.open(target, method=method, data=body,
                                          headers=Headers(headers))
        body = await response.get_data(as_text=False)
        reply = Reply(response.status_code, response.headers, body)
        # API.md: a 5xx other than 503 is a bug, whatever the test is about.
        assert reply.status < 500 or reply.status == 503, reply
        return reply

    async def create_room(self, name: str = "general", **fields: Any) -> Reply:
        return await self.call("POST", "/rooms", json_body={"name": name, **fields})

    async def history(self, room_id: str, query: str = "") -> Reply:
        return await self.call("GET", f"/rooms/{room_id}/history" + (f"?{query}" if query else ""))

    async def publish(self, room_id: str, frame: bytes) -> Reply:
        return await self.call("POST", f"/rooms/{room_id}/messages", body=frame,
                               headers={"Content-Type": "application/octet-stream"})


def assert_unavailable(reply: Reply) -> None:
    """API.md: an unreachable backend is 503, a JSON error body and Retry-After."""
    assert reply.status == 503, reply
    assert int(reply.headers["Retry-After"]) >= 0, reply
    body = reply.json()
    assert set(body) == {"error", "message"} and body["error"], body


# --- the rules ---------------------------------------------------------------------------


async def orphan_rooms(deployment: Deployment, owner: KeyId) -> list[str]:
    """R1: the ids of ``owner``'s persisted rooms that have a record but no stream."""
    streams = deployment.streams
    assert streams is not None
    rooms = await deployment.rooms.list_by_member(owner)
    return [room.id for room in rooms if room.mode is Mode.MATRIX
            and await streams.info(stream_name_for_room(room.id)) is None]


def nats_failure(exc: BaseException, what: str) -> BackendUnavailable:
    """The error the NATS adapters raise when nats-py raises ``exc`` during ``what``:
    the memory backend is failed with exactly what the real one would report."""
    try:
        with translate_errors(what):
            raise exc
    except BackendUnavailable as translated:
        return translated
    raise AssertionError(f"{exc!r} does not translate to BackendUnavailable")


async def wait_until(predicate: Callable[[], Awaitable[bool]], *, within: float,
                     interval: float = 0.02, what: str = "condition") -> float:
    """Poll until ``predicate`` holds; the seconds it took. Fails after ``within``."""
    started = time.monotonic()
    with trio.move_on_after(within):
        while True:  # polling: the condition lives in another process
            if await predicate():
                return time.monotonic() - started
            await trio.sleep(interval)
    raise AssertionError(f"{what} did not hold within {within:g} s")


# --- a real socket -----------------------------------------------------------------------


def http_client(base_url: str, signer: RequestSigner | None = None,
                timeout: float = 10.0) -> httpx.AsyncClient:
    """An httpx client signing every request with ``signer`` (for the AUTHORITY the
    server is told to expect)."""
    auth = SignatureAuth(signer) if signer is not None else None
    return httpx.AsyncClient(base_url=base_url, auth=auth, timeout=timeout)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
