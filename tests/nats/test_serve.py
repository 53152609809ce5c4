"""``roomkeeper serve`` as a real process: the default deployment (it starts the bundled
nats-server and stops it again), an existing NATS given through the environment, and
startup failures that must end in one line, quickly. One test runs ``serve_forever`` in
process, to time a second Ctrl-C exactly.

Every server here listens on 127.0.0.1 on a free port (``0``) and keeps its data under
the test's temporary directory. Processes are stopped by pid.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

from roomkeeper.adapters.cli import main
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.adapters.nats.server import free_port
from roomkeeper.adapters.serve import Plan, serve_forever
from roomkeeper.client.signer import RequestSigner
from roomkeeper.ports import Deployment
from tests.conftest import NatsServer
from tests.nats.serve_process import (
    FREE_PORTS,
    STOP_TIMEOUT,
    Running,
    core_publish,
    history,
    kill,
    pid_alive,
    run_failing,
    serve,
    servers_on,
    signed_client,
    stream_config_json,
    websocket_upgrade_status,
)


@pytest.fixture
def started() -> Iterator[list[Running]]:
    """The servers a test starts; whatever is still running at the end is killed."""
    servers: list[Running] = []
    yield servers
    for running in servers:
        if running.proc.poll() is None:
            kill(running)


FRAMES = [b"\x00one", b"two\xff", b"three"]


# --- the default deployment -----------------------------------------------------------------


def test_default_serve_keeps_rooms_and_history_across_a_restart(
    tmp_path: Path, started: list[Running]
) -> None:
    data_dir = tmp_path / "data"
    signer = RequestSigner(os.urandom(32))
    first = serve(["--data-dir", str(data_dir), *FREE_PORTS], lines=4)
    started.append(first)
    with signed_client(first.http, signer) as http:
        room_id = http.post("/rooms", json={"name": "kept"}).json()["id"]
        core_publish(first.nats, f"rooms.{room_id}", FRAMES)
        before = history(http, room_id, len(FRAMES))
    status, stderr = first.stop(signal.SIGINT)

    assert before == FRAMES
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert not pid_alive(first.nats_pid)
    assert servers_on(data_dir) == []

    again = serve(["--data-dir", str(data_dir), *FREE_PORTS], lines=4)
    started.append(again)
    with signed_client(again.http, signer) as http:
        rooms = http.get("/rooms").json()["rooms"]
        after = history(http, room_id, len(FRAMES))
    status, _ = again.stop(signal.SIGTERM)

    assert [room["id"] for room in rooms] == [room_id]
    assert after == FRAMES
    assert status == 0
    assert not pid_alive(again.nats_pid)


def test_startup_prints_every_address_and_each_request_is_logged_in_one_line(
    tmp_path: Path, started: list[Running]
) -> None:
    running = serve(["--data-dir", str(tmp_path / "d"), *FREE_PORTS], lines=4)
    started.append(running)
    signer = RequestSigner(os.urandom(32))
    with signed_client(running.http, signer) as http:
        room_id = http.post("/rooms", json={"name": "logged"}).json()["id"]
        http.post(f"/rooms/{room_id}/messages", content=b"secret frame")
        http.get(f"/rooms/{room_id}/history")
        websocket = websocket_upgrade_status(running.ws_port)
    _, stderr = running.stop()

    assert [line.split(" on ")[0] for line in running.lines[:3]] == [
        "roomkeeper: serving", "roomkeeper: NATS", "roomkeeper: websocket"]
    assert running.lines[3] == (f"roomkeeper: data in {tmp_path / 'd'} "
                                f"(nats-server log: {tmp_path / 'd' / 'nats-server.log'})")
    assert websocket == 101
    access = [line for line in stderr.splitlines() if " roomkeeper.http INFO " in line]
    assert [line.split(" INFO ")[1].split()[:3] for line in access] == [
        ["POST", "/rooms", "201"],
        ["POST", f"/rooms/{room_id}/messages", "201"],
        ["GET", f"/rooms/{room_id}/history", "200"],
    ]
    assert all(line.endswith(signer.keyid) for line in access)
    assert "secret frame" not in stderr and base64.b64encode(b"secret frame").decode() not in stderr


def test_ctrl_c_in_a_terminal_stops_roomkeeper_then_its_nats_server(
    tmp_path: Path, started: list[Running]
) -> None:
    """A terminal sends SIGINT to the whole foreground group. The nats-server must not
    die first: roomkeeper drains its connection, then stops the server."""
    running = serve(["--data-dir", str(tmp_path / "d"), *FREE_PORTS], lines=4,
                    new_session=True)
    started.append(running)

    began = time.monotonic()
    status, stderr = running.stop(signal.SIGINT, group=True)
    took = time.monotonic() - began

    assert status == 0
    assert took < 3, f"shutdown took {took:.1f}s"
    assert "WARNING" not in stderr and "Traceback" not in stderr, stderr
    assert not pid_alive(running.nats_pid)


def test_the_terminal_client_works_against_the_default_deployment(
    tmp_path: Path, started: list[Running], capsys: pytest.CaptureFixture[str]
) -> None:
    """The chat commands are part of ``roomkeeper``: keygen, a room, a message sent over
    core NATS to the bundled server, and history, decrypted."""
    running = serve(["--data-dir", str(tmp_path / "d"), *FREE_PORTS], lines=4)
    started.append(running)
    identity = str(tmp_path / "me.json")
    common = ["--server", running.http, "--nats", running.nats, "--identity", identity]

    assert main(["keygen", "--identity", identity]) == 0
    assert main(["rooms", "create", "general", *common]) == 0
    room = capsys.readouterr().out.split()[-1]
    assert main(["send", room, "hello from a terminal", "--via", "nats", *common]) == 0
    deadline = time.monotonic() + 5
    while True:
        capsys.readouterr()
        assert main(["history", room, *common]) == 0
        out = capsys.readouterr().out
        if "hello from a terminal" in out or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    status, _ = running.stop()

    assert "hello from a terminal" in out
    assert status == 0


def test_a_second_serve_on_the_same_data_dir_is_refused(
    tmp_path: Path, started: list[Running]
) -> None:
    """nats-server does not notice a second server on its JetStream store; roomkeeper
    must, before it starts one."""
    first = serve(["--data-dir", str(tmp_path), *FREE_PORTS], lines=4)
    started.append(first)

    status, out, err, _ = run_failing(["--data-dir", str(tmp_path), *FREE_PORTS])
    with signed_client(first.http, RequestSigner(os.urandom(32))) as http:
        still_serving = http.get("/rooms").status_code
    servers = servers_on(tmp_path)
    first.stop()

    assert (status, out) == (1, "")
    assert err == (f"roomkeeper serve: could not start: {tmp_path} is in use by another "
                   f"roomkeeper (pid {first.proc.pid}) and its nats-server "
                   f"(pid {first.nats_pid})\n")
    assert servers == [first.nats_pid]
    assert still_serving == 200


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
def test_a_killed_serve_takes_its_nats_server_with_it(
    tmp_path: Path, started: list[Running]
) -> None:
    """SIGKILL gives roomkeeper no chance to stop its nats-server: the kernel does, and
    the data directory is free for the next serve."""
    first = serve(["--data-dir", str(tmp_path), *FREE_PORTS], lines=4)
    started.append(first)
    try:
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.communicate(timeout=STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while servers_on(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = servers_on(tmp_path)
    finally:
        for pid in servers_on(tmp_path):
            os.kill(pid, signal.SIGKILL)
    again = serve(["--data-dir", str(tmp_path), *FREE_PORTS], lines=4)
    started.append(again)
    status, _ = again.stop()

    assert left == []
    assert status == 0
    assert servers_on(tmp_path) == []


async def test_a_second_ctrl_c_during_shutdown_is_noted_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process, so that the second signal lands while the backends are still closing:
    trio would re-raise a signal left in the receiver as a KeyboardInterrupt."""
    caplog.set_level(logging.INFO, logger="roomkeeper.cli")
    up, closing, release = trio.Event(), trio.Event(), trio.Event()

    @asynccontextmanager
    async def slow_to_close() -> AsyncIterator[Deployment]:
        yield memory_deployment()
        closing.set()
        await release.wait()

    plan = Plan(slow_to_close, lambda: [])
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(serve_forever, plan, "127.0.0.1:0", None,
                                       announce=lambda line: up.set()))
            await up.wait()
            signal.raise_signal(signal.SIGINT)
            await closing.wait()
            signal.raise_signal(signal.SIGINT)
            for _ in range(200):  # the watcher takes the signal at its next checkpoint
                if "already shutting down" in caplog.text:
                    break
                await trio.sleep(0.01)
            release.set()

    assert [r.getMessage() for r in caplog.records if r.name == "roomkeeper.cli"] == [
        "SIGINT: shutting down", "SIGINT: already shutting down"]


