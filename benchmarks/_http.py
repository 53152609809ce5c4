"""Strategy 5 and the HTTP probes: signed ``GET /rooms/{id}/history`` against the real
HTTP server on a Hypercorn socket, measured from a separate client process.

The rooms are the benchmark's streams: each dataset's room record (owner and only member:
the benchmark's identity) is written to the rooms KV through roomkeeper's own
``NatsRoomStore``, so the server finds a room whose stream is already full.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import trio

from roomkeeper.adapters.nats import open_connection
from roomkeeper.adapters.nats.rooms import open_room_store
from roomkeeper.client.keys import Identity
from roomkeeper.core import Mode, Room

from ._measure import Case, Measure, Measurement
from ._plan import Dataset
from ._strategies import Env

__all__ = [
    "ClientWorker",
    "HttpError",
    "HttpHistory",
    "HttpServer",
    "bench_identity",
    "http_session",
    "job",
    "register_rooms",
]

_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT = 30.0
_JOB_TIMEOUT = 900.0


class HttpError(RuntimeError):
    pass


def bench_identity(data_dir: Path) -> Path:
    """The benchmark's signing identity, made once and kept with the data (0600)."""
    path = data_dir / "identity.json"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        Identity.generate().save(path)
    return path


def register_rooms(nats_url: str, identity: Path, datasets: Iterable[Dataset]) -> None:
    """Write each dataset's room record, owned by the benchmark identity."""
    owner = Identity.load(identity).keyid
    rooms = [Room(id=d.room_id, name=f"benchmark {d.label}", mode=Mode.MATRIX, owner=owner,
                  members=(owner,), created_at="2026-01-01T00:00:00Z") for d in datasets]

    async def put_all() -> None:
        async with open_connection(nats_url, name="roomkeeper-benchmark") as conn:
            store = await open_room_store(conn)
            for room in rooms:
                current = await store.get(room.id)
                if current is None or current.room != room:
                    await store.put(room, current.revision if current else None)

    trio.run(put_all)


class HttpServer:
    """``roomkeeper serve --nats URL`` on a free loopback port, as a child process of its
    own (so that its memory can be measured alone), stopped by its pid. Request logging
    stays at the default (info: one line per request) because it is part of the path."""

    def __init__(self, nats_url: str, log: Path) -> None:
        self._log = log.open("ab")
        cmd = [sys.executable, "-m", "roomkeeper.adapters.cli", "serve",
               "--nats", nats_url, "--bind", "127.0.0.1:0"]
        # The run is configured by its flags alone, not by the caller's ROOMKEEPER_*.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMKEEPER_")}
        self.proc = subprocess.Popen(cmd, cwd=_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=self._log, text=True)
        self.base_url = self._wait_for_address()

    def _wait_for_address(self) -> str:
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, _START_TIMEOUT, self.proc)
        prefix = "roomkeeper: serving on "
        if not line.startswith(prefix):
            self.stop()
            raise HttpError(f"the HTTP server did not start (said {line!r}); see {self._log.name}")
        return line.removeprefix(prefix).strip()

    def memory_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (the peak) of the server process, in KiB (Linux /proc)."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0])
        return fields

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the server drains and exits cleanly
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class ClientWorker:
    """``python -m benchmarks._http_client``: one JSON job per line, one answer per line."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._http_client"], cwd=_ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(_readline(self.proc.stdout, _JOB_TIMEOUT, self.proc))
        if "error" in answer:
            raise HttpError(f"HTTP client: {answer['error']}")
        return answer

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # end of jobs: the worker exits by itself
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _readline(stream: IO[str], timeout: float, proc: subprocess.Popen[str]) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    if not ready:
        raise HttpError(f"no answer from pid {proc.pid} within {timeout:.0f} s")
    line = stream.readline()
    if not line:
        raise HttpError(f"pid {proc.pid} exited with {proc.wait()}")
    return line


@contextmanager
def http_session(
    env: Env, datasets: Iterable[Dataset]
) -> Iterator[tuple[HttpServer, ClientWorker, Path]]:
    """Room records for ``datasets``, a fresh HTTP server and a client worker."""
    identity = bench_identity(env.data_dir)
    register_rooms(env.url, identity, datasets)
    logs = env.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    server = HttpServer(env.url, logs / "http-server.log")
    try:
        worker = ClientWorker(logs / "http-client.log")
        try:
            yield server, worker, identity
        finally:
            worker.stop()
    finally:
        server.stop()


def job(op: str, server: HttpServer, identity: Path, case: Case, **extra: Any) -> dict[str, Any]:
    d = case.dataset
    return {"op": op, "base_url": server.base_url, "identity": str(identity),
            "room_id": d.room_id, "backlog": d.backlog, "frame": d.frame,
            "deletes_pct": d.deletes_pct, "stream": case.stream, "limit": case.limit, **extra}


class HttpHistory:
    name = "http_history"
    title = "5. signed GET /history (HTTP)"

    def unavailable(self) -> str | None:
        return None

    @contextmanager
    def open(self, env: Env) -> Iterator[Measure]:
        with http_session(env, env.plan.datasets) as (server, worker, identity):

            def measure(cases: Sequence[Case], warmup: int, repeats: int) -> list[Measurement]:
                return [
                    Measurement(self.name, case, tuple(worker.run(job(
                        "time", server, identity, case, warmup=warmup, repeats=repeats
                    ))["samples"]))
                    for case in cases
                ]

            yield measure
