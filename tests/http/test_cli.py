"""The ``roomkeeper`` command: ``serve --memory`` as a real process, ``sign`` output
used as request headers (by httpx and by curl), ``keygen``, and usage errors."""

from __future__ import annotations

import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from roomkeeper.adapters import serve
from roomkeeper.adapters.cli import main, parse_bind
from roomkeeper.adapters.memory import memory_deployment
from roomkeeper.client.keys import Identity
from roomkeeper.core import SignedRequest, Unauthorized, verify_request
from roomkeeper.ports import Deployment

SCRIPT = Path(sys.executable).parent / "roomkeeper"
START_TIMEOUT = 20.0


def read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.05)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    raise AssertionError(f"roomkeeper serve printed nothing; exit status {proc.poll()}")


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``roomkeeper serve --memory`` on a free port (chosen by the OS via port 0, given
    through the environment to check ROOMKEEPER_BIND)."""
    env = {**os.environ, "ROOMKEEPER_BIND": "127.0.0.1:0"}
    proc = subprocess.Popen([str(SCRIPT), "serve", "--memory"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = read_line(proc, time.monotonic() + START_TIMEOUT)
        assert line.startswith("roomkeeper: serving on http://127.0.0.1:"), line
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()


@pytest.fixture
def identity_file(tmp_path: Path) -> Path:
    path = tmp_path / "identity.json"
    assert main(["keygen", "--identity", str(path)]) == 0
    return path


def signed(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, str]:
    """Run ``roomkeeper sign`` in process and parse its lines as headers."""
    capsys.readouterr()
    assert main(["sign", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    return dict(line.split(": ", 1) for line in lines)


def stop(proc: subprocess.Popen[str], signum: int) -> tuple[int, str]:
    os.kill(proc.pid, signum)
    _, stderr = proc.communicate(timeout=10)
    return proc.returncode, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_memory_answers_signed_requests_and_stops_cleanly(
    server: tuple[subprocess.Popen[str], str], identity_file: Path,
    capsys: pytest.CaptureFixture[str], signum: int,
) -> None:
    proc, url = server
    body = '{"name":"from the cli"}'
    create = signed(capsys, "POST", f"{url}/rooms", "--data", body,
                    "--identity", str(identity_file))
    listing = signed(capsys, "GET", f"{url}/rooms", "--identity", str(identity_file))

    with httpx.Client(timeout=5) as http:
        unsigned = http.get(f"{url}/rooms")
        created = http.post(f"{url}/rooms", content=body,
                            headers={**create, "Content-Type": "application/json"})
        rooms = http.get(f"{url}/rooms", headers=listing)

    assert set(create) == {"Content-Digest", "Signature-Input", "Signature"}
    assert unsigned.status_code == 401
    assert created.status_code == 201, created.text
    assert [r["name"] for r in rooms.json()["rooms"]] == ["from the cli"]
    status, stderr = stop(proc, signum)
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert "POST /rooms 201" in stderr  # the access log line


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_sign_output_works_with_curl_as_the_help_shows(
    server: tuple[subprocess.Popen[str], str], identity_file: Path,
) -> None:
    _, url = server
    body = '{"name":"curl"}'
    env = {**os.environ, "ROOMKEEPER_IDENTITY": str(identity_file)}
    command = (f"{SCRIPT} sign POST {url}/rooms --data '{body}' | "
               f"curl -s -H @- -H 'Content-Type: application/json' --data-binary '{body}' "
               f"{url}/rooms")

    out = subprocess.run(command, shell=True, env=env, capture_output=True, text=True,
                         timeout=20, check=True).stdout

    assert '"name":"curl"' in out, out


def test_a_backend_that_cannot_start_aborts_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A failed connect at startup must not hang, announce a server, or dump a trace."""

    @asynccontextmanager
    async def unreachable() -> AsyncIterator[Deployment]:
        raise RuntimeError("nats://127.0.0.1:1: connection refused")
        yield memory_deployment()  # pragma: no cover

    def backends(settings: object) -> serve.Plan:
        return serve.Plan(unreachable, lambda: [])

    monkeypatch.setattr(serve, "plan_for", backends)

    status = main(["serve", "--memory", "--bind", "127.0.0.1:0"])

    out, err = capsys.readouterr()
    assert status == 1
    assert out == ""
    assert err == "roomkeeper serve: could not start: nats://127.0.0.1:1: connection refused\n"


