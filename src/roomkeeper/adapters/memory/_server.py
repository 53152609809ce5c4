"""The in-process "server" that the memory Bus and StreamStore share.

Like a NATS server with JetStream, it routes every publish two ways: to the matching
subscribers, and into the one stream whose subjects capture it (R3), whoever
published it. It is synchronous on purpose; the port adapters add the checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable

from roomkeeper.core import Conflict, StreamSpec

from ._stream import StreamLog
from ._subjects import subject_matches, subjects_overlap, valid_pattern, valid_subject

__all__ = ["Deliver", "MemoryServer"]

#: Called with each frame published on a subscribed subject; it must not block.
Deliver = Callable[[bytes], None]

_BAD_NAME_CHARS = frozenset(".*>/\\")


class MemoryServer:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._streams: dict[str, StreamLog] = {}
        self._subscribers: dict[int, tuple[str, Deliver]] = {}
        self._next_subscriber = 0

    # Streams -------------------------------------------------------------------

    def ensure(self, spec: StreamSpec) -> None:
        """Create the stream or reconfigure it in place, keeping its messages."""
        _check_spec(spec)
        self._check_no_overlap(spec)
        log = self._streams.get(spec.name)
        if log is None:
            self._streams[spec.name] = StreamLog(spec)
        else:
            log.spec = spec
            log.expire(self.clock())

    def stream(self, name: str) -> StreamLog | None:
        return self._streams.get(name)

    def delete_stream(self, name: str) -> None:
        self._streams.pop(name, None)

    def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int | None:
        """Deliver ``data`` and store it in the capturing stream; the stream sequence,
        or None when no stream captures ``subject``."""
        if not valid_subject(subject):
            raise ValueError(f"not a publishable subject: {subject!r}")
        log = self._capturing(subject)
        seq = None if log is None else log.append(data, self.clock(), msg_id)
        for pattern, deliver in list(self._subscribers.values()):
            if subject_matches(pattern, subject):
                deliver(data)
        return seq

    # Subscriptions -------------------------------------------------------------

    def subscribe(self, pattern: str, deliver: Deliver) -> int:
        if not valid_pattern(pattern):
            raise ValueError(f"not a subscribable subject: {pattern!r}")
        self._next_subscriber += 1
        self._subscribers[self._next_subscriber] = (pattern, deliver)
        return self._next_subscriber

    def unsubscribe(self, token: int) -> None:
        self._subscribers.pop(token, None)

    # Internals -----------------------------------------------------------------

    def _capturing(self, subject: str) -> StreamLog | None:
        # ensure() refuses overlapping subjects, so at most one stream matches.
        for log in self._streams.values():
            if any(subject_matches(p, subject) for p in log.spec.subjects):
                return log
        return None

    def _check_no_overlap(self, spec: StreamSpec) -> None:
        for other in self._streams.values():
            if other.spec.name == spec.name:
                continue
            if any(subjects_overlap(a, b) for a in spec.subjects for b in other.spec.subjects):
                raise Conflict(
                    f"stream {spec.name} would capture subjects of stream {other.spec.name}",
                    code="stream_subjects_overlap",
                )


def _check_spec(spec: StreamSpec) -> None:
    """Refuse what nats-server refuses. These are programming errors in a spec (the
    core builds every spec), so they are ValueErrors rather than client errors."""
    if not spec.name or _BAD_NAME_CHARS & set(spec.name) or any(c.isspace() for c in spec.name):
        raise ValueError(f"invalid stream name: {spec.name!r}")
    if not spec.subjects or not all(valid_pattern(s) for s in spec.subjects):
        raise ValueError(f"invalid stream subjects: {spec.subjects!r}")
