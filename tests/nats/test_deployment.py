"""The NATS deployment: startup (and its failures), the ports on one connection,
replay protection across instances, readiness, and the bundled nats-server."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.bus import NatsBus
from roomkeeper.adapters.nats.deployment import (
    StartupError,
    open_nats_deployment,
    run_bundled_server,
)
from roomkeeper.adapters.nats.nonces import NatsNonceStore
from roomkeeper.adapters.nats.rooms import NatsRoomStore
from roomkeeper.adapters.nats.server import (
    ClusterConfig,
    NatsServerProcess,
    find_nats_server,
    free_port,
)
from roomkeeper.adapters.nats.streams import NatsStreamStore
from roomkeeper.core import (
    BackendUnavailable,
    KeyId,
    Mode,
    Room,
    encode_keyid,
    new_room_id,
    stream_config_for_room,
)
from roomkeeper.ports import Deployment
from tests.conftest import NatsServer


def _keyid() -> KeyId:
    return encode_keyid(os.urandom(32))


def _room() -> Room:
    owner = _keyid()
    return Room(id=new_room_id(os.urandom(16)), name="general", mode=Mode.MATRIX,
                owner=owner, members=(owner,), created_at="2026-12-04T15:00:00Z")


async def _round_trip(deployment: Deployment) -> None:
    room = _room()
    revision = await deployment.rooms.put(room, None)
    stored = await deployment.rooms.get(room.id)
    assert stored is not None and (stored.room, stored.revision) == (room, revision)
    assert await deployment.rooms.list_by_member(room.owner) == (room,)


async def test_the_deployment_comes_up_with_every_port_on_nats(
    nats_server: object, nats_conn: NatsConnection
) -> None:
    async with open_nats_deployment(nats_server.url, replicas=1) as deployment:  # type: ignore[attr-defined]
        await deployment.check_ready()
        assert isinstance(deployment.rooms, NatsRoomStore)
        assert isinstance(deployment.nonces, NatsNonceStore)
        assert isinstance(deployment.streams, NatsStreamStore)
        assert isinstance(deployment.bus, NatsBus)
        assert deployment.replicas == 1
        assert deployment.lifespan is None  # the context manager is the lifespan
        assert 0 < deployment.clock() - time.time() + 1 < 2
        assert len(deployment.entropy(16)) == 16
        await _round_trip(deployment)


async def test_kv_buckets_are_replicated_like_the_streams(
    nats_server: object, nats_conn: NatsConnection
) -> None:
    async with open_nats_deployment(nats_server.url):  # type: ignore[attr-defined]
        pass

    async def replicas() -> list[int]:
        names = ("KV_roomkeeper_rooms", "KV_roomkeeper_nonces")
        return [(await nats_conn.js.stream_info(name)).config.num_replicas for name in names]

    assert await nats_conn.bridge.call(replicas) == [1, 1]


async def test_an_unreachable_nats_fails_within_the_timeout_in_one_line() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(StartupError) as info:
        async with open_nats_deployment(url, connect_timeout=0.3):
            pytest.fail("connected to nothing")
    assert time.monotonic() - started < 1.5
    message = str(info.value)
    assert url in message and "Refused" in message
    assert "\n" not in message


async def test_more_replicas_than_servers_is_a_startup_error(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(StartupError, match=r"KV buckets.*replicas > 1 not supported"):
        async with open_nats_deployment(nats_server.url, replicas=3):
            pytest.fail("a single server cannot hold three replicas")
    # The StartupError is the one report: serve prints it as its one line.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_replicas_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="replicas"):
        async with open_nats_deployment("nats://127.0.0.1:1", replicas=0):
            pass


@pytest.fixture
def nats_without_jetstream() -> Iterator[str]:
    """A plain nats-server (no -js) on loopback; its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(find_nats_server()), "-a", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


async def test_a_nats_without_jetstream_is_a_startup_error(nats_without_jetstream: str) -> None:
    with pytest.raises(StartupError, match="JetStream is not enabled") as info:
        async with open_nats_deployment(nats_without_jetstream, connect_timeout=2):
            pytest.fail("KV needs JetStream")
    assert "\n" not in str(info.value)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.01)
    pytest.fail(f"nothing listens on port {port}")


