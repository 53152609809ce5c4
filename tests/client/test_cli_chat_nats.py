"""The terminal client on real NATS: sending over core NATS and JetStream, following live,
and ``follow`` in its own process ending with status 0 on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from roomkeeper.adapters.nats.deployment import open_nats_deployment
from roomkeeper.client import Via
from tests.client.test_cli_chat import (
    Terminal,
    follow_until,
    make_terminal,
    serve_app,
    shared_room,
)
from tests.conftest import NatsServer


@pytest.fixture
async def server(nursery: trio.Nursery, nats_server: NatsServer) -> str:
    deployment_ready: trio.Event = trio.Event()
    urls: list[str] = []

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_nats_deployment(nats_server.url) as deployment, \
                trio.open_nursery() as inner:
            urls.append(await serve_app(inner, deployment))
            deployment_ready.set()
            task_status.started()
            await trio.sleep_forever()

    await nursery.start(run)
    await deployment_ready.wait()
    return urls[0]


def nats_terminal(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str,
                  server: str, nats_server: NatsServer) -> Terminal:
    terminal = make_terminal(capsys, tmp_path, name, server)
    terminal.nats = nats_server.url
    return terminal


@pytest.fixture
def alice(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: str,
          nats_server: NatsServer) -> Terminal:
    return nats_terminal(capsys, tmp_path, "alice", server, nats_server)


@pytest.fixture
def bob(capsys: pytest.CaptureFixture[str], tmp_path: Path, server: str,
        nats_server: NatsServer) -> Terminal:
    return nats_terminal(capsys, tmp_path, "bob", server, nats_server)


async def history_texts(terminal: Terminal, room: str, count: int) -> list[str]:
    """The history once it has ``count`` lines (a core publish is stored a moment
    after it is sent)."""
    with trio.fail_after(5):
        while True:
            lines = (await terminal.ok("history", room)).splitlines()
            if len(lines) >= count:
                return [line.split("  ")[-1] for line in lines]
            await trio.sleep(0.01)


async def test_send_over_core_nats_and_jetstream(alice: Terminal, bob: Terminal) -> None:
    room = await shared_room(alice, bob)
    await alice.ok("send", room, "core")  # --via nats is the default
    await history_texts(bob, room, 1)
    await bob.ok("send", room, "acked", "--via", "jetstream")
    assert await history_texts(alice, room, 2) == ["core", "acked"]


async def test_jetstream_into_an_ephemeral_room_is_a_clear_error(alice: Terminal) -> None:
    room = (await alice.ok("rooms", "create", "lobby", "--ephemeral")).strip()
    error = await alice.fails("send", room, "x", "--via", "jetstream")
    assert error == f"roomkeeper send: room {room} has no stream"


async def test_follow_over_nats(alice: Terminal, bob: Terminal,
                                capsys: pytest.CaptureFixture[str]) -> None:
    room = await shared_room(alice, bob)
    await alice.ok("send", room, "before", "--via", "http")
    seen = await follow_until(
        ["follow", room, "--server", bob.server, "--nats", bob.nats,
         "--identity", str(bob.identity_path)], capsys, "out", "before",
        # Not through alice's terminal: it would read (and drop) what bob's prints.
        then=lambda: alice.send_with_sdk(room, "after", Via.NATS), then_text="after")
    assert [line.split("  ")[-1] for line in seen.splitlines()] == ["before", "after"]


async def read_until(stream: trio.abc.ReceiveStream, text: bytes, buffer: bytearray) -> None:
    with trio.fail_after(10):
        while text not in buffer:
            chunk = await stream.receive_some()
            assert chunk, f"the process ended before printing {text!r}: {bytes(buffer)!r}"
            buffer += chunk


async def test_follow_in_its_own_process_exits_0_on_ctrl_c(alice: Terminal,
                                                           bob: Terminal) -> None:
    room = await shared_room(alice, bob)
    await alice.ok("send", room, "before", "--via", "http")
    argv = [sys.executable, "-m", "roomkeeper.adapters.cli_chat", "follow", room,
            "--server", bob.server, "--nats", bob.nats, "--identity", str(bob.identity_path)]
    process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stderr is not None
        out = bytearray()
        await read_until(process.stdout, b"before\n", out)
        await alice.ok("send", room, "live")
        await read_until(process.stdout, b"live\n", out)
        os.kill(process.pid, signal.SIGINT)
        with trio.fail_after(10):
            status = await process.wait()
        errors = await process.stderr.receive_some()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert (status, errors) == (0, b""), errors.decode()
