"""A NATS whose max_payload is below roomkeeper's 1 MiB frame limit: a frame that fits
roomkeeper but not the server is a 413 that says so, and nothing is stored (R11)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from roomkeeper.adapters.nats.server import NatsServerProcess
from tests.nats.http_stack import Stack, open_api

MAX_PAYLOAD = 64 * 1024


class SmallPayloadServer(NatsServerProcess):
    def config_text(self) -> str:
        return super().config_text() + f"max_payload: {MAX_PAYLOAD}\n"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    server = SmallPayloadServer(tmp_path)
    await trio.to_thread.run_sync(server.start)
    try:
        async with open_api(server.url) as opened:
            yield opened
    finally:
        await trio.to_thread.run_sync(server.stop)


async def test_a_frame_over_the_servers_max_payload_is_413_and_stores_nothing(
    stack: Stack,
) -> None:
    room_id = await stack.create_room()
    target = f"/rooms/{room_id}/messages"

    refused = await stack.api.call("POST", target, body=b"\x01" * (100 * 1024))
    fits = await stack.api.call("POST", target, body=b"\x02" * (MAX_PAYLOAD // 2))

    assert refused.status == 413, refused
    assert refused.json()["error"] == "payload_too_large"
    assert "max_payload" in refused.json()["message"]
    assert fits.status == 201, fits
    assert await stack.frames(room_id) == [b"\x02" * (MAX_PAYLOAD // 2)]
