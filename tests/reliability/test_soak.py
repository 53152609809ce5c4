"""A soak (slow): 10,000 mixed requests from 32 concurrent signed clients against one
``roomkeeper serve`` subprocess on its bundled nats-server. No 5xx (every request in
the mix is valid, so every answer must be a 2xx); p50/p99 reported; the server's RSS
after the soak stays within 10% of its RSS after a warm-up."""

from __future__ import annotations

import collections
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import trio

from roomkeeper.adapters.nats.server import free_port
from roomkeeper.client.signer import RequestSigner
from tests.reliability.harness import http_client, new_signer, percentile, record
from tests.reliability.process import RoomkeeperProcess

pytestmark = pytest.mark.slow

CLIENTS = 32
WARMUP = 1_000
SOAK = 10_000
#: Operations and their weights: mostly reads and publishes, as chat clients do.
OPS = ("history", "publish", "membership", "create")
WEIGHTS = (40, 35, 15, 10)
FRAME_BYTES = 256
MAX_RSS_CHANGE = 0.10
SOAK_TIMEOUT = 600.0


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    by_op: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)


class Client:
    """One chat client: its own key, its own rooms, a friend it adds and removes."""

    def __init__(self, base_url: str, seed: int) -> None:
        self.signer: RequestSigner = new_signer()
        self.friend = new_signer().keyid
        self.http = http_client(base_url, self.signer, timeout=30)
        self.rooms: list[str] = []
        self.friend_in: set[str] = set()
        self.rng = random.Random(seed)

    async def request(self, op: str) -> httpx.Response:
        if op == "create" or not self.rooms:
            reply = await self.http.post("/rooms", json={"name": f"soak {len(self.rooms)}"})
            if reply.status_code == 201:
                self.rooms.append(reply.json()["id"])
            return reply
        room = self.rng.choice(self.rooms)
        if op == "history":
            return await self.http.get(f"/rooms/{room}/history", params={"limit": 50})
        if op == "publish":
            return await self.http.post(f"/rooms/{room}/messages",
                                        content=self.rng.randbytes(FRAME_BYTES))
        return await self.membership(room)

    async def membership(self, room: str) -> httpx.Response:
        if room in self.friend_in:
            reply = await self.http.delete(f"/rooms/{room}/members/{self.friend}")
            self.friend_in.discard(room)
        else:
            reply = await self.http.post(f"/rooms/{room}/members", json={"member": self.friend})
            self.friend_in.add(room)
        return reply


async def drive(clients: list[Client], total: int, seed: int) -> Results:
    """``total`` requests shared by every client, each drawing its next operation."""
    results = Results()
    tickets = iter(range(total))

    async def run(client: Client) -> None:
        for _ in tickets:  # shared: the clients take turns until none is left
            op = client.rng.choices(OPS, WEIGHTS)[0]
            started = time.perf_counter()
            try:
                reply = await client.request(op)
            except httpx.HTTPError as exc:
                results.failures.append(f"{op}: {type(exc).__name__}")
                continue
            results.latencies.append(time.perf_counter() - started)
            results.by_op[op] += 1
            results.statuses[reply.status_code] += 1
            if not 200 <= reply.status_code < 300:
                results.failures.append(f"{op}: {reply.status_code} {reply.text[:120]}")

    for index, client in enumerate(clients):
        client.rng.seed(seed * 1000 + index)
    async with trio.open_nursery() as nursery:
        for client in clients:
            nursery.start_soon(run, client)
    return results


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RoomkeeperProcess]:
    process = RoomkeeperProcess(
        tmp_path / "roomkeeper", "--data-dir", str(tmp_path / "data"),
        "--nats-port", str(free_port()), "--ws-port", str(free_port()),
        "--log-level", "warning")
    await trio.to_thread.run_sync(process.start)
    try:
        yield process
    finally:
        await trio.to_thread.run_sync(process.stop)


async def test_ten_thousand_mixed_requests(server: RoomkeeperProcess) -> None:
    clients = [Client(server.base_url, seed) for seed in range(CLIENTS)]
    try:
        with trio.fail_after(SOAK_TIMEOUT):
            warm = await drive(clients, WARMUP, seed=1)
            rss_warm = server.rss_kib()
            started = time.monotonic()
            soak = await drive(clients, SOAK, seed=2)
            seconds = time.monotonic() - started
            rss_after = server.rss_kib()
    finally:
        for client in clients:
            await client.http.aclose()

    change = (rss_after - rss_warm) / rss_warm
    record("soak", requests=len(soak.latencies), clients=CLIENTS, seconds=round(seconds, 1),
           requests_per_s=round(len(soak.latencies) / seconds),
           p50_ms=round(percentile(soak.latencies, 0.50) * 1000, 1),
           p99_ms=round(percentile(soak.latencies, 0.99) * 1000, 1),
           max_ms=round(max(soak.latencies) * 1000, 1), by_op=dict(soak.by_op),
           statuses={str(k): v for k, v in sorted(soak.statuses.items())},
           rss_after_warmup_kib=rss_warm, rss_after_soak_kib=rss_after,
           rss_change_pct=round(change * 100, 1))
    assert warm.failures == [], warm.failures[:10]
    assert soak.failures == [], collections.Counter(soak.failures).most_common(10)
    assert len(soak.latencies) == SOAK
    assert all(status < 500 for status in soak.statuses)
    assert abs(change) <= MAX_RSS_CHANGE, (rss_warm, rss_after)
