"""Traffic for the failure tests: publishers that remember every acked frame, history
readers and room creators, each a bounded loop over one signed httpx client, tallying
what they got back; then a full read of each room's history to check the acked frames.

A 503 must carry Retry-After and counts as "briefly unavailable"; any other failure (a
5xx other than 503, an unexpected status, a transport error) is recorded as an error,
and the tests require none.
"""

from __future__ import annotations

import base64
import collections
import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

__all__ = ["Tally", "Workload", "read_all", "verify_acked"]

#: Upper bound on iterations of any one worker loop (they normally stop on an event).
MAX_ITERATIONS = 100_000
#: Pause after a 503, as a client honouring Retry-After would (shortened: seconds matter).
BACKOFF = 0.05


@dataclass
class Tally:
    ok: collections.Counter[str] = field(default_factory=collections.Counter)
    unavailable: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: list[str] = field(default_factory=list)
    #: Seconds of the slowest request, whatever its answer.
    slowest: float = 0.0
    #: Longest run of back-to-back 503s that any one worker saw, in seconds.
    longest_outage: float = 0.0
    #: (monotonic time, op) of every success, to measure gaps in service.
    successes: list[tuple[float, str]] = field(default_factory=list)

    def as_figures(self) -> dict[str, object]:
        return {"ok": dict(self.ok), "503": dict(self.unavailable),
                "503_total": sum(self.unavailable.values()), "errors": len(self.errors),
                "slowest_request_s": round(self.slowest, 3),
                "longest_503_run_s": round(self.longest_outage, 3)}

    def ok_between(self, op: str, start: float, end: float) -> int:
        return sum(1 for t, o in self.successes if o == op and start <= t < end)

    def longest_gap(self, op: str, start: float, end: float) -> float:
        """The longest time within [start, end] with no success of ``op``."""
        times = [start, *(t for t, o in self.successes if o == op and start <= t <= end), end]
        return max(b - a for a, b in itertools.pairwise(times))


class _Outage:
    """One worker's current run of 503s."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.since: float | None = None

    def saw(self, status: int) -> None:
        now = time.monotonic()
        if status == 503:
            self.since = now if self.since is None else self.since
            self.tally.longest_outage = max(self.tally.longest_outage, now - self.since)
        else:
            self.since = None


class Workload:
    def __init__(self, http: httpx.AsyncClient, rooms: list[str], frame_size: int = 64) -> None:
        self.http = http
        self.rooms = rooms
        self.frame_size = frame_size
        self.tally = Tally()
        #: room id -> [(seq, frame)] in publish order, for every 201.
        self.acked: dict[str, list[tuple[int, bytes]]] = {room: [] for room in rooms}
        self.created: list[str] = []
        self.stop = trio.Event()

    async def request(self, op: str, method: str, url: str, expect: int,
                      outage: _Outage, **kwargs: Any) -> httpx.Response | None:
        """One request; the response when it is ``expect``, else None (tallied)."""
        started = time.monotonic()
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.tally.errors.append(f"{op}: {type(exc).__name__}: {exc}")
            return None
        finally:
            self.tally.slowest = max(self.tally.slowest, time.monotonic() - started)
        outage.saw(response.status_code)
        if response.status_code == expect:
            self.tally.ok[op] += 1
            self.tally.successes.append((time.monotonic(), op))
            return response
        if response.status_code == 503 and response.headers.get("retry-after", "").isdigit():
            self.tally.unavailable[op] += 1
            await trio.sleep(BACKOFF)
            return None
        self.tally.errors.append(f"{op}: {response.status_code} {response.text[:160]}")
        return None

    def frame(self, room_index: int, n: int) -> bytes:
        label = f"room {room_index} frame {n} ".encode()
        return label + b"\x00" * max(0, self.frame_size - len(label))

    async def publisher(self, room_index: int) -> None:
        room, outage = self.rooms[room_index], _Outage(self.tally)
        for n in range(MAX_ITERATIONS):
            if self.stop.is_set():
                return
            frame = self.frame(room_index, n)
            response = await self.request("publish", "POST", f"/rooms/{room}/messages", 201,
                                          outage, content=frame)
            if response is not None:
                self.acked[room].append((int(response.json()["seq"]), frame))

    async def reader(self, seed: int) -> None:
        pick, outage = random.Random(seed), _Outage(self.tally)
        for _ in range(MAX_ITERATIONS):
            if self.stop.is_set():
                return
            room = pick.choice(self.rooms)
            await self.request("history", "GET", f"/rooms/{room}/history?limit=50", 200,
                               outage)

    async def creator(self) -> None:
        outage = _Outage(self.tally)
        for n in range(MAX_ITERATIONS):
            if self.stop.is_set():
                return
            response = await self.request("create", "POST", "/rooms", 201, outage,
                                          json={"name": f"created {n}"})
            if response is not None:
                self.created.append(str(response.json()["id"]))

    def start(self, nursery: trio.Nursery, readers: int = 2) -> None:
        for index in range(len(self.rooms)):
            nursery.start_soon(self.publisher, index)
        for seed in range(readers):
            nursery.start_soon(self.reader, seed)
        nursery.start_soon(self.creator)


async def read_all(http: httpx.AsyncClient, room: str,
                   attempts: int = 50) -> list[tuple[int, bytes]]:
    """The room's whole history as (seq, frame), paging forward 1000 at a time. The
    streams here never lose a message, so each page's sequences are contiguous."""
    stored: list[tuple[int, bytes]] = []
    after = 0
    for _ in range(MAX_ITERATIONS):
        page = await _page(http, room, after, attempts)
        frames = [base64.b64decode(m) for m in page["messages"]]
        if not frames:
            return stored
        first, last = page["first_seq"], page["last_seq"]
        assert last - first + 1 == len(frames), f"a gap in {room}: {first}..{last}"
        stored.extend(zip(range(first, last + 1), frames, strict=True))
        after = last
        if not page["has_more"]:
            return stored
    raise AssertionError("history paging did not end")


async def _page(http: httpx.AsyncClient, room: str, after: int, attempts: int) -> dict[str, Any]:
    for _ in range(attempts):
        reply = await http.get(f"/rooms/{room}/history", params={"after": after, "limit": 1000})
        if reply.status_code == 200:
            page: dict[str, Any] = reply.json()
            return page
        assert reply.status_code == 503, reply.text
        await trio.sleep(0.1)
    raise AssertionError(f"history of {room} still unavailable after {attempts} tries")


def verify_acked(acked: list[tuple[int, bytes]], stored: list[tuple[int, bytes]]) -> int:
    """Every acked frame is stored at its acked sequence; nothing is stored twice; the
    publisher's order is the stream's order. The number of acked frames missing (0)."""
    at = dict(stored)
    frames = [frame for _, frame in stored]
    assert len(set(frames)) == len(frames), "a frame is stored twice"
    missing = [seq for seq, frame in acked if at.get(seq) != frame]
    seqs = [seq for seq, _ in acked]
    assert seqs == sorted(seqs), "acks out of publish order"
    positions = {frame: i for i, frame in enumerate(frames)}
    order = [positions[frame] for _, frame in acked if frame in positions]
    assert order == sorted(order), "stored out of publish order"
    return len(missing)
