"""The read strategies on plain nats-py, and the ``Strategy`` protocol every strategy
follows (the registry itself is ``_registry.py``). Each reads the newest page of a stream
and is timed by ``time_case``.

Every strategy starts from stream info, as a real history read must: it is what tells
where the newest page is.
"""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from ._measure import Case, Measure, Measurement, Reader, time_case
from ._nats import DirectBatchGet, connect
from ._plan import Dataset, Plan

__all__ = [
    "BatchDirectGet",
    "Env",
    "Pending",
    "PipelinedGetMsg",
    "Probe",
    "ProbeResult",
    "SeedSequential",
    "Strategy",
    "newest_page",
]

Page = list[tuple[int, bytes]]
#: fetch(lo, hi) -> the stored messages with lo <= seq <= hi, ascending.
FetchRange = Callable[[int, int], Awaitable[Page]]


@dataclass(frozen=True, slots=True)
class Env:
    """What a strategy may use: the run's nats-server, the data dir, the plan."""

    url: str
    data_dir: Path
    plan: Plan


class Strategy(Protocol):
    @property
    def name(self) -> str:
        """Short id, used in the JSON and the ratios."""
        ...

    @property
    def title(self) -> str:
        """Column heading in the markdown table and legend in the plot."""
        ...

    def unavailable(self) -> str | None:
        """Why this strategy cannot run here, or None."""
        ...

    def open(self, env: Env) -> AbstractContextManager[Measure]:
        """Set up whatever the strategy needs for the whole run (a server, a client
        process) and yield the function that times one round."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeResult:
    #: One table: every row has the same keys, which become the columns.
    rows: list[dict[str, Any]]
    note: str


class Probe(Protocol):
    """A figure that is not one strategy's latency (load, memory)."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str: ...

    def unavailable(self) -> str | None: ...

    def needs(self, plan: Plan) -> tuple[Dataset, ...]:
        """Datasets the probe reads, to be filled with the others."""
        ...

    def run(self, env: Env) -> ProbeResult: ...


async def newest_page(fetch: FetchRange, first: int, last: int, stored: int, limit: int) -> Page:
    """The newest ``limit`` stored messages, fetched in windows going back from ``last``.

    Each window is widened by the stream's deletion density, so 10% deletions cost about
    one round, not one per hole; a window that still comes up short is followed by
    another below it (R10: deletions never shrink the page).
    """
    span = last - first + 1
    chunks: list[Page] = []
    have, hi = 0, last
    while have < limit and hi >= first:
        need = limit - have
        width = need if stored >= span else math.ceil(need * span / max(stored, 1) * 1.05)
        lo = max(first, hi - width + 1)
        chunk = await fetch(lo, hi)
        chunks.append(chunk)
        have, hi = have + len(chunk), lo - 1
    page = [msg for chunk in reversed(chunks) for msg in chunk]
    return page[-limit:] if limit else []


class _AsyncioStrategy(abc.ABC):
    """A strategy written against plain nats-py on an asyncio loop of its own."""

    name: ClassVar[str]
    title: ClassVar[str]

    def unavailable(self) -> str | None:
        return None

    @contextmanager
    def open(self, env: Env) -> Iterator[Measure]:
        def measure(cases: Sequence[Case], warmup: int, repeats: int) -> list[Measurement]:
            return asyncio.run(self._measure(env.url, cases, warmup, repeats))

        yield measure

    async def _measure(
        self, url: str, cases: Sequence[Case], warmup: int, repeats: int
    ) -> list[Measurement]:
        async with connect(url) as nc:
            read = await self.reader(nc)
            return [await time_case(self.name, read, c, warmup, repeats) for c in cases]

    @abc.abstractmethod
    async def reader(self, nc: Client) -> Reader: ...


class SeedSequential(_AsyncioStrategy):
    """The seed's method: stream info, then one get_msg round trip per sequence, newest
    first, stepping over deleted ones until the page is full."""

    name = "seed_sequential"
    title = "1. sequential get_msg (seed)"

    async def reader(self, nc: Client) -> Reader:
        js = nc.jetstream(timeout=30)

        async def read(stream: str, limit: int) -> Page:
            state = (await js.stream_info(stream)).state
            page: Page = []
            seq = state.last_seq
            while len(page) < limit and seq >= state.first_seq:
                try:
                    msg = await js.get_msg(stream, seq)
                except NotFoundError:
                    pass  # a deleted sequence
                else:
                    page.append((seq, msg.data or b""))
                seq -= 1
            page.reverse()
            return page

        return read


class PipelinedGetMsg(_AsyncioStrategy):
    """Stream info, then every get_msg of a window in flight at once."""

    name = "pipelined_get_msg"
    title = "2. pipelined get_msg"

    async def reader(self, nc: Client) -> Reader:
        js = nc.jetstream(timeout=30)

        async def one(stream: str, seq: int) -> tuple[int, bytes] | None:
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                return None
            return (seq, msg.data or b"")

        async def read(stream: str, limit: int) -> Page:
            state = (await js.stream_info(stream)).state

            async def fetch(lo: int, hi: int) -> Page:
                got = await asyncio.gather(*(one(stream, s) for s in range(lo, hi + 1)))
                return [m for m in got if m is not None]

            return await newest_page(fetch, state.first_seq, state.last_seq, state.messages, limit)

        return read


class BatchDirectGet(_AsyncioStrategy):
    """Stream info, then one batch direct get per window: the floor, plain nats-py."""

    name = "batch_direct_get"
    title = "3. batch direct get (floor)"

    async def reader(self, nc: Client) -> Reader:
        js = nc.jetstream(timeout=30)
        getter = DirectBatchGet(nc)
        await getter.start()

        async def read(stream: str, limit: int) -> Page:
            state = (await js.stream_info(stream)).state

            async def fetch(lo: int, hi: int) -> Page:
                return await getter.range(stream, lo, hi)

            return await newest_page(fetch, state.first_seq, state.last_seq, state.messages, limit)

        return read


@dataclass(frozen=True, slots=True)
class Pending:
    """A registry slot for a strategy or probe whose code cannot run here."""

    name: str
    title: str
    reason: str

    def unavailable(self) -> str | None:
        return self.reason

    def open(self, env: Env) -> AbstractContextManager[Measure]:
        raise RuntimeError(f"{self.name} is not available: {self.reason}")

    def needs(self, plan: Plan) -> tuple[Dataset, ...]:
        return ()

    def run(self, env: Env) -> ProbeResult:
        raise RuntimeError(f"{self.name} is not available: {self.reason}")
