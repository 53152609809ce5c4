"""``roomkeeper serve`` settings, in process: flags, then ROOMKEEPER_* variables, then
defaults; the combinations that make no sense are usage errors (exit 2, one line)
before anything starts."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from roomkeeper.adapters.cli import build_parser, main
from roomkeeper.adapters.serve import Backend, ServeSettings, plan_for, settings_from
from roomkeeper.adapters.settings import UsageError, parse_duration
from roomkeeper.core import StreamLimits


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def settings(*argv: str, **environ: str) -> ServeSettings:
    return settings_from(parse(*argv), environ)


def test_the_defaults_start_the_bundled_server_on_loopback() -> None:
    assert settings() == ServeSettings(
        backend=Backend.BUNDLED, bind="127.0.0.1:8080", public_authority=None,
        nats_url=None, replicas=1, data_dir=Path(".roomkeeper"), nats_port=4222,
        ws_port=9222, limits=StreamLimits(), connect_timeout=5.0, log_level=logging.INFO,
    )


ENVIRONMENT = {
    "ROOMKEEPER_NATS_URL": "nats://10.0.0.5:4222", "ROOMKEEPER_REPLICAS": "3",
    "ROOMKEEPER_BIND": "0.0.0.0:9000", "ROOMKEEPER_PUBLIC_AUTHORITY": "chat.example",
    "ROOMKEEPER_MAX_AGE": "30d", "ROOMKEEPER_MAX_MSGS": "10000",
    "ROOMKEEPER_CONNECT_TIMEOUT": "2.5", "ROOMKEEPER_LOG_LEVEL": "warning",
}


def test_every_setting_comes_from_the_environment() -> None:
    got = settings(**ENVIRONMENT)

    assert got.backend is Backend.EXTERNAL
    assert (got.nats_url, got.replicas) == ("nats://10.0.0.5:4222", 3)
    assert (got.bind, got.public_authority) == ("0.0.0.0:9000", "chat.example")
    assert got.limits == StreamLimits(max_age_seconds=30 * 86400, max_msgs=10000)
    assert (got.connect_timeout, got.log_level) == (2.5, logging.WARNING)


def test_flags_win_over_the_environment() -> None:
    got = settings("--nats", "tls://nats.example:4443", "--replicas", "5", "--bind",
                   "127.0.0.1:1", "--max-msgs", "0", "--log-level", "DEBUG", **ENVIRONMENT)

    assert (got.nats_url, got.replicas, got.bind) == ("tls://nats.example:4443", 5,
                                                      "127.0.0.1:1")
    assert got.limits.max_msgs is None  # 0 = unlimited
    assert got.log_level == logging.DEBUG


def test_memory_wins_over_a_nats_url_in_the_environment() -> None:
    got = settings("--memory", ROOMKEEPER_NATS_URL="not even a url", ROOMKEEPER_DATA_DIR="/x")

    assert (got.backend, got.nats_url) == (Backend.MEMORY, None)


def test_bundled_server_settings() -> None:
    got = settings("--data-dir", "/srv/rk", "--nats-port", "0",
                   ROOMKEEPER_WS_PORT="8081", ROOMKEEPER_DATA_DIR="/ignored")

    assert (got.data_dir, got.nats_port, got.ws_port) == (Path("/srv/rk"), 0, 8081)


def test_an_empty_variable_counts_as_unset() -> None:
    assert settings(ROOMKEEPER_NATS_URL="", ROOMKEEPER_REPLICAS="").backend is Backend.BUNDLED


@pytest.mark.parametrize(("argv", "environ", "message"), [
    ((), {"ROOMKEEPER_REPLICAS": "three"}, "ROOMKEEPER_REPLICAS: expected a whole number"),
    (("--replicas", "0"), {}, "--replicas: expected a whole number of at least 1"),
    (("--nats", "ftp://h"), {}, "--nats: expected a URL like nats://HOST:4222"),
    (("--nats", "nats://"), {}, "--nats: expected a URL"),
    (("--bind", "8080"), {}, "--bind: expected HOST:PORT"),
    (("--ws-port", "70000"), {}, "--ws-port: expected a port number"),
    (("--max-age", "5 weeks"), {}, "--max-age: expected a duration"),
    (("--max-msgs", "-1"), {}, "--max-msgs: expected a whole number"),
    (("--connect-timeout", "0"), {}, "--connect-timeout: expected a number of seconds"),
    (("--connect-timeout", "nan"), {}, "--connect-timeout: expected a number of seconds"),
    (("--log-level", "loud"), {}, "--log-level: expected one of debug, info"),
    (("--public-authority", "https://chat.example"), {}, "--public-authority: expected"),
    (("--replicas", "3"), {}, "--replicas above 1 needs a NATS cluster"),
    (("--memory", "--data-dir", "d"), {}, "--data-dir is for the bundled nats-server; "
                                          "it does not apply with --memory"),
    (("--nats", "nats://h:4222", "--ws-port", "1"), {}, "--ws-port is for the bundled"),
])
def test_bad_settings_name_where_they_came_from(
    argv: tuple[str, ...], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError) as info:
        settings(*argv, **environ)
    assert str(info.value).startswith(message), str(info.value)


def test_a_usage_error_exits_2_in_one_line_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    data_dir = tmp_path / "never"
    assert main(["serve", "--replicas", "3", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err

    assert err.startswith("roomkeeper serve: error: --replicas above 1") and err.count("\n") == 1
    assert not data_dir.exists()


def test_memory_and_nats_together_are_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--memory", "--nats", "nats://h:4222"])

    assert exit_.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "seconds"), [
    ("3600", 3600.0), ("90s", 90.0), ("90m", 5400.0), ("1.5h", 5400.0), ("12H", 43200.0),
    ("30d", 2592000.0), ("0", None), ("0d", None),
])
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_the_external_address_line_hides_credentials() -> None:
    plan = plan_for(settings("--nats", "nats://alice:s3cret@nats.example:4222"))

    assert plan.describe() == ["NATS at nats://nats.example:4222 (replicas 1)"]


async def test_the_memory_plan_carries_replicas_and_limits() -> None:
    async with plan_for(settings("--memory", "--max-msgs", "7")).open() as deployment:
        assert deployment.limits == StreamLimits(max_msgs=7)
        assert deployment.lifespan is None