def test_keygen_writes_a_private_identity_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "nested" / "identity.json"

    assert main(["keygen", "--identity", str(path)]) == 0
    keyid = capsys.readouterr().out.strip()
    again = main(["keygen", "--identity", str(path)])

    assert Identity.load(path).keyid == keyid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert again == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["keygen", "--identity", str(path), "--force"]) == 0


def test_sign_without_an_identity_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["sign", "GET", "http://h/rooms", "--identity", str(tmp_path / "none")])

    assert status == 1
    assert "roomkeeper keygen" in capsys.readouterr().err


def verifies(headers: dict[str, str], method: str, authority: str, path: str,
             query: str = "", body: bytes = b"") -> bool:
    """Whether the server, seeing this request, accepts the printed headers."""
    request = SignedRequest(method, authority, path, query, body,
                            (headers["Content-Digest"],), (headers["Signature-Input"],),
                            (headers["Signature"],))
    try:
        verify_request(request, time.time())
    except Unauthorized:
        return False
    return True


def test_sign_signs_the_target_as_sent(identity_file: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    headers = signed(capsys, "get", "http://user@chat.example:8443/rooms/x%2Fy?limit=5&a=%20",
                     "--identity", str(identity_file))

    assert verifies(headers, "GET", "chat.example:8443", "/rooms/x%2Fy", "limit=5&a=%20")
    assert not verifies(headers, "GET", "chat.example:8443", "/rooms/x/y", "limit=5&a=%20")
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    assert 'keyid="' + Identity.load(identity_file).keyid + '"' in headers["Signature-Input"]


@pytest.mark.parametrize("url", ["https://chat.example:443/rooms",
                                 "http://chat.example:80/rooms"])
def test_sign_leaves_out_the_default_port_as_curl_does_in_host(
    url: str, identity_file: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    headers = signed(capsys, "GET", url, "--identity", str(identity_file))

    assert verifies(headers, "GET", "chat.example", "/rooms")  # what Host says
    assert not verifies(headers, "GET", url.split("/")[2], "/rooms")  # the literal netloc


def test_sign_uses_the_authority_it_is_given(identity_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    headers = signed(capsys, "POST", "https://h", "--data", "{}",
                     "--authority", "public.example", "--identity", str(identity_file))

    assert verifies(headers, "POST", "public.example", "/", body=b"{}")
    assert not verifies(headers, "POST", "h", "/", body=b"{}")


@pytest.mark.parametrize("args", [
    ["sign", "GET", "/relative", "--identity", "x"],
    ["sign", "GET", "ftp://h/rooms", "--identity", "x"],
    ["sign", "GET", "http://[::1/rooms", "--identity", "x"],
    ["sign", "GET", "http://h/", "--data-file", "/nonexistent/file", "--identity", "x"],
    ["serve", "--memory", "--bind", "localhost"],
    ["serve", "--memory", "--bind", "127.0.0.1:99999"],
])
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert "error:" in capsys.readouterr().err


def test_parse_bind_accepts_ipv6() -> None:
    assert parse_bind("[::1]:8080") == ("::1", 8080)
    assert parse_bind("0.0.0.0:80") == ("0.0.0.0", 80)


@pytest.mark.parametrize("command", ["serve", "sign", "keygen"])
def test_every_command_has_help_with_an_example(
    command: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])

    assert exit_.value.code == 0
    assert "example" in capsys.readouterr().out
