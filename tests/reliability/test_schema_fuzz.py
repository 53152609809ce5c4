"""schemathesis against the served OpenAPI description, on the memory deployment over a
real socket (see fuzz.py for why not in process): no 5xx, every response conforms."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import schemathesis
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.client.signer import RequestSigner
from tests.reliability.fuzz import FuzzReport, Known, run_schemathesis
from tests.reliability.harness import AUTHORITY, http_client, new_signer, record, serving


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


async def fuzz(cases: int) -> FuzzReport:
    signer, other = new_signer(), new_signer()
    app = create_app(memory_deployment(), public_authority=AUTHORITY)
    async with serving(app) as base_url:
        known = await seed(base_url, signer, other)
        report = await trio.to_thread.run_sync(
            partial(run_schemathesis, base_url, signer, AUTHORITY, known, cases))
    record(f"schemathesis_{cases}", cases_run=report.cases, seconds=round(report.seconds, 1),
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
