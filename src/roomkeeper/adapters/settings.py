"""The settings of ``roomkeeper serve``: one ``Option`` per flag, each with its
environment variable, its parser and its default.

A value comes from the flag when given, else from the environment variable when set and
not empty, else from the default. A value that does not parse is a UsageError naming
where it came from (``--replicas: ...`` or ``ROOMKEEPER_REPLICAS: ...``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

__all__ = [
    "BIND",
    "CONNECT_TIMEOUT",
    "DATA_DIR",
    "DEFAULT_BIND",
    "LOG_LEVEL",
    "MAX_AGE",
    "MAX_MSGS",
    "NATS_PORT",
    "NATS_URL",
    "OPTIONS",
    "PUBLIC_AUTHORITY",
    "REPLICAS",
    "WS_PORT",
    "Option",
    "UsageError",
    "parse_bind",
    "parse_duration",
    "resolve",
]

T = TypeVar("T")

DEFAULT_BIND = "127.0.0.1:8080"
NATS_SCHEMES = ("nats", "tls", "ws", "wss")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LEVELS = ("debug", "info", "warning", "error")


class UsageError(Exception):
    """Bad arguments found after argparse: reported like argparse's own, exit 2."""


@dataclass(frozen=True, slots=True)
class Option(Generic[T]):
    flag: str
    env: str
    parse: Callable[[str], T]
    default: T
    metavar: str
    help: str
    #: The default as --help shows it.
    shown: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")


def resolve(option: Option[T], flag_value: str | None, environ: Mapping[str, str]) -> T:
    if flag_value is not None:
        raw, source = flag_value, option.flag
    else:
        raw, source = environ.get(option.env, ""), option.env
        if not raw:
            return option.default
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise UsageError(f"{source}: {exc}") from None


# --- parsers: each raises ValueError with the reason -----------------------------------------


def parse_bind(bind: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' as (host, port)."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {bind!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _bind(text: str) -> str:
    parse_bind(text)
    return text


def _nats_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in NATS_SCHEMES or not parts.hostname:
        raise ValueError(f"expected a URL like nats://HOST:4222, got {text!r}")
    return text


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"expected a port number (0 picks a free one), got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _count(text: str) -> int | None:
    if not text.isdigit():
        raise ValueError(f"expected a whole number (0 = unlimited), got {text!r}")
    return int(text) or None


def parse_duration(text: str) -> float | None:
    """Seconds, or a number with s, m, h or d: '3600', '90m', '7d'. 0 = unlimited."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"expected a duration such as 3600, 90m, 12h or 30d, got {text!r}")
    return float(match[1]) * _SECONDS[match[2]] or None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ValueError(f"expected a number of seconds above 0, got {text!r}")
    return value


def _authority(text: str) -> str | None:
    if any(ch.isspace() or ch in "/?#@" for ch in text):
        raise ValueError(f"expected host[:port] as clients address it, got {text!r}")
    return text


def _log_level(text: str) -> int:
    if text.lower() not in _LEVELS:
        raise ValueError(f"expected one of {', '.join(_LEVELS)}, got {text!r}")
    level: int = getattr(logging, text.upper())
    return level


# --- the options ------------------------------------------------------------------------------

NATS_URL: Final[Option[str | None]] = Option(
    "--nats", "ROOMKEEPER_NATS_URL", _nats_url, None, "URL",
    "use the NATS server or cluster at URL instead of starting one", "start the bundled one")
BIND: Final = Option(
    "--bind", "ROOMKEEPER_BIND", _bind, DEFAULT_BIND, "HOST:PORT",
    "HTTP listen address", DEFAULT_BIND)
PUBLIC_AUTHORITY: Final[Option[str | None]] = Option(
    "--public-authority", "ROOMKEEPER_PUBLIC_AUTHORITY", _authority, None, "HOST[:PORT]",
    "the @authority signatures cover", "the request's Host header")
REPLICAS: Final = Option(
    "--replicas", "ROOMKEEPER_REPLICAS", _positive_int, 1, "N",
    "replicas of each room stream and KV bucket; above 1 needs --nats", "1")
DATA_DIR: Final = Option(
    "--data-dir", "ROOMKEEPER_DATA_DIR", Path, Path(".roomkeeper"), "DIR",
    "where the bundled nats-server keeps rooms and history", "./.roomkeeper")
NATS_PORT: Final = Option(
    "--nats-port", "ROOMKEEPER_NATS_PORT", _port, 4222, "PORT",
    "client port of the bundled nats-server, on 127.0.0.1", "4222")
WS_PORT: Final = Option(
    "--ws-port", "ROOMKEEPER_WS_PORT", _port, 9222, "PORT",
    "websocket port of the bundled nats-server, on 127.0.0.1", "9222")
MAX_AGE: Final[Option[float | None]] = Option(
    "--max-age", "ROOMKEEPER_MAX_AGE", parse_duration, None, "DURATION",
    "drop room messages older than this: seconds, or 90m, 12h, 30d", "unlimited")
MAX_MSGS: Final[Option[int | None]] = Option(
    "--max-msgs", "ROOMKEEPER_MAX_MSGS", _count, None, "N",
    "keep at most N messages per room", "unlimited")
CONNECT_TIMEOUT: Final = Option(
    "--connect-timeout", "ROOMKEEPER_CONNECT_TIMEOUT", _seconds, 5.0, "SECONDS",
    "give up reaching NATS at startup after this long", "5")
LOG_LEVEL: Final = Option(
    "--log-level", "ROOMKEEPER_LOG_LEVEL", _log_level, logging.INFO, "LEVEL",
    f"{', '.join(_LEVELS)}; info logs one line per request", "info")

#: In the order --help lists them.
OPTIONS: Final[tuple[Option[Any], ...]] = (
    NATS_URL, REPLICAS, BIND, PUBLIC_AUTHORITY, DATA_DIR, NATS_PORT, WS_PORT, MAX_AGE,
    MAX_MSGS, CONNECT_TIMEOUT, LOG_LEVEL,
)
