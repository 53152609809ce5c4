"""MemoryStreamStore: the StreamStore port over the shared MemoryServer."""

from __future__ import annotations

from trio.lowlevel import checkpoint

from roomkeeper.core import NotFound, StoredMessage, StreamSpec, StreamState

from ._server import MemoryServer

__all__ = ["MemoryStreamStore"]


class MemoryStreamStore:
    """Each call checkpoints first, as real I/O would: it can be cancelled there and
    other tasks get to run, so ordering bugs show up against the fake too."""

    def __init__(self, server: MemoryServer) -> None:
        self._server = server

    async def ensure(self, spec: StreamSpec) -> None:
        await checkpoint()
        self._server.ensure(spec)

    async def info(self, name: str) -> StreamState | None:
        await checkpoint()
        log = self._server.stream(name)
        return None if log is None else log.state(self._server.clock())

    async def fetch(self, name: str, start_seq: int, count: int) -> tuple[StoredMessage, ...]:
        await checkpoint()
        log = self._server.stream(name)
        return () if log is None else log.fetch(start_seq, count, self._server.clock())

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        await checkpoint()
        seq = self._server.publish(subject, data, msg_id)
        if seq is None:
            # What a JetStream publish sees as "no responders" on the real server.
            raise NotFound(f"no stream captures {subject}", code="stream_not_found")
        return seq

    async def delete_message(self, name: str, seq: int) -> None:
        """Deleting a message that is already gone (or in a missing stream) is a no-op:
        the outcome the caller wanted holds either way."""
        await checkpoint()
        log = self._server.stream(name)
        if log is not None:
            log.delete(seq, self._server.clock())

    async def delete(self, name: str) -> None:
        await checkpoint()
        self._server.delete_stream(name)
