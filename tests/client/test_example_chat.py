"""examples/chat.py: in process, as a script with --memory, and against a real
``roomkeeper serve --nats`` subprocess on the session's nats-server."""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import NatsServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "chat.py"
ROOMKEEPER = Path(sys.executable).parent / "roomkeeper"
STARTUP_TIMEOUT = 20.0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, check=False)


async def test_the_memory_run_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    await example.run(example.memory_backend)
    out = capsys.readouterr().out
    assert "reloaded: 4 messages, all verified and decrypted" in out
    assert out.endswith("ok: every message round-tripped\n")


def test_a_mismatch_is_a_round_trip_error() -> None:
    example = load_example()
    with pytest.raises(example.RoundTripError):
        example.check("the history", ["something else"])


def test_no_server_exits_1_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    nats_url = f"nats://127.0.0.1:{free_port()}"
    status = load_example().main(["--url", f"http://127.0.0.1:{free_port()}",
                                  "--nats", nats_url])
    assert status == 1
    assert capsys.readouterr().err.startswith(f"chat example failed: cannot reach {nats_url}")


@pytest.mark.slow  # the same run as test_the_memory_run_in_process, plus an interpreter start
def test_the_script_with_memory() -> None:
    result = run_example("--memory")
    assert result.returncode == 0, result.stderr
    assert "ok: every message round-tripped" in result.stdout


def _wait_for_serving(process: subprocess.Popen[str]) -> str:
    """The 'serving on URL' line of ``roomkeeper serve``; fails with its output."""
    assert process.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    seen = []
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline()
            seen.append(line)
            if "serving on " in line:
                return line.split("serving on ", 1)[1].strip()
    raise AssertionError(f"roomkeeper serve did not start: {''.join(seen)}")


@pytest.fixture
def served(nats_server: NatsServer) -> Iterator[str]:
    """``roomkeeper serve --nats`` on a free loopback port; its URL. Stopped by pid."""
    bind = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [str(ROOMKEEPER), "serve", "--nats", nats_server.url, "--bind", bind,
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        yield _wait_for_serving(process)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_the_script_against_roomkeeper_serve(served: str, nats_server: NatsServer) -> None:
    result = run_example("--url", served, "--nats", nats_server.url)
    assert result.returncode == 0, result.stderr
    assert "alice (nats):" in result.stdout and "bob (jetstream):" in result.stdout
    assert "reloaded: 4 messages, all verified and decrypted" in result.stdout
