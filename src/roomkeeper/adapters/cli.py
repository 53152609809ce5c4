"""The ``roomkeeper`` command: ``serve``, ``sign`` and ``keygen``.

``main(argv)`` returns the exit status: 0 on success (also after Ctrl-C or SIGTERM
stopped the server), 1 when the command failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from ..client.keys import Identity, IdentityError
from ..core import sign_request
from ..ports import Deployment
from .http import create_app
from .memory import memory_deployment

__all__ = ["main"]

log = logging.getLogger("roomkeeper.cli")

DEFAULT_BIND = "127.0.0.1:8080"
#: How long a signature printed by ``roomkeeper sign`` stays valid (API.md allows 300).
SIGNATURE_LIFETIME = 60

SERVE_EPILOG = """\
examples:
  roomkeeper serve --memory
  roomkeeper serve --memory --bind 127.0.0.1:9000 --public-authority chat.example

--memory serves the in-memory fake deployment (no NATS; everything is lost on exit).
Ctrl-C or SIGTERM stops the server cleanly. Environment: ROOMKEEPER_BIND,
ROOMKEEPER_PUBLIC_AUTHORITY (flags win)."""

SIGN_EPILOG = """\
The three header lines go to stdout, one per line, so curl can read them with -H @-
(from a pipe) or -H @FILE. Sign the exact bytes you send: use --data-binary with curl.

examples:
  roomkeeper sign GET 'http://127.0.0.1:8080/rooms' | curl -H @- http://127.0.0.1:8080/rooms

  body='{"name":"general"}'
  roomkeeper sign POST http://127.0.0.1:8080/rooms --data "$body" |
    curl -H @- -H 'Content-Type: application/json' --data-binary "$body" \\
      http://127.0.0.1:8080/rooms

Each output is good for one request within 60 s (the nonce cannot be replayed)."""

KEYGEN_EPILOG = """\
example:
  roomkeeper keygen                      # writes ~/.config/roomkeeper/identity.json
  roomkeeper keygen --identity ./me.json

Prints the new keyid. The file is created with mode 0600; an existing file is kept
unless --force is given."""


class UsageError(Exception):
    """Bad arguments found after argparse: reported like argparse's own, exit 2."""


# --- serve --------------------------------------------------------------------------------


