"""``python -m benchmarks._http_client``: the HTTP side of the benchmark, in a process of
its own so that client work never runs on the server's CPU time slice unnoticed.

It reads one JSON job per line on stdin and answers one JSON line on stdout:

- ``{"op": "time", ...case, "warmup": W, "repeats": R}`` -> ``{"samples": [s, ...]}``:
  signed ``GET /rooms/{id}/history?limit=N`` timed by ``time_case``, every answer checked.
- ``{"op": "load", ...case, "clients": C, "seconds": S}`` -> ``{"latencies": [...],
  "elapsed": s}``: C clients, each on its own connection, requesting back to back for S
  seconds after one fully checked request each.

Any failure answers ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import trio

from roomkeeper.client.http import HistoryPage, RoomsClient
from roomkeeper.client.keys import Identity

from ._measure import Case, Reader, WrongAnswer, check_page, time_case
from ._plan import Dataset, expected_page

Page = list[tuple[int, bytes]]
_NAME = "http_history"


def main() -> int:
    for line in sys.stdin:
        job = json.loads(line)
        try:
            result = trio.run(_run, job)
        except Exception as exc:  # reported to the harness, which decides what it means
            result = {"error": _describe(exc)}
        print(json.dumps(result), flush=True)
    return 0


def _describe(exc: BaseException) -> str:
    """The leaf errors, not "Exceptions from Trio nursery (1 sub-exception)"."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(sorted({_describe(e) for e in exc.exceptions}))
    return f"{type(exc).__name__}: {exc}"


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    case = Case(Dataset(job["backlog"], job["frame"], job["deletes_pct"]), job["stream"],
                job["limit"])
    identity = Identity.load(Path(job["identity"]))
    if job["op"] == "time":
        async with RoomsClient(job["base_url"], identity) as client:
            read = _reader(client, job["room_id"])
            m = await time_case(_NAME, read, case, job["warmup"], job["repeats"])
        return {"samples": list(m.samples)}
    if job["op"] == "load":
        return await _load(job, case, identity)
    raise ValueError(f"unknown op {job['op']!r}")


def _reader(client: RoomsClient, room_id: str) -> Reader:
    async def read(stream: str, limit: int) -> Page:
        return _pairs(await client.history(room_id, limit=limit))

    return read


def _pairs(page: HistoryPage) -> Page:
    """(seq, frame) pairs for check_page. The API gives the page's first and last
    sequence, and every benchmark frame starts with its own sequence number: the
    comparison with the expected frames checks both."""
    pairs = [(int.from_bytes(frame[:8], "big"), frame) for frame in page.frames]
    bounds = (pairs[0][0], pairs[-1][0]) if pairs else (None, None)
    if (page.first_seq, page.last_seq) != bounds:
        raise WrongAnswer(f"page says seqs {page.first_seq}..{page.last_seq}, frames {bounds}")
    return pairs


async def _load(job: dict[str, Any], case: Case, identity: Identity) -> dict[str, Any]:
    expected = expected_page(case.dataset, case.limit)
    clients: int = job["clients"]
    latencies: list[float] = []
    arrived, all_arrived, go = [0], trio.Event(), trio.Event()
    window = [0.0, 0.0]  # start, deadline: set once every client is connected

    async def client_loop() -> None:
        async with RoomsClient(job["base_url"], identity) as client:
            read = _reader(client, job["room_id"])
            # One fully checked request per client, which also opens its connection.
            check_page(_NAME, case, await read(case.stream, case.limit), expected)
            arrived[0] += 1
            if arrived[0] == clients:
                all_arrived.set()
            await go.wait()
            while time.perf_counter() < window[1]:
                t0 = time.perf_counter()
                page = await read(case.stream, case.limit)
                latencies.append(time.perf_counter() - t0)
                # Checked after the clock stops: length and both ends, cheap enough not
                # to starve the server of CPU on a 2-core machine.
                if len(page) != len(expected) or (page[0][0], page[-1][0]) != (
                    expected[0][0], expected[-1][0]
                ):
                    raise WrongAnswer(f"{_NAME} under load: a short or shifted page")

    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client_loop)
        await all_arrived.wait()
        window[0] = time.perf_counter()
        window[1] = window[0] + job["seconds"]
        go.set()
    return {"latencies": latencies, "elapsed": time.perf_counter() - window[0]}


if __name__ == "__main__":
    raise SystemExit(main())
