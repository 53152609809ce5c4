"""perform_sequence, after python-effect's testing helper: a test lists the exact ordered
(effect, result) pairs a machine must yield, and what each one answers (a value to send
in, or an exception instance to throw in). Any other effect, a missing one, an extra one,
or an error raised before the last step fails the test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import pytest

from roomkeeper.core import Effect, KeyId, Machine, RoomId, encode_keyid, new_room_id

T = TypeVar("T")

Step = tuple[Effect, Any]


def perform_sequence(machine: Machine[T], steps: Sequence[Step]) -> T:
    """Run ``machine`` against ``steps``; return its answer. An error the machine raises
    after the last step propagates (wrap the call in pytest.raises)."""
    answer: Any = None
    for index, (expected, result) in enumerate(steps):
        try:
            effect = _advance(machine, answer)
        except StopIteration as stop:
            pytest.fail(f"machine returned {stop.value!r} instead of step {index}: {expected!r}")
        except Exception as exc:
            pytest.fail(f"machine raised {exc!r} instead of step {index}: {expected!r}")
        assert effect == expected, f"step {index}: got {effect!r}, expected {expected!r}"
        answer = result
    try:
        extra = _advance(machine, answer)
    except StopIteration as stop:
        value: T = stop.value
        return value
    pytest.fail(f"unexpected effect after the last step: {extra!r}")


def _advance(machine: Machine[Any], answer: Any) -> Effect:
    if isinstance(answer, BaseException):
        return machine.throw(answer)
    return machine.send(answer)


def keyid(n: int) -> KeyId:
    """A valid keyid, distinct for each n in 0..255."""
    return encode_keyid(bytes([n]) * 32)


def room_id(n: int) -> RoomId:
    return new_room_id(bytes([n]) * 16)