def parse_bind(bind: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' as (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--bind must be HOST:PORT, got {bind!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _select_deployment(args: argparse.Namespace) -> Callable[[], Deployment]:
    """How to build the backends to serve (built inside the Trio run).

    The hook for NATS: ``roomkeeper.adapters.nats.deployment.nats_deployment`` already
    has the shape needed here (a Deployment whose lifespan starts a bundled
    ``NatsServerProcess`` or connects to a URL; ``open_backends`` turns its
    StartupError into the one-line failure). Making it the default, and adding
    ``--nats URL`` and ``--replicas``, is a change to this function and the parser."""
    if args.memory:
        return memory_deployment
    raise UsageError(
        "serving with NATS is not available yet; use --memory for the in-memory deployment"
    )


async def _wait_for_stop(receiver: AsyncIterable[int]) -> None:
    async for signum in receiver:
        log.info("%s: shutting down", signal.Signals(signum).name)
        return


class StartupFailed(Exception):
    """The backends could not be opened: reported in one line, without a traceback."""


@asynccontextmanager
async def open_backends(deployment: Deployment) -> AsyncIterator[Deployment]:
    """Enter the deployment's lifespan here, before the HTTP port opens, so that a
    backend that cannot be reached stops startup with a clear message instead of a
    server that announced itself and then died. The app gets the opened deployment
    without a lifespan of its own; the backends drain after the last request."""
    if deployment.lifespan is None:
        yield deployment
        return
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(deployment.lifespan())
        except Exception as exc:
            log.debug("startup failed", exc_info=True)
            raise StartupFailed(str(exc) or type(exc).__name__) from exc
        yield dataclasses.replace(deployment, lifespan=None)


async def serve_forever(
    make_deployment: Callable[[], Deployment],
    bind: str,
    public_authority: str | None,
    *,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully."""
    host, port = parse_bind(bind)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None  # roomkeeper.http logs one line per request itself
    config.errorlog = logging.getLogger("hypercorn.error")  # through our handler, once
    # The receiver is open before anything starts, so an early Ctrl-C is not lost.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_backends(make_deployment()) as deployment:
            app = create_app(deployment, public_authority=public_authority)
            async with trio.open_nursery() as nursery:
                binds = await nursery.start(partial(
                    hypercorn_serve, app, config, shutdown_trigger=partial(_wait_for_stop,
                                                                           signals)))
                for address in binds:
                    announce(f"roomkeeper: serving on {address}")


def run_serve(args: argparse.Namespace) -> int:
    parse_bind(args.bind)  # a usage error, before anything starts
    make_deployment = _select_deployment(args)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    announce = partial(print, flush=True)
    failure: str | None = None
    try:
        trio.run(partial(serve_forever, make_deployment, args.bind, args.public_authority,
                         announce=announce))
    except* StartupFailed as group:
        failure = f"could not start: {_first_leaf(group)}"
    except* OSError as group:
        failure = f"cannot listen on {args.bind}: {_first_leaf(group)}"
    if failure is not None:
        print(f"roomkeeper serve: {failure}", file=sys.stderr)
        return 1
    return 0


def _first_leaf(group: BaseExceptionGroup[Exception]) -> Exception:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


# --- sign and keygen -----------------------------------------------------------------------


def default_identity_path() -> Path:
    if env := os.environ.get("ROOMKEEPER_IDENTITY"):
        return Path(env)
    config_home = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config_home) / "roomkeeper" / "identity.json"


def request_target(url: str, authority: str | None) -> tuple[str, str, str]:
    """(authority, path, query) as a client sends them for ``url``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"URL must be an absolute http(s) URL, got {url!r}")
    host = parts.netloc.rpartition("@")[2]  # userinfo is never sent in Host
    return authority or host, parts.path or "/", parts.query


def _read_body(args: argparse.Namespace) -> bytes:
    if args.data is not None:
        return str(args.data).encode("utf-8")
    if args.data_file is None:
        return b""
    if args.data_file == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(args.data_file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --data-file {args.data_file}: {exc.strerror}") from None


def signed_headers(identity: Identity, method: str, target: tuple[str, str, str],
                   body: bytes, now: float) -> dict[str, str]:
    authority, path, query = target
    created = int(now)
    return sign_request(
        identity.seed, method.upper(), authority, path, query, body,
        created=created, expires=created + SIGNATURE_LIFETIME,
        nonce=secrets.token_urlsafe(16),  # 128 random bits, as API.md asks
    )


def run_sign(args: argparse.Namespace) -> int:
    # Arguments first, so a typo is reported before the identity file is touched.
    target = request_target(args.url, args.authority)
    body = _read_body(args)
    identity = Identity.load(args.identity)
    for name, value in signed_headers(identity, args.method, target, body, time.time()).items():
        print(f"{name}: {value}")
    return 0


def run_keygen(args: argparse.Namespace) -> int:
    path = Path(args.identity)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    identity = Identity.generate()
    identity.save(path, overwrite=args.force)
    print(identity.keyid)
    return 0


# --- the parser ----------------------------------------------------------------------------


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve", help="serve the HTTP API", epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the roomkeeper HTTP API.")
    serve.add_argument("--memory", action="store_true",
                       help="use the in-memory deployment instead of NATS")
    serve.add_argument("--bind", default=os.environ.get("ROOMKEEPER_BIND", DEFAULT_BIND),
                       metavar="HOST:PORT", help=f"listen address (default {DEFAULT_BIND})")
    serve.add_argument("--public-authority",
                       default=os.environ.get("ROOMKEEPER_PUBLIC_AUTHORITY") or None,
                       metavar="AUTHORITY",
                       help="the @authority signatures cover (default: the Host header)")
    serve.set_defaults(run=run_serve)


def _add_sign(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sign = commands.add_parser(
        "sign", help="print signature headers for a request (for curl)", epilog=SIGN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print the Content-Digest, Signature-Input and Signature headers "
                    "that authenticate one request.")
    sign.add_argument("method", metavar="METHOD", help="GET, POST or DELETE")
    sign.add_argument("url", metavar="URL", help="the full URL the request goes to")
    body = sign.add_mutually_exclusive_group()
    body.add_argument("--data", metavar="DATA", help="the request body, as text")
    body.add_argument("--data-file", metavar="FILE", help="the request body from FILE (- = stdin)")
    _add_identity(sign)
    sign.add_argument("--authority", metavar="AUTHORITY",
                      help="the server's public authority (default: host[:port] of URL)")
    sign.set_defaults(run=run_sign)


def _add_keygen(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keygen = commands.add_parser(
        "keygen", help="create a new identity (ed25519 key)", epilog=KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Create a new identity file and print its keyid.")
    _add_identity(keygen)
    keygen.add_argument("--force", action="store_true", help="replace an existing file")
    keygen.set_defaults(run=run_keygen)


def _add_identity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--identity", metavar="FILE", type=Path, default=default_identity_path(),
        help="identity file (default: $ROOMKEEPER_IDENTITY or "
             "~/.config/roomkeeper/identity.json)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roomkeeper", description="Control plane for end-to-end-encrypted chat rooms.",
        epilog="Run 'roomkeeper COMMAND --help' for a command's options and examples.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(commands)
    _add_sign(commands)
    _add_keygen(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except UsageError as exc:
        print(f"roomkeeper {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except IdentityError as exc:
        hint = " (create one with: roomkeeper keygen)" if exc.code == "key_file_not_found" else ""
        print(f"roomkeeper {args.command}: {exc.message}{hint}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
