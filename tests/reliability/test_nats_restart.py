"""NATS killed and restarted under load (slow): no request hangs past the request
timeout, every answer meanwhile is a 503 with Retry-After, and service resumes by
itself once NATS is back, with every acked frame still in history."""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.adapters.nats.server import NatsServerProcess
from tests.reliability.harness import AUTHORITY, http_client, new_signer, record
from tests.reliability.workload import Workload, read_all, verify_acked
from tests.serving import serving

pytestmark = pytest.mark.slow

#: Seconds a NATS request may take before roomkeeper answers 503.
REQUEST_TIMEOUT = 2.0
#: What "hangs past its timeout" means: one timed-out NATS call plus the HTTP round trip.
HANG = REQUEST_TIMEOUT + 1.0
HEALTHY, DOWN, BACK = 2.0, 3.0, 5.0
#: nats-py retries the connection every second; service must resume well within this.
RESUME_WITHIN = 5.0
OPS = ("create", "history", "publish")


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServerProcess]:
    server = NatsServerProcess(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kill(server: NatsServerProcess) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)
    server.stop()  # reaps it


async def test_nats_killed_and_restarted_under_load(nats: NatsServerProcess) -> None:
    async with open_nats_deployment(nats.url, request_timeout=REQUEST_TIMEOUT) as deployment, \
            serving(create_app(deployment, public_authority=AUTHORITY)) as base_url, \
            http_client(base_url, new_signer(), timeout=30) as http:
        rooms = []
        for n in range(3):
            created = await http.post("/rooms", json={"name": f"room {n}"})
            assert created.status_code == 201, created.text
            rooms.append(created.json()["id"])
        work = Workload(http, rooms)
        with trio.fail_after(HEALTHY + DOWN + BACK + 60):
            async with trio.open_nursery() as nursery:
                work.start(nursery)
                await trio.sleep(HEALTHY)
                await trio.to_thread.run_sync(kill, nats)
                await trio.sleep(DOWN)
                await trio.to_thread.run_sync(nats.start)
                back = time.monotonic()
                await trio.sleep(BACK)
                work.stop.set()
        ended = time.monotonic()
        missing = sum([verify_acked(work.acked[room], await read_all(http, room))
                       for room in rooms])

    tally = work.tally
    resumed = {op: round(tally.longest_gap(op, back, ended), 2) for op in OPS}
    record("nats_restart", request_timeout_s=REQUEST_TIMEOUT, down_s=DOWN,
           acked_frames=sum(len(a) for a in work.acked.values()), acked_frames_lost=missing,
           seconds_to_resume_after_restart=resumed, **tally.as_figures())
    assert tally.errors == [], collections.Counter(tally.errors).most_common(10)
    assert tally.slowest < HANG, tally.slowest
    assert sum(tally.unavailable.values()) > 0  # the outage was seen, and answered 503
    assert missing == 0
    for op in OPS:
        assert resumed[op] < RESUME_WITHIN, resumed