async def test_a_replay_is_caught_across_two_deployments(
    nats_server: object, nats_conn: NatsConnection
) -> None:
    url = nats_server.url  # type: ignore[attr-defined]
    keyid, nonce = _keyid(), os.urandom(16).hex()
    async with open_nats_deployment(url) as one, open_nats_deployment(url) as two:
        assert one.nonces is not two.nonces
        assert await one.nonces.add(keyid, nonce, time.time() + 60) is True
        assert await two.nonces.add(keyid, nonce, time.time() + 60) is False
        # And a room written by one instance is read by the other.
        room = _room()
        await one.rooms.put(room, None)
        stored = await two.rooms.get(room.id)
        assert stored is not None and stored.room == room


async def test_ports_fail_fast_while_nats_is_down(tmp_path: Path) -> None:
    """While NATS is away the ports answer BackendUnavailable at once instead of waiting
    out their request timeout. That timeout is long here, so that the bound telling the
    two apart can be generous on a loaded machine."""
    request_timeout = 10.0
    with NatsServerProcess(tmp_path) as server:
        async with open_nats_deployment(server.url, request_timeout=request_timeout) as deployment:
            await deployment.check_ready()
            await trio.to_thread.run_sync(server.stop)  # it blocks for up to its grace
            await _until_unready(deployment)
            with trio.fail_after(request_timeout / 2):
                with pytest.raises(BackendUnavailable):
                    await deployment.rooms.get(_room().id)
                with pytest.raises(BackendUnavailable):
                    await deployment.nonces.add(_keyid(), "n", time.time() + 60)


@pytest.mark.slow
async def test_the_deployment_recovers_when_nats_comes_back(tmp_path: Path) -> None:
    with NatsServerProcess(tmp_path) as server:
        async with open_nats_deployment(server.url) as deployment:
            room = _room()
            await deployment.rooms.put(room, None)
            server.stop()
            await _until_unready(deployment)
            server.start()
            with trio.fail_after(10):
                while True:
                    try:
                        await deployment.check_ready()
                        break
                    except BackendUnavailable:
                        await trio.sleep(0.05)
            stored = await deployment.rooms.get(room.id)
            assert stored is not None and stored.room == room


async def _until_unready(deployment: Deployment) -> None:
    """The client notices the closed socket within moments (the bound allows for a
    loaded machine)."""
    with trio.fail_after(5):
        while True:
            try:
                await deployment.check_ready()
            except BackendUnavailable:
                return
            await trio.sleep(0.01)


# The bundled nats-server, as ``roomkeeper serve`` runs it.


async def test_the_bundled_server_runs_for_the_block(tmp_path: Path) -> None:
    server = NatsServerProcess(tmp_path)
    async with run_bundled_server(server), open_nats_deployment(server.url) as deployment:
        assert server.running
        await _round_trip(deployment)
    assert not server.running


async def test_a_bundled_server_that_cannot_start_is_a_startup_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken-nats-server"
    broken.write_text("#!/bin/sh\necho 'cannot open store' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(StartupError, match=r"bundled nats-server(.|\n)*cannot open store"):
        async with run_bundled_server(NatsServerProcess(tmp_path, binary=broken)):
            pytest.fail("started a server that exited")


@pytest.mark.slow
async def test_on_a_cluster_kv_and_streams_share_the_replica_count(tmp_path: Path) -> None:
    """R8 on three loopback nodes: --replicas 3 replicates the KV buckets and the room
    streams alike."""
    ports = [free_port() for _ in range(3)]
    routes = tuple(f"nats://127.0.0.1:{port}" for port in ports)
    nodes = [NatsServerProcess(tmp_path / f"n{i}", server_name=f"n{i}",
                               cluster=ClusterConfig("rk", port, routes))
             for i, port in enumerate(ports)]
    try:
        for node in nodes:
            await trio.to_thread.run_sync(node.start)
        for node in nodes:
            await trio.to_thread.run_sync(node.wait_healthy)
        async with open_nats_deployment(nodes[0].url, replicas=3) as deployment:
            assert deployment.streams is not None
            room = _room()
            spec = stream_config_for_room(room.id, replicas=deployment.replicas)
            await deployment.streams.ensure(spec)
            await _round_trip(deployment)
        async with open_connection(nodes[1].url, connect_timeout=2) as conn:

            async def replicas() -> list[int]:
                names = ("KV_roomkeeper_rooms", "KV_roomkeeper_nonces", spec.name)
                return [(await conn.js.stream_info(n)).config.num_replicas for n in names]

            assert await conn.call(replicas) == [3, 3, 3]
    finally:
        for node in nodes:
            node.stop()