# --- an existing NATS ----------------------------------------------------------------------


def test_serve_on_an_existing_nats_configured_by_the_environment(
    nats_server: NatsServer, started: list[Running]
) -> None:
    env = {"ROOMKEEPER_NATS_URL": nats_server.url, "ROOMKEEPER_BIND": "127.0.0.1:0",
           "ROOMKEEPER_PUBLIC_AUTHORITY": "chat.test", "ROOMKEEPER_MAX_MSGS": "2"}
    running = serve([], env=env, lines=2)
    started.append(running)
    signer = RequestSigner(os.urandom(32), authority="chat.test")
    with signed_client(running.http, signer) as http:
        room_id = http.post("/rooms", json={"name": "external"}).json()["id"]
        seqs = [http.post(f"/rooms/{room_id}/messages", content=f).json()["seq"]
                for f in FRAMES]
        config = stream_config_json(nats_server.url, f"ROOM_{room_id}")
        kept = history(http, room_id, 2)
        deleted = http.delete(f"/rooms/{room_id}")
    status, _ = running.stop(signal.SIGTERM)

    assert running.lines[1] == f"roomkeeper: NATS at {nats_server.url} (replicas 1)"
    assert seqs == [1, 2, 3]
    assert config["max_msgs"] == 2
    assert kept == FRAMES[1:]
    assert deleted.status_code == 204
    assert status == 0
    assert nats_server.running  # someone else's server is left alone


