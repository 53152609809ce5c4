"""schemathesis against the served OpenAPI description over a real socket (see fuzz.py
for why not in process), on the memory deployment and (slow) on real NATS: no 5xx,
every response conforms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import httpx
import pytest
import schemathesis
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.client.signer import RequestSigner
from roomkeeper.ports import Deployment
from tests.reliability.backends import removing_new_streams
from tests.reliability.fuzz import FuzzReport, Known, run_schemathesis
from tests.reliability.harness import AUTHORITY, http_client, new_signer, record
from tests.serving import serving


async def create(http: httpx.AsyncClient, body: dict[str, object]) -> str:
    created = await http.post("/rooms", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def seed(base_url: str, fuzzer: RequestSigner, other: RequestSigner) -> Known:
    """Rooms of the fuzzing key (matrix with frames, ephemeral, shared with others) and
    one of another key that the fuzzer is not in (for the 403s)."""
    keyids = (fuzzer.keyid, other.keyid, new_signer().keyid)
    async with http_client(base_url, fuzzer) as http:
        rooms = [await create(http, {"name": "fuzzed"}),
                 await create(http, {"name": "quiet", "mode": "ephemeral"}),
                 await create(http, {"name": "shared", "members": list(keyids[1:])})]
        for frame in (b"one", b"\x00two"):
            published = await http.post(f"/rooms/{rooms[0]}/messages", content=frame)
            assert published.status_code == 201, published.text
    async with http_client(base_url, other) as http:
        rooms.append(await create(http, {"name": "not yours"}))
    return Known(room_ids=rooms, keyids=keyids)


@asynccontextmanager
async def deployment(nats_url: str | None) -> AsyncIterator[Deployment]:
    if nats_url is None:
        yield memory_deployment()
        return
    async with removing_new_streams(nats_url), open_nats_deployment(nats_url) as opened:
        yield opened


async def fuzz(cases: int, nats_url: str | None = None) -> FuzzReport:
    signer, other = new_signer(), new_signer()
    async with deployment(nats_url) as backend, \
            serving(create_app(backend, public_authority=AUTHORITY)) as base_url:
        known = await seed(base_url, signer, other)
        report = await trio.to_thread.run_sync(
            partial(run_schemathesis, base_url, signer, AUTHORITY, known, cases))
    name = f"schemathesis_{cases}" + ("_nats" if nats_url else "")
    record(name, cases_run=report.cases, seconds=round(report.seconds, 1),
           statuses={str(k): v for k, v in sorted(report.statuses.items())},
           operations=dict(sorted(report.operations.items())),
           schemathesis=schemathesis.__version__)
    return report


async def test_a_hundred_generated_cases_get_no_5xx_and_conform() -> None:
    report = await fuzz(100)
    assert report.cases >= 100
    assert all(status < 500 for status in report.statuses)


@pytest.mark.slow
async def test_six_hundred_generated_cases_get_no_5xx_and_conform() -> None:
    report = await fuzz(600)
    assert report.cases >= 500
    assert all(status < 500 for status in report.statuses)


@pytest.mark.slow
async def test_generated_cases_on_real_nats_get_no_5xx_and_conform(nats_server: Any) -> None:
    report = await fuzz(300, nats_server.url)
    assert report.cases >= 300
    assert all(status < 500 for status in report.statuses)
