"""A loopback TCP proxy that a test can cut or stall, to drop a real NATS connection
mid-request instead of pretending to.

``sever()`` closes every proxied connection at once (both sides see EOF) and, while
``refusing``, new connections are closed as soon as they arrive: the client cannot
reconnect until ``resume()``. ``stall()`` keeps connections open but stops moving bytes,
so requests on them time out the way they do behind a dead link.
"""

from __future__ import annotations

import trio

__all__ = ["TcpProxy"]

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.refusing = False
        self.connections = 0
        self._flowing = trio.Event()
        self._flowing.set()
        self._links: set[trio.CancelScope] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._link, listeners)

    def sever(self, *, refuse: bool = True) -> None:
        """Close every live connection; keep refusing new ones when ``refuse``."""
        self.refusing = refuse
        for scope in list(self._links):
            scope.cancel()

    def stall(self) -> None:
        self._flowing = trio.Event()

    def resume(self) -> None:
        self.refusing = False
        self._flowing.set()

    async def _link(self, client: trio.SocketStream) -> None:
        async with client:
            if self.refusing:
                return
            with trio.CancelScope() as scope:
                self._links.add(scope)
                self.connections += 1
                try:
                    upstream = await trio.open_tcp_stream(*self.target)
                    async with upstream, trio.open_nursery() as pumps:
                        pumps.start_soon(self._pump, client, upstream, pumps.cancel_scope)
                        pumps.start_soon(self._pump, upstream, client, pumps.cancel_scope)
                except OSError:
                    pass  # the target went away: the client sees its connection close
                finally:
                    self._links.discard(scope)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream,
                    both: trio.CancelScope) -> None:
        try:
            while data := await source.receive_some(_CHUNK):
                await self._flowing.wait()
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        # One side closed: close the other too, as a real connection would.
        both.cancel()
