"""One stream's stored messages, with JetStream's sequence and limit conventions.

Pure bookkeeping: the caller passes the current time in, and limits (max_age,
max_msgs, the duplicate window) are applied lazily on every access, which is
indistinguishable from the server's eager expiry for anyone reading the stream.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from roomkeeper.core import StoredMessage, StreamSpec, StreamState

__all__ = ["StreamLog"]


@dataclass(frozen=True, slots=True)
class _Stored:
    data: bytes
    time: float


class StreamLog:
    """Invariant: ``_first`` is the lowest stored sequence, or ``_last + 1`` when the
    stream is empty; sequences are never reused, so ``_last`` only grows."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self._messages: dict[int, _Stored] = {}
        self._first = 1
        self._last = 0
        self._seen: dict[str, int] = {}
        # (publish time, msg_id), oldest first: lets the window expire in order.
        self._seen_order: deque[tuple[float, str]] = deque()

    def append(self, data: bytes, now: float, msg_id: str | None) -> int:
        """Store ``data`` and return its sequence; a msg_id seen within the duplicate
        window returns the original sequence, even if that message is gone since."""
        self.expire(now)
        if msg_id is not None and msg_id in self._seen:
            return self._seen[msg_id]
        self._last += 1
        self._messages[self._last] = _Stored(data, now)
        if msg_id is not None:
            self._seen[msg_id] = self._last
            self._seen_order.append((now, msg_id))
        self._enforce_max_msgs()
        return self._last

    def delete(self, seq: int, now: float) -> None:
        self.expire(now)
        self._drop(seq)

    def state(self, now: float) -> StreamState:
        self.expire(now)
        stored = len(self._messages)
        interior_gaps = self._last - self._first + 1 - stored
        return StreamState(self._first, self._last, stored, interior_gaps)

    def fetch(self, start_seq: int, count: int, now: float) -> tuple[StoredMessage, ...]:
        self.expire(now)
        low = max(start_seq, self._first)
        high = min(start_seq + count - 1, self._last)
        found = ((seq, self._messages.get(seq)) for seq in range(low, high + 1))
        return tuple(StoredMessage(seq, m.data) for seq, m in found if m is not None)

    def expire(self, now: float) -> None:
        """Apply max_age, max_msgs (a limit lowered by an update) and the duplicate
        window as of ``now``."""
        max_age = self.spec.limits.max_age_seconds
        while max_age is not None and self._messages:
            if self._messages[self._first].time + max_age > now:
                break
            self._drop(self._first)
        self._enforce_max_msgs()
        window = self.spec.duplicate_window_seconds
        while self._seen_order and self._seen_order[0][0] + window <= now:
            _, msg_id = self._seen_order.popleft()
            del self._seen[msg_id]

    def _enforce_max_msgs(self) -> None:
        # discard=old: the oldest stored messages make room for the newest.
        max_msgs = self.spec.limits.max_msgs
        while max_msgs is not None and len(self._messages) > max_msgs:
            self._drop(self._first)

    def _drop(self, seq: int) -> None:
        if self._messages.pop(seq, None) is None:
            return
        # Deleting the first message moves first_seq on to the next stored one, so
        # that gap stops counting as an interior deletion; last_seq never moves back.
        while self._first <= self._last and self._first not in self._messages:
            self._first += 1
