"""Unique names and values for the contract suites, so that tests never collide even
when a backend is shared between them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import trio

from roomkeeper.core import (
    KeyId,
    Mode,
    Room,
    StreamLimits,
    StreamSpec,
    encode_keyid,
    new_room_id,
    stream_config_for_room,
)

T = TypeVar("T")

#: Long enough for a real server under load, instant for memory.
DEADLINE = 2.0


def new_spec(*, max_msgs: int | None = None, max_age: float | None = None) -> StreamSpec:
    """A fresh room's stream spec, from the core's one stream-config function (R8)."""
    room_id = new_room_id(os.urandom(16))
    limits = StreamLimits(max_age_seconds=max_age, max_msgs=max_msgs)
    return stream_config_for_room(room_id, limits=limits)


def with_limits(spec: StreamSpec, *, max_msgs: int | None = None) -> StreamSpec:
    return dataclasses.replace(spec, limits=StreamLimits(max_msgs=max_msgs))


def new_keyid() -> KeyId:
    return encode_keyid(os.urandom(32))


def new_room(owner: KeyId, *others: KeyId, name: str = "contract") -> Room:
    return Room(
        id=new_room_id(os.urandom(16)),
        name=name,
        mode=Mode.MATRIX,
        owner=owner,
        members=(owner, *others),
        created_at="2026-12-04T15:00:00Z",
    )


def new_subject_prefix() -> str:
    return f"contract.{os.urandom(8).hex()}"


async def next_frame(frames: AsyncIterator[bytes]) -> bytes:
    with trio.fail_after(DEADLINE):
        return await anext(frames)


async def eventually(probe: Callable[[], Awaitable[T | None]]) -> T:
    """Poll ``probe`` until it gives a value: a core publish reaches a real stream
    asynchronously, so a reader may have to wait a moment for it."""
    with trio.fail_after(DEADLINE):
        while True:
            value = await probe()
            if value is not None:
                return value
            await trio.sleep(0.01)
