"""The in-memory deployment: every port in process, behaving like JetStream and KV.

One MemoryServer is shared by the Bus and the StreamStore, so a core publish on a
room's subject lands in the room's stream exactly as it would on NATS (R3). It backs
``roomkeeper serve --memory`` and test suites; tests/contract checks it against the
real adapters so that it cannot drift from them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from roomkeeper.core import StreamLimits
from roomkeeper.ports import Deployment

from ._bus import DEFAULT_SUBSCRIPTION_BUFFER, MemoryBus, Subscription
from ._clock import ManualClock
from ._kv import MemoryNonceStore, MemoryRoomStore
from ._server import MemoryServer
from ._streams import MemoryStreamStore
from ._subjects import subject_matches, subjects_overlap

__all__ = [
    "DEFAULT_SUBSCRIPTION_BUFFER",
    "ManualClock",
    "MemoryBus",
    "MemoryNonceStore",
    "MemoryRoomStore",
    "MemoryServer",
    "MemoryStreamStore",
    "Subscription",
    "memory_deployment",
    "subject_matches",
    "subjects_overlap",
]

_NO_LIMITS = StreamLimits()


def memory_deployment(
    *,
    jetstream: bool = True,
    clock: Callable[[], float] = time.time,
    entropy: Callable[[int], bytes] = os.urandom,
    replicas: int = 1,
    limits: StreamLimits = _NO_LIMITS,
) -> Deployment:
    """A complete Deployment in memory. ``jetstream=False`` wires no StreamStore (R2):
    publishes still reach subscribers, and nothing captures them."""
    server = MemoryServer(clock)
    return Deployment(
        rooms=MemoryRoomStore(),
        nonces=MemoryNonceStore(clock),
        bus=MemoryBus(server),
        streams=MemoryStreamStore(server) if jetstream else None,
        clock=clock,
        entropy=entropy,
        replicas=replicas,
        limits=limits,
    )
