"""Fakes for tests: the memory deployment, a manual clock, and the fault-injecting,
call-recording wrappers that work around any implementation of the ports."""

from roomkeeper.adapters.faults import (
    BusWrapper,
    Call,
    CallLog,
    Faults,
    NonceStoreWrapper,
    RoomStoreWrapper,
    StreamStoreWrapper,
    wrap_deployment,
)
from roomkeeper.adapters.memory import ManualClock, MemoryServer, memory_deployment

__all__ = [
    "BusWrapper",
    "Call",
    "CallLog",
    "Faults",
    "ManualClock",
    "MemoryServer",
    "NonceStoreWrapper",
    "RoomStoreWrapper",
    "StreamStoreWrapper",
    "memory_deployment",
    "wrap_deployment",
]
