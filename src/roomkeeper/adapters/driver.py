"""The driver: runs a core use-case machine by performing each effect through a port.

It makes no decisions: the machine decides, the driver does the I/O and feeds back the
result, or throws a port's RoomkeeperError back in so the machine can react (a lost
compare-and-set, a missing stream). Anything else is a bug and propagates.
"""

from __future__ import annotations

from typing import TypeVar

from ..core import (
    DeleteRoom,
    DeleteStream,
    Effect,
    EnsureStream,
    FetchBatch,
    ListRooms,
    LoadRoom,
    Machine,
    Publish,
    PutRoom,
    RoomkeeperError,
    StreamInfo,
    Wiring,
)
from ..ports import Deployment, StreamStore

__all__ = ["drive", "wiring_of"]

T = TypeVar("T")


def wiring_of(deployment: Deployment) -> Wiring:
    return Wiring(jetstream=deployment.streams is not None,
                  replicas=deployment.replicas, limits=deployment.limits)


async def drive(machine: Machine[T], deployment: Deployment) -> T:
    result: object = None
    error: RoomkeeperError | None = None
    while True:
        try:
            effect = machine.send(result) if error is None else machine.throw(error)
        except StopIteration as stop:
            value: T = stop.value
            return value
        result, error = None, None
        try:
            result = await _perform(effect, deployment)
        except RoomkeeperError as exc:
            error = exc


async def _perform(effect: Effect, deployment: Deployment) -> object:
    match effect:
        case LoadRoom(room_id):
            return await deployment.rooms.get(room_id)
        case PutRoom(room, expected_revision):
            return await deployment.rooms.put(room, expected_revision)
        case DeleteRoom(room_id):
            await deployment.rooms.delete(room_id)
            return None
        case ListRooms(member):
            return await deployment.rooms.list_by_member(member)
        case Publish(subject, data, persisted=False):
            await deployment.bus.publish(subject, data)
            return None
    return await _perform_stream(effect, _streams(deployment, effect))


async def _perform_stream(effect: Effect, streams: StreamStore) -> object:
    match effect:
        case EnsureStream(spec):
            await streams.ensure(spec)
            return None
        case StreamInfo(name):
            return await streams.info(name)
        case FetchBatch(name, start_seq, count):
            return await streams.fetch(name, start_seq, count)
        case DeleteStream(name):
            await streams.delete(name)
            return None
        case Publish(subject, data):
            return await streams.publish(subject, data)
    raise TypeError(f"not an effect: {effect!r}")


def _streams(deployment: Deployment, effect: Effect) -> StreamStore:
    if deployment.streams is None:
        # The machines never ask for a stream without JetStream (R2): this is a bug.
        raise RuntimeError(f"{type(effect).__name__} needs JetStream, which is not wired in")
    return deployment.streams
