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
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from . import _registry as registry
from ._fill import prepare_all
from ._measure import Case, Measure, Measurement
from ._plan import PLANS, Dataset, Plan
from ._report import Report, render_markdown, write_all
from ._server import nats_server, server_version
from ._strategies import Env, Probe, Strategy

__all__ = ["main"]

_HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = PLANS["smoke" if args.smoke else "quick" if args.quick else "full"]
    started = time.perf_counter()
    strategies, probes = registry.strategies(), registry.probes()
    report = Report(plan=plan, meta=_meta(plan), titles={s.name: s.title for s in strategies})
    report.unavailable = {s.name: r for s in strategies if (r := s.unavailable())}
    report.unavailable |= {p.name: r for p in probes if (r := p.unavailable())}
    runnable = [s for s in strategies if s.name not in report.unavailable]
    probing = [p for p in probes if p.name not in report.unavailable]
    phases = _Phases()
    with nats_server(args.data_dir / "store") as server:
        env = Env(server.url, args.data_dir, plan)
        with phases("prepare"):
            filled = _prepare(report, env, probing)
        with phases("strategies"):
            _run_strategies(report, env, runnable)
        with phases("probes"):
            _run_probes(report, env, probing, filled)
    report.meta["phase_seconds"] = phases.seconds
    report.meta["elapsed_seconds"] = time.perf_counter() - started
    paths = write_all(report, args.out)
    print(render_markdown(report))
    _say("wrote " + ", ".join(str(p) for p in paths.values()))
    for name, why in report.failures.items():
        _say(f"FAILED: {name}: {why}")
    return 1 if report.failures else 0


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 2)


def _prepare(report: Report, env: Env, probing: Sequence[Probe]) -> set[Dataset]:
    """Fill (or reuse) the plan's datasets and those the probes read; returns all the
    datasets that are ready."""
    plan = report.plan
    extra = [d for p in probing for d in p.needs(plan) if d not in plan.datasets]
    wanted = plan.datasets + tuple(dict.fromkeys(extra))
    ready, report.skipped = asyncio.run(prepare_all(env.url, wanted, env.data_dir))
    for skipped in report.skipped:
        _say(skipped.reason)
    report.prepared = [p for p in ready if p.dataset in plan.datasets]
    return {p.dataset for p in ready}


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


def _run_strategies(report: Report, env: Env, runnable: Sequence[Strategy]) -> None:
    """Dataset by dataset, in rounds, strategies in turn with the order rotating: ratios
    compare figures taken seconds apart, not a whole run apart. A strategy that fails
    (a wrong answer, a crash) is reported and dropped; the others carry on."""
    plan = report.plan
    per_round = max(1, plan.repeats // plan.rounds)
    with ExitStack() as stack:
        measures: dict[str, Measure] = {}
        for strategy in runnable:
            with _failure_noted(report, strategy.name):
                measures[strategy.name] = stack.enter_context(strategy.open(env))
        for prepared in report.prepared:
            cases = [Case(prepared.dataset, prepared.stream, limit) for limit in plan.limits]
            samples: dict[tuple[str, int], list[float]] = {}
            for round_no in range(plan.rounds):
                for name in _rotated(list(measures), round_no):
                    with _failure_noted(report, name):
                        for m in measures[name](cases, plan.warmup, per_round):
                            samples.setdefault((name, m.case.limit), []).extend(m.samples)
                    if name in report.failures:
                        del measures[name]
            for (name, limit), taken in samples.items():
                if name in measures:
                    case = Case(prepared.dataset, prepared.stream, limit)
                    report.measurements.append(Measurement(name, case, tuple(taken)))
            _say_dataset(report, prepared.dataset)


def _rotated(names: list[str], shift: int) -> list[str]:
    shift %= max(1, len(names))
    return names[shift:] + names[:shift]


@contextmanager
def _failure_noted(report: Report, name: str) -> Iterator[None]:
    # Deliberately broad: one strategy's crash must not throw away minutes of figures
    # taken for the others. The failure is printed, kept in the report, and makes the
    # exit status 1.
    try:
        yield
    except Exception as exc:
        report.failures[name] = f"{type(exc).__name__}: {exc}"
        _say(f"{name} failed: {report.failures[name]}")


def _say_dataset(report: Report, dataset: Dataset) -> None:
    for m in report.measurements:
        if m.case.dataset == dataset and m.case.limit == max(report.plan.limits):
            _say(f"{dataset.label}, limit {m.case.limit}: {m.strategy}: "
                 f"median {m.median_ms:.1f} ms, p95 {m.p95_ms:.1f} ms")


def _run_probes(
    report: Report, env: Env, probing: Sequence[Probe], filled: set[Dataset]
) -> None:
    for probe in probing:
        missing = [d.label for d in probe.needs(report.plan) if d not in filled]
        if missing:
            report.unavailable[probe.name] = f"not filled: {', '.join(missing)}"
            continue
        with _failure_noted(report, probe.name):
            result = probe.run(env)
            report.probe_titles[probe.name] = probe.title
            report.probe_results[probe.name] = result
            _say(f"{probe.name}: done")


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
