"""A clock that only moves when told to, for deterministic tests of expiry."""

from __future__ import annotations

__all__ = ["ManualClock"]


class ManualClock:
    """Unix seconds, starting at ``start`` and moving only through ``advance``.

    Pass it as the ``clock`` of a memory deployment: stream ages, duplicate windows
    and nonce expiry then follow it instead of the wall clock.
    """

    def __init__(self, start: float = 1_733_300_000.0) -> None:
        self._now = start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock never goes backwards")
        self._now += seconds
