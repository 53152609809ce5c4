"""roomkeeper on a three-node JetStream cluster with replicas 3 (slow).

One node is SIGKILLed under load and started again: every acked frame stays in history,
in order, without duplicates; creates and history keep answering, with brief 503s (with
Retry-After) while leaders are elected; no room exists without its stream. Two
roomkeeper instances on the same cluster serve each other's rooms and share the replay
cache.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from roomkeeper.adapters.http import create_app
from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.deployment import DEFAULT_REQUEST_TIMEOUT, open_nats_deployment
from roomkeeper.client.signer import RequestSigner
from roomkeeper.core import RoomId, stream_name_for_room
from tests.reliability.cluster import NatsCluster
from tests.reliability.harness import AUTHORITY, http_client, new_signer, record
from tests.reliability.process import RoomkeeperProcess
from tests.reliability.workload import Workload, read_all, verify_acked
from tests.serving import serving

pytestmark = pytest.mark.slow

REPLICAS = 3
#: Seconds of traffic before the kill, with the node down, and after it is back.
HEALTHY, DEGRADED, RECOVERED = 2.0, 16.0, 4.0
#: JetStream notices a dead leader and elects another within its Raft election
#: timeout (4-9 s in nats-server); after that, two of three nodes keep serving.
ELECTION = 10.0
#: The longest reads and publishes of existing rooms may go without a success.
MAX_GAP = 14.0
#: Creating an R3 stream needs the cluster to place three replicas with one node gone:
#: it works at times and times out (503) at others, so creates must only answer,
#: and succeed again soon after the node is back.
CREATE_RESUMES_WITHIN = 8.0
#: Nothing hangs: a few NATS calls in a row, each bounded by the request timeout.
NO_HANG = 3 * DEFAULT_REQUEST_TIMEOUT + 1.0
OPS = ("create", "history", "publish")
SERVING = ("history", "publish")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path_factory.mktemp("cluster"))
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@asynccontextmanager
async def roomkeeper(url: str) -> AsyncIterator[str]:
    """An instance on ``url`` with replicas 3, on a real socket; its base URL."""
    async with open_nats_deployment(url, replicas=REPLICAS) as deployment, \
            serving(create_app(deployment, public_authority=AUTHORITY)) as base_url:
        yield base_url


async def create_rooms(http: httpx.AsyncClient, count: int) -> list[str]:
    rooms = []
    for n in range(count):
        created = await http.post("/rooms", json={"name": f"busy {n}"})
        assert created.status_code == 201, created.text
        rooms.append(str(created.json()["id"]))
    return rooms


async def leader_index(conn: NatsConnection, cluster: NatsCluster, room: str) -> int:
    info = await conn.call(conn.js.stream_info, stream_name_for_room(RoomId(room)))
    assert info.cluster is not None and info.cluster.leader
    return cluster.index_of(info.cluster.leader)


async def assert_every_room_has_its_stream(conn: NatsConnection, rooms: list[str]) -> None:
    """R1 across the cluster: the stream of every room record exists, replicated."""
    for room in rooms:
        info = await conn.call(conn.js.stream_info, stream_name_for_room(RoomId(room)))
        assert info.config.num_replicas == REPLICAS


async def listed_rooms(http: httpx.AsyncClient) -> list[str]:
    for _ in range(50):
        reply = await http.get("/rooms")
        if reply.status_code == 200:
            return [room["id"] for room in reply.json()["rooms"]]
        await trio.sleep(0.1)
    raise AssertionError("GET /rooms stayed unavailable")


async def test_a_node_killed_under_load_loses_no_acked_frame(cluster: NatsCluster) -> None:
    signer = new_signer()
    async with roomkeeper(cluster.url(0)) as base_url, \
            http_client(base_url, signer) as http, \
            open_connection(cluster.url(2), connect_timeout=5) as conn:
        work = Workload(http, await create_rooms(http, 3))
        victim = await leader_index(conn, cluster, work.rooms[0])
        with trio.fail_after(HEALTHY + DEGRADED + RECOVERED + 60):
            async with trio.open_nursery() as nursery:
                work.start(nursery)
                await trio.sleep(HEALTHY)
                killed = time.monotonic()
                await trio.to_thread.run_sync(cluster.kill, victim)
                await trio.sleep(DEGRADED)
                restarted = time.monotonic()
                await trio.to_thread.run_sync(cluster.restart, victim)
                rejoined = time.monotonic()
                await trio.sleep(RECOVERED)
                work.stop.set()
        ended = time.monotonic()

        missing = {}
        for room in work.rooms:
            missing[room] = verify_acked(work.acked[room], await read_all(http, room))
        everyone = await listed_rooms(http)
        await assert_every_room_has_its_stream(conn, everyone)

    tally = work.tally
    after_election = {op: tally.ok_between(op, killed + ELECTION, restarted) for op in OPS}
    gaps = {op: round(tally.longest_gap(op, killed, ended), 2) for op in OPS}
    create_resumed = tally.longest_gap("create", rejoined, ended)
    record("cluster_kill", killed_node=f"n{victim} (leader of a busy room's stream)",
           acked_frames=sum(len(a) for a in work.acked.values()),
           acked_frames_lost=sum(missing.values()), rooms_created=len(work.created),
           rooms_checked_for_stream=len(everyone), node_down_s=round(restarted - killed, 1),
           rejoin_s=round(rejoined - restarted, 2), ok_while_down_after_election=after_election,
           longest_gap_without_success_s=gaps, **tally.as_figures(),
           creates_ok_while_down=tally.ok_between("create", killed, restarted),
           create_gap_after_rejoin_s=round(create_resumed, 2))
    assert tally.errors == [], collections.Counter(tally.errors).most_common(10)
    assert sum(missing.values()) == 0, missing
    assert set(work.created) <= set(everyone)
    # Every request was answered, a 201 or a 503 with Retry-After, none hung...
    assert tally.slowest < NO_HANG, tally.slowest
    for op in SERVING:
        # ...existing rooms kept serving on two nodes of three once leaders were elected...
        assert after_election[op] > 0, (op, after_election)
        # ...and no read or publish was out for longer than an election or two.
        assert gaps[op] < MAX_GAP, gaps
    assert create_resumed < CREATE_RESUMES_WITHIN, create_resumed


def signed_once(signer: RequestSigner, target: str) -> dict[str, str]:
    path, _, query = target.partition("?")
    return signer.sign("GET", AUTHORITY, path, query, b"")


@pytest.fixture
async def two_instances(cluster: NatsCluster,
                        tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """``roomkeeper serve --nats <node> --replicas 3`` twice, on different nodes."""
    for index, node in enumerate(cluster.nodes):  # after a failed kill test
        if not node.running:
            await trio.to_thread.run_sync(cluster.restart, index)
    instances = [RoomkeeperProcess(tmp_path / f"rk{i}", "--nats", cluster.url(i),
                                   "--replicas", str(REPLICAS)) for i in (0, 2)]
    try:
        urls = [await trio.to_thread.run_sync(rk.start) for rk in instances]
        yield urls[0], urls[1]
    finally:
        for rk in instances:
            await trio.to_thread.run_sync(rk.stop)


async def test_two_instances_serve_each_others_rooms_and_share_nonces(
    cluster: NatsCluster, two_instances: tuple[str, str],
) -> None:
    one, two = two_instances
    signer = new_signer()
    async with http_client(one, signer) as via_one, http_client(two, signer) as via_two:
        created = await via_one.post("/rooms", json={"name": "shared"})
        assert created.status_code == 201, created.text
        room = created.json()
        assert (await via_two.get(f"/rooms/{room['id']}")).json() == room
        published = await via_two.post(f"/rooms/{room['id']}/messages", content=b"via two")
        assert published.status_code == 201, published.text
        page = (await via_one.get(f"/rooms/{room['id']}/history")).json()
        assert page["messages"] == ["dmlhIHR3bw=="]

        target = f"/rooms/{room['id']}"
        headers = signed_once(signer, target)
        async with httpx.AsyncClient(timeout=10) as raw:
            first = await raw.get(one + target, headers=headers)
            replay = await raw.get(two + target, headers=headers)
    assert first.status_code == 200, first.text
    assert replay.status_code == 401, replay.text
    async with open_connection(cluster.url(1), connect_timeout=5) as conn:
        # R8: the room stream and both KV buckets are replicated as --replicas says.
        await assert_every_room_has_its_stream(conn, [room["id"]])
        for bucket in ("KV_roomkeeper_rooms", "KV_roomkeeper_nonces"):
            info = await conn.call(conn.js.stream_info, bucket)
            assert info.config.num_replicas == REPLICAS
    record("cluster_two_instances", room_served_by_the_other="yes",
           nonce_replayed_on_the_other=replay.status_code)
