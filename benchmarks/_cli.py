"""``python -m benchmarks [--quick | --smoke]``: fill (or reuse) the streams, time every
available strategy on each dataset in turn, and write the results."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ._fill import prepare_all
from ._plan import PLANS, Plan
from ._report import Report, render_markdown, write_all
from ._server import nats_server, server_version
from ._strategies import PROBES, STRATEGIES

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    started = time.perf_counter()
    report = Report(plan=plan, meta=_meta(plan),
                    titles={s.name: s.title for s in STRATEGIES})
    report.unavailable = {s.name: r for s in STRATEGIES if (r := s.unavailable())}
    report.probes = {p.name: f"{p.title}: {p.reason}" for p in PROBES}
    with nats_server(args.data_dir / "store") as server:
        report.prepared, report.skipped = asyncio.run(
            prepare_all(server.url, plan.datasets, args.data_dir)
        )
        for skipped in report.skipped:
            _say(skipped.reason)
        _run(report, server.url)
    report.meta["elapsed_seconds"] = time.perf_counter() - started
    paths = write_all(report, args.out)
    print(render_markdown(report))
    _say("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true",
                      help="10k and 100k backlogs, fewer repeats (under a minute)")
    size.add_argument("--smoke", action="store_true",
                      help="a tiny run that only checks the harness still works")
    parser.add_argument("--out", type=Path, default=_HERE / "results",
                        help="where the markdown, JSON and PNG go (default: %(default)s)")
    parser.add_argument("--data-dir", type=Path, default=_HERE / "data",
                        help="nats-server store and fill markers, reused across runs "
                             "(default: %(default)s)")
    return parser.parse_args(argv)


def _run(report: Report, url: str) -> None:
    # Dataset by dataset, every strategy in turn: ratios compare figures taken minutes
    # apart at most, not a whole run apart.
    from ._measure import Case

    runnable = [s for s in STRATEGIES if s.name not in report.unavailable]
    for prepared in report.prepared:
        cases = [Case(prepared.dataset, prepared.stream, limit) for limit in report.plan.limits]
        for strategy in runnable:
            results = strategy.measure(url, cases, report.plan)
            report.measurements.extend(results)
            summary = ", ".join(f"limit {m.case.limit}: {m.median_ms:.1f} ms" for m in results)
            _say(f"{prepared.dataset.label}: {strategy.name}: {summary}")


def _meta(plan: Plan) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "nats_py": version("nats-py"),
        "nats_server": server_version(),
        "roomkeeper_commit": _git_commit(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_HERE, capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
