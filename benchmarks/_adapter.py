"""Strategy 4: roomkeeper's own read path without HTTP: ``NatsStreamStore.info`` and
``fetch`` through the trio <-> asyncio bridge, paged by the core's ``HistorySlicer``,
exactly as the history use case's driver performs its effects."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import trio

from roomkeeper.adapters.nats import open_connection
from roomkeeper.adapters.nats.streams import NatsStreamStore
from roomkeeper.core import HistorySlicer, Page, PageRequest

from ._measure import Case, Measure, Measurement, time_case
from ._strategies import Env

__all__ = ["AdapterFetch"]


class AdapterFetch:
    name = "adapter_fetch"
    title = "4. StreamStore.fetch (adapter)"

    def unavailable(self) -> str | None:
        return None

    @contextmanager
    def open(self, env: Env) -> Iterator[Measure]:
        def measure(cases: Sequence[Case], warmup: int, repeats: int) -> list[Measurement]:
            return trio.run(self._measure, env.url, cases, warmup, repeats)

        yield measure

    async def _measure(
        self, url: str, cases: Sequence[Case], warmup: int, repeats: int
    ) -> list[Measurement]:
        async with open_connection(url, name="roomkeeper-benchmark") as conn:
            store = NatsStreamStore(conn)

            async def read(stream: str, limit: int) -> list[tuple[int, bytes]]:
                state = await store.info(stream)
                if state is None:
                    return []
                slicer = HistorySlicer(stream, state, PageRequest(limit=limit))
                while not isinstance(step := slicer.next_step(), Page):
                    slicer.receive(await store.fetch(step.stream, step.start_seq, step.count))
                return [(m.seq, m.data) for m in step.messages]

            return [await time_case(self.name, read, c, warmup, repeats) for c in cases]
