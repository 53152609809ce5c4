"""``roomkeeper serve --nats URL`` SIGKILLed in the middle of publishing, then started
again on the same NATS: every room, member and acked frame is still there, and every
room record still has its stream (R1). roomkeeper keeps no state of its own."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from roomkeeper.client.signer import RequestSigner
from tests.reliability.backends import removing_new_streams
from tests.reliability.harness import http_client, new_signer, record
from tests.reliability.process import RoomkeeperProcess


@pytest.fixture
async def roomkeeper(nats_server: Any, tmp_path: Path) -> AsyncIterator[RoomkeeperProcess]:
    process = RoomkeeperProcess(tmp_path / "roomkeeper", "--nats", nats_server.url)
    async with removing_new_streams(nats_server.url):
        try:
            yield process
        finally:
            await trio.to_thread.run_sync(process.stop)


async def state(base_url: str, signers: list[RequestSigner]) -> dict[str, Any]:
    """Every caller's rooms and each room's whole history, as the API shows them."""
    seen: dict[str, Any] = {}
    for signer in signers:
        async with http_client(base_url, signer) as http:
            rooms = (await http.get("/rooms")).json()["rooms"]
            pages = [(await http.get(f"/rooms/{room['id']}/history?limit=1000")).json()
                     for room in rooms]
        seen[signer.keyid] = {"rooms": rooms, "history": pages}
    return seen


async def publish_until_killed(http: httpx.AsyncClient, room_id: str,
                               acked: list[bytes]) -> None:
    """Publish frames until the server goes away; remember the acked ones."""
    for n in range(10_000):
        try:
            reply = await http.post(f"/rooms/{room_id}/messages", content=b"frame %d" % n)
        except httpx.TransportError:
            return
        assert reply.status_code == 201, reply.text
        acked.append(b"frame %d" % n)


async def test_a_killed_roomkeeper_comes_back_with_everything(
    roomkeeper: RoomkeeperProcess,
) -> None:
    owner, member = new_signer(), new_signer()
    base_url = await trio.to_thread.run_sync(roomkeeper.start)
    acked: list[bytes] = []
    async with http_client(base_url, owner) as http:
        created = [await http.post("/rooms", json={"name": "busy", "members": [member.keyid]}),
                   await http.post("/rooms", json={"name": "quiet", "mode": "ephemeral"})]
        assert [reply.status_code for reply in created] == [201, 201]
        busy, quiet = (reply.json() for reply in created)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish_until_killed, http, busy["id"], acked)
            await trio.sleep(0.3)
            await trio.to_thread.run_sync(roomkeeper.kill)

    base_url = await trio.to_thread.run_sync(roomkeeper.start)
    after = await state(base_url, [owner, member])
    by_id = sorted([busy, quiet], key=lambda room: str(room["id"]))
    assert after[owner.keyid]["rooms"] == by_id
    assert after[member.keyid]["rooms"] == [busy]
    stored = [base64.b64decode(m) for m in after[member.keyid]["history"][0]["messages"]]
    # Every acked frame, in order; at most one more: stored, its ack lost in the kill.
    assert stored[:len(acked)] == acked
    assert len(stored) - len(acked) in (0, 1)
    assert len(acked) > 10  # it was busy when it died
    record("roomkeeper_sigkill", acked_before_kill=len(acked),
           stored_after_restart=len(stored), rooms_intact=len(after[owner.keyid]["rooms"]))
