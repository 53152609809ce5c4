"""The ``roomkeeper`` command: ``serve`` (in ``serve.py``), ``sign`` and ``keygen``, and
the terminal client's commands (in ``cli_chat.py``).

``main(argv)`` returns the exit status: 0 on success (also after Ctrl-C or SIGTERM
stopped the server), 1 when the command failed, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from ..client.keys import Identity, IdentityError
from ..client.paths import default_identity_path
from ..client.signer import DEFAULT_LIFETIME, RequestSigner
from . import cli_chat
from .serve import add_parser as add_serve_parser
from .settings import UsageError, parse_bind

__all__ = ["main", "parse_bind"]

SIGN_EPILOG = """\
The three header lines go to stdout, one per line, so curl can read them with -H @-
(from a pipe) or -H @FILE. Sign the exact bytes you send: use --data-binary with curl.

examples:
  roomkeeper sign GET 'http://127.0.0.1:8080/rooms' | curl -H @- http://127.0.0.1:8080/rooms

  body='{"name":"general"}'
  roomkeeper sign POST http://127.0.0.1:8080/rooms --data "$body" |
    curl -H @- -H 'Content-Type: application/json' --data-binary "$body" \\
      http://127.0.0.1:8080/rooms

""" + f"""Each output is good for one request within {DEFAULT_LIFETIME} s (the nonce cannot be
replayed)."""

KEYGEN_EPILOG = """\
example:
  roomkeeper keygen                      # writes ~/.config/roomkeeper/identity.json
  roomkeeper keygen --identity ./me.json

Prints the new keyid. The file is created with mode 0600; an existing file is kept
unless --force is given."""


# --- sign and keygen -----------------------------------------------------------------------


def _absolute_url(url: str) -> str:
    """``url``, once it is known to be an absolute http(s) URL."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UsageError(f"URL is not valid: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(f"URL must be an absolute http(s) URL, got {url!r}")
    return url


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


def run_sign(args: argparse.Namespace) -> int:
    # Arguments first, so a typo is reported before the identity file is touched.
    url = _absolute_url(args.url)
    body = _read_body(args)
    # The client's signer, so that the authority is the one httpx or curl put in Host
    # (no default port, no userinfo), not the URL's literal netloc.
    signer = RequestSigner(Identity.load(args.identity), authority=args.authority)
    for name, value in signer.headers(args.method, url, body).items():
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
                      help="the server's public authority (default: host[:port] of URL, "
                           "without the scheme's default port)")
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
    add_serve_parser(commands)
    _add_sign(commands)
    _add_keygen(commands)
    cli_chat.register(commands)
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
