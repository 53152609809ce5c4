"""Fault injection and call recording around any implementation of the ports.

Wrappers, not monkeypatching: ``wrap_deployment(deployment, faults, log)`` returns a
Deployment whose every port goes through a gate that first records the call in a
CallLog, then applies the Faults plan (delay, then maybe fail), then calls the real
port. Operations are named ``"<port>.<method>"``: ``streams.ensure``,
``streams.info``, ``streams.fetch``, ``streams.publish``, ``streams.delete_message``,
``streams.delete``, ``rooms.get``, ``rooms.put``, ``rooms.delete``,
``rooms.list_by_member``, ``nonces.add``, ``bus.publish``, ``bus.subscribe`` and
``check_ready``. A plan may name one operation or a glob such as ``"streams.*"``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase

import trio

from roomkeeper.core import (
    BackendUnavailable,
    KeyId,
    Room,
    RoomId,
    StoredMessage,
    StreamSpec,
    StreamState,
    VersionedRoom,
)
from roomkeeper.ports import Bus, Deployment, NonceStore, RoomStore, StreamStore

__all__ = [
    "BusWrapper",
    "Call",
    "CallLog",
    "ErrorSpec",
    "Faults",
    "NonceStoreWrapper",
    "RoomStoreWrapper",
    "StreamStoreWrapper",
    "wrap_deployment",
]

#: What a failing call raises: an exception, or a factory for a fresh one each time
#: (an exception class with a no-argument constructor, such as BackendUnavailable).
ErrorSpec = BaseException | Callable[[], BaseException]


@dataclass(frozen=True, slots=True)
class Call:
    op: str
    args: tuple[object, ...]


class CallLog:
    """Every call that reached a wrapped port, in order, including the ones that the
    fault plan then failed (the caller did attempt them)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def record(self, op: str, args: tuple[object, ...]) -> None:
        self.calls.append(Call(op, args))

    @property
    def ops(self) -> list[str]:
        return [call.op for call in self.calls]

    def clear(self) -> None:
        self.calls.clear()


@dataclass(slots=True)
class _Failure:
    pattern: str
    #: Matching calls still to let through before the failing one; None: fail them all.
    countdown: int | None
    error: ErrorSpec


class Faults:
    """A switchable plan of failures and delays.

    ``fail(op)`` fails every matching call until ``heal(op)``; ``fail(op, nth=n)``
    fails only the n-th matching call counted from now, once. ``delay(op, s)`` makes
    matching calls wait ``s`` seconds (trio time) before going ahead.
    """

    def __init__(self) -> None:
        self._failures: list[_Failure] = []
        self._delays: dict[str, float] = {}

    def fail(self, op: str, *, nth: int | None = None,
             error: ErrorSpec = BackendUnavailable) -> None:
        if nth is not None and nth < 1:
            raise ValueError("nth counts calls from 1")
        countdown = None if nth is None else nth - 1
        self._failures.append(_Failure(op, countdown, error))

    def delay(self, op: str, seconds: float) -> None:
        self._delays[op] = seconds

    def heal(self, op: str | None = None) -> None:
        """Drop the failures and delays planned for ``op`` (exactly as it was given),
        or every one of them when op is None."""
        self._failures = [f for f in self._failures if op is not None and f.pattern != op]
        self._delays = {p: s for p, s in self._delays.items() if op is not None and p != op}

    async def check(self, op: str) -> None:
        """Called by the wrappers before each real call: waits, then maybe raises."""
        wait = sum(s for p, s in self._delays.items() if fnmatchcase(op, p))
        if wait > 0:
            await trio.sleep(wait)
        error = self._next_error(op)
        if error is not None:
            raise error

    def _next_error(self, op: str) -> BaseException | None:
        # Every matching plan counts the call, even when an earlier plan fires on it.
        fired = [f for f in list(self._failures) if fnmatchcase(op, f.pattern) and self._tick(f)]
        if not fired:
            return None
        error = fired[0].error
        return error if isinstance(error, BaseException) else error()

    def _tick(self, failure: _Failure) -> bool:
        """Count one matching call against ``failure``; True when it fails this call."""
        if failure.countdown is None:
            return True
        if failure.countdown > 0:
            failure.countdown -= 1
            return False
        self._failures.remove(failure)
        return True


