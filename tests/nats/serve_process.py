"""``roomkeeper serve`` as a subprocess, for tests/nats/test_serve.py: start it, read the
addresses it prints, signal it, and find the nats-servers it left (there should be
none). Linux: live processes are found in /proc."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats

from roomkeeper.client.signer import RequestSigner, SignatureAuth

SCRIPT = Path(sys.executable).parent / "roomkeeper"
#: Generous bounds for a loaded machine; the tests take about a second each.
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
FREE_PORTS = ["--nats-port", "0", "--ws-port", "0", "--bind", "127.0.0.1:0"]


@dataclass
class Running:
    proc: subprocess.Popen[str]
    lines: list[str]

    def address(self, pattern: str) -> str:
        for line in self.lines:
            if match := re.fullmatch(pattern, line):
                return match[1]
        raise AssertionError(f"no line matches {pattern!r} in {self.lines}")

    @property
    def http(self) -> str:
        return self.address(r"roomkeeper: serving on (http://127\.0\.0\.1:\d+)")

    @property
    def nats(self) -> str:
        return self.address(r"roomkeeper: NATS on (nats://127\.0\.0\.1:\d+) .*")

    @property
    def ws_port(self) -> int:
        return int(self.address(r"roomkeeper: websocket on ws://127\.0\.0\.1:(\d+) .*"))

    @property
    def nats_pid(self) -> int:
        return int(self.address(r"roomkeeper: NATS on .*\(bundled nats-server, pid (\d+)\)"))

    def stop(self, signum: int = signal.SIGINT, *, group: bool = False) -> tuple[int, str]:
        """Signal roomkeeper (or, like a terminal's Ctrl-C, its whole process group);
        its exit status and everything it wrote to stderr."""
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)
        _, stderr = self.proc.communicate(timeout=STOP_TIMEOUT)
        return self.proc.returncode, stderr


def serve(args: Sequence[str], *, env: dict[str, str] | None = None, lines: int,
          new_session: bool = False) -> Running:
    """Start ``roomkeeper serve`` and wait for the ``lines`` lines it prints once up."""
    proc = subprocess.Popen(
        [str(SCRIPT), "serve", *args], env={**os.environ, **(env or {})}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=new_session)
    running = Running(proc, [])
    try:
        running.lines.extend(_first_lines(proc, lines, START_TIMEOUT))
    except BaseException:
        kill(running)
        raise
    return running


def _first_lines(proc: subprocess.Popen[str], count: int, within: float) -> list[str]:
    """Read whole lines straight from the pipe (a buffered reader would hide lines it
    has read ahead from select)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + within
    while data.count(b"\n") < count:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            raise AssertionError(f"roomkeeper serve is not up; exit status {proc.poll()}, "
                                 f"stdout so far: {data!r}")
        if select.select([fd], [], [], min(left, 0.1))[0]:
            data += os.read(fd, 4096)
    return data.decode().splitlines()[:count]


def kill(running: Running) -> None:
    """Clean up after a failed test: SIGKILL roomkeeper and the server it started."""
    pids = [running.proc.pid]
    if any("bundled nats-server" in line for line in running.lines):
        pids.append(running.nats_pid)
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    running.proc.communicate()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def servers_on(data_dir: Path) -> list[int]:
    """Pids of nats-servers running with the config in ``data_dir``."""
    config = str(data_dir / "nats-server.conf").encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and config in (entry / "cmdline").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return pids


def core_publish(url: str, subject: str, frames: Sequence[bytes]) -> None:
    """A client with no JetStream and nothing of roomkeeper, as a browser would be."""

    async def publish() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            for frame in frames:
                await nc.publish(subject, frame)
            await nc.flush(timeout=2)
        finally:
            await nc.close()

    asyncio.run(publish())


def history(http: httpx.Client, room_id: str, count: int) -> list[bytes]:
    """The room's frames once there are ``count`` of them (a core publish has no ack)."""
    deadline = time.monotonic() + 5
    while True:
        reply = http.get(f"/rooms/{room_id}/history")
        assert reply.status_code == 200, reply.text
        frames = [base64.b64decode(m) for m in reply.json()["messages"]]
        if len(frames) >= count or time.monotonic() > deadline:
            return frames
        time.sleep(0.01)


def signed_client(base_url: str, signer: RequestSigner) -> httpx.Client:
    return httpx.Client(base_url=base_url, auth=SignatureAuth(signer), timeout=5)


def websocket_upgrade_status(port: int) -> int:
    request = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(1024).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def stream_config_json(url: str, name: str) -> dict[str, object]:
    async def info() -> dict[str, object]:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            reply = await nc.request(f"$JS.API.STREAM.INFO.{name}", b"", timeout=2)
        finally:
            await nc.close()
        config: dict[str, object] = json.loads(reply.data)["config"]
        return config

    return asyncio.run(info())


def run_failing(args: Sequence[str], within: float = 10) -> tuple[int, str, str, float]:
    """Exit status, stdout, stderr and seconds taken of a serve that should fail. One
    that is still running after ``within`` is killed, with the nats-server it started."""
    began = time.monotonic()
    try:
        done = subprocess.run([str(SCRIPT), "serve", *args], capture_output=True, text=True,
                              timeout=within, check=False)
    except subprocess.TimeoutExpired:
        if "--data-dir" in args:
            for pid in servers_on(Path(args[list(args).index("--data-dir") + 1])):
                os.kill(pid, signal.SIGKILL)
        raise
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began
