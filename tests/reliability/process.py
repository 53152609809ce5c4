"""``roomkeeper serve`` as a subprocess: started on a free loopback port, found by the
address it announces, measured through /proc, stopped (or SIGKILLed) by its pid.

Synchronous; call it through trio.to_thread from Trio.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.harness import AUTHORITY

__all__ = ["RoomkeeperProcess"]

START_TIMEOUT = 30.0
STOP_GRACE = 10.0
_SERVING = re.compile(r"roomkeeper: serving on (http://\S+)")


class RoomkeeperProcess:
    """``roomkeeper serve <args>`` on 127.0.0.1 with a free port, signatures checked
    against AUTHORITY. Its stdout and stderr go to files in ``workdir``."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.workdir = workdir
        self.args = args
        self.base_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start it and return its base URL once it announces one."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._starts += 1
        out = self.workdir / f"stdout.{self._starts}"
        command = [str(Path(sys.executable).parent / "roomkeeper"), "serve", *self.args,
                   "--bind", "127.0.0.1:0", "--public-authority", AUTHORITY]
        with out.open("wb") as stdout, (self.workdir / "stderr").open("ab") as stderr:
            self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stdout,
                                          stderr=stderr, cwd=self.workdir)
        self.base_url = self._wait_for_address(out)
        return self.base_url

    def _wait_for_address(self, out: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = _SERVING.search(out.read_text(errors="replace"))
            if found:
                return found.group(1)
            if not self.running:
                raise RuntimeError(f"roomkeeper exited at startup: {self.log_tail()}")
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"roomkeeper did not announce an address: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        path = self.workdir / "stderr"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def rss_kib(self) -> int:
        """Resident set size now, from /proc/<pid>/status (VmRSS, in kB)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS line")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no drain, as if the machine lost the process."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_GRACE; the exit status."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                return proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()