class _Gate:
    def __init__(self, faults: Faults | None, log: CallLog | None) -> None:
        self._faults = faults
        self._log = log

    async def __call__(self, op: str, *args: object) -> None:
        if self._log is not None:
            self._log.record(op, args)
        if self._faults is not None:
            await self._faults.check(op)


class StreamStoreWrapper:
    def __init__(self, inner: StreamStore, faults: Faults | None = None,
                 log: CallLog | None = None) -> None:
        self.inner = inner
        self._gate = _Gate(faults, log)

    async def ensure(self, spec: StreamSpec) -> None:
        await self._gate("streams.ensure", spec)
        await self.inner.ensure(spec)

    async def info(self, name: str) -> StreamState | None:
        await self._gate("streams.info", name)
        return await self.inner.info(name)

    async def fetch(self, name: str, start_seq: int, count: int) -> tuple[StoredMessage, ...]:
        await self._gate("streams.fetch", name, start_seq, count)
        return await self.inner.fetch(name, start_seq, count)

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        await self._gate("streams.publish", subject, data, msg_id)
        return await self.inner.publish(subject, data, msg_id)

    async def delete_message(self, name: str, seq: int) -> None:
        await self._gate("streams.delete_message", name, seq)
        await self.inner.delete_message(name, seq)

    async def delete(self, name: str) -> None:
        await self._gate("streams.delete", name)
        await self.inner.delete(name)


class RoomStoreWrapper:
    def __init__(self, inner: RoomStore, faults: Faults | None = None,
                 log: CallLog | None = None) -> None:
        self.inner = inner
        self._gate = _Gate(faults, log)

    async def get(self, room_id: RoomId) -> VersionedRoom | None:
        await self._gate("rooms.get", room_id)
        return await self.inner.get(room_id)

    async def put(self, room: Room, expected_revision: int | None) -> int:
        await self._gate("rooms.put", room, expected_revision)
        return await self.inner.put(room, expected_revision)

    async def delete(self, room_id: RoomId) -> None:
        await self._gate("rooms.delete", room_id)
        await self.inner.delete(room_id)

    async def list_by_member(self, keyid: KeyId) -> tuple[Room, ...]:
        await self._gate("rooms.list_by_member", keyid)
        return await self.inner.list_by_member(keyid)


class NonceStoreWrapper:
    def __init__(self, inner: NonceStore, faults: Faults | None = None,
                 log: CallLog | None = None) -> None:
        self.inner = inner
        self._gate = _Gate(faults, log)

    async def add(self, keyid: KeyId, nonce: str, expires_at: float) -> bool:
        await self._gate("nonces.add", keyid, nonce, expires_at)
        return await self.inner.add(keyid, nonce, expires_at)


class BusWrapper:
    def __init__(self, inner: Bus, faults: Faults | None = None,
                 log: CallLog | None = None) -> None:
        self.inner = inner
        self._gate = _Gate(faults, log)

    async def publish(self, subject: str, data: bytes) -> None:
        await self._gate("bus.publish", subject, data)
        await self.inner.publish(subject, data)

    @asynccontextmanager
    async def subscribe(self, subject: str) -> AsyncIterator[AsyncIterator[bytes]]:
        await self._gate("bus.subscribe", subject)
        async with self.inner.subscribe(subject) as frames:
            yield frames


def wrap_deployment(deployment: Deployment, faults: Faults | None = None,
                    log: CallLog | None = None) -> Deployment:
    """The same deployment with every port (and check_ready) behind the gate."""
    gate = _Gate(faults, log)
    inner_ready = deployment.check_ready

    async def check_ready() -> None:
        await gate("check_ready")
        await inner_ready()

    streams = deployment.streams
    return dataclasses.replace(
        deployment,
        rooms=RoomStoreWrapper(deployment.rooms, faults, log),
        nonces=NonceStoreWrapper(deployment.nonces, faults, log),
        bus=BusWrapper(deployment.bus, faults, log),
        streams=None if streams is None else StreamStoreWrapper(streams, faults, log),
        check_ready=check_ready,
    )