# --- startup failures: one line, exit 1, quickly -----------------------------------------------


def test_an_unreachable_nats_at_startup_exits_1_with_one_line() -> None:
    url = f"nats://127.0.0.1:{free_port()}"

    status, out, err, took = run_failing(
        ["--nats", url, "--connect-timeout", "0.5", "--bind", "127.0.0.1:0"])

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(
        f"roomkeeper serve: could not start: could not connect to NATS at {url} within 0.5s: ")
    assert took < 5


@pytest.mark.slow  # waits out the default connect timeout of 5 s
def test_an_unreachable_nats_gives_up_after_the_default_timeout() -> None:
    status, _, err, took = run_failing(
        ["--nats", f"nats://127.0.0.1:{free_port()}", "--bind", "127.0.0.1:0"], within=15)

    assert (status, err.count("\n")) == (1, 1)
    assert "within 5s" in err
    assert took < 9


@pytest.mark.parametrize("port_flag", ["--nats-port", "--ws-port"])
def test_a_nats_port_in_use_exits_1_with_one_line(tmp_path: Path, port_flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--nats-port", "0", "--ws-port", "0", port_flag, str(port)]
        status, out, err, _ = run_failing(
            ["--data-dir", str(tmp_path), "--bind", "127.0.0.1:0", *args])

    assert (status, out) == (1, "")
    assert err.count("\n") == 1, err
    assert err.startswith("roomkeeper serve: could not start: cannot start the bundled "
                          "nats-server: ")
    assert f"127.0.0.1:{port}" in err and "address already in use" in err
    assert servers_on(tmp_path) == []


def test_an_http_port_in_use_exits_1_and_stops_the_nats_server_it_started(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, out, err, _ = run_failing(["--data-dir", str(tmp_path), "--nats-port", "0",
                                           "--ws-port", "0", "--bind", f"127.0.0.1:{port}"])

    assert (status, out) == (1, "")
    assert err.startswith(f"roomkeeper serve: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1, err
    assert servers_on(tmp_path) == []
