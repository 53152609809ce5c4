"""A byte-weighted semaphore for the bridge loop (see reads.py, "Bytes in flight")."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

__all__ = ["ByteBudget"]


class ByteBudget:
    """A byte-weighted semaphore on the bridge loop: holders queue in order (so a large
    round is not overtaken forever by small ones) until their weight is free."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        #: The most ever held at once (the tests check the bound).
        self.peak = 0
        self._queue: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, weight: int) -> AsyncIterator[None]:
        weight = min(weight, self.capacity)  # a round bigger than all of it runs alone
        await self._acquire(weight)
        try:
            yield
        finally:
            self._release(weight)

    async def _acquire(self, weight: int) -> None:
        if not self._queue and self.in_use + weight <= self.capacity:
            self._take(weight)
            return
        waiter = asyncio.get_running_loop().create_future()
        entry = (weight, waiter)
        self._queue.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release(weight)  # granted just as we were cancelled
            else:
                # Task.cancel() cancels the future at once; _grant() may already have
                # dropped the entry (without taking its weight) before we got here.
                with suppress(ValueError):
                    self._queue.remove(entry)
                self._grant()  # we may have been the head that blocked others
            raise

    def _take(self, weight: int) -> None:
        self.in_use += weight
        self.peak = max(self.peak, self.in_use)

    def _release(self, weight: int) -> None:
        self.in_use -= weight
        self._grant()

    def _grant(self) -> None:
        while self._queue:
            weight, waiter = self._queue[0]
            if waiter.done():  # cancelled, its task not yet run: it takes nothing
                self._queue.popleft()
                continue
            if self.in_use + weight > self.capacity:
                return
            self._queue.popleft()
            self._take(weight)
            waiter.set_result(None)
