"""The app under a real Hypercorn on a loopback socket, for the tests that need one
(httpx on the wire, a process-like server in front of a deployment)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

__all__ = ["serving"]


@asynccontextmanager
async def serving(app: QuartTrio) -> AsyncIterator[str]:
    """``app`` under Hypercorn on 127.0.0.1, on a port the OS picks, for the block; its
    base URL. Leaving the block shuts the server down gracefully."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop.wait))
        try:
            yield str(binds[0])
        finally:
            stop.set()
