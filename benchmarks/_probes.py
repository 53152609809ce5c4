"""Probes: figures that are not one strategy's latency. Both run against the HTTP
server, each on a server process of its own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ._http import ClientWorker, HttpError, http_session, job
from ._measure import Case, percentile
from ._plan import Dataset, Plan
from ._strategies import Env, ProbeResult
from ._streams import dataset_spec

__all__ = ["HttpLoad", "ServerMemory"]

_MIB = 1024


def _case(dataset: Dataset, limit: int) -> Case:
    return Case(dataset, dataset_spec(dataset).name, limit)


class HttpLoad:
    name = "http_concurrency"
    title = "HTTP history under concurrent clients"

    def unavailable(self) -> str | None:
        return None

    def needs(self, plan: Plan) -> tuple[Dataset, ...]:
        return (plan.load_dataset,)

    def run(self, env: Env) -> ProbeResult:
        plan = env.plan
        case = _case(plan.load_dataset, plan.load_limit)
        rows = []
        with http_session(env, [case.dataset]) as (server, worker, identity):
            for clients in plan.load_clients:
                answer = worker.run(job("load", server, identity, case, clients=clients,
                                        seconds=plan.load_seconds))
                rows.append(_load_row(clients, answer["latencies"], answer["elapsed"]))
        return ProbeResult(rows, note=(
            f"{case.dataset.label}, limit={case.limit}, {plan.load_seconds:g} s per client "
            f"count, each client on its own connection. Clients, HTTP server and "
            f"nats-server share the machine's {os.cpu_count()} cores."
        ))


def _load_row(clients: int, latencies: list[float], elapsed: float) -> dict[str, Any]:
    return {
        "clients": clients,
        "requests": len(latencies),
        "req/s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50 ms": percentile(latencies, 50) * 1e3,
        "p95 ms": percentile(latencies, 95) * 1e3,
        "p99 ms": percentile(latencies, 99) * 1e3,
    }


class ServerMemory:
    name = "server_peak_rss"
    title = "HTTP server memory serving limit=1000 pages of 64 KiB frames"

    def unavailable(self) -> str | None:
        return None if Path("/proc/self/status").exists() else "needs Linux /proc"

    def needs(self, plan: Plan) -> tuple[Dataset, ...]:
        return (plan.rss_dataset,)

    def run(self, env: Env) -> ProbeResult:
        plan = env.plan
        big, one = _case(plan.rss_dataset, 1000), _case(plan.rss_dataset, 1)
        # A fresh server process: its peak (VmHWM) then belongs to this probe alone.
        with http_session(env, [big.dataset]) as (server, worker, identity):
            worker.run(job("time", server, identity, one, warmup=0, repeats=1))
            rows = [_memory_row("idle, after one 1-frame page", server.memory_kib(), "")]
            failure = _attempt(worker, job("time", server, identity, big, warmup=0,
                                           repeats=plan.rss_requests))
            rows.append(_memory_row(f"{plan.rss_requests} limit=1000 pages, one at a time",
                                    server.memory_kib(), failure))
            failure = _attempt(worker, job("load", server, identity, big, clients=8, seconds=0))
            rows.append(_memory_row("8 limit=1000 pages at once", server.memory_kib(), failure))
        frames = min(1000, big.dataset.backlog - big.dataset.deleted_count)
        page_mib = frames * big.dataset.frame / 2**20
        json_mib = page_mib * 4 / 3
        # What serving one page costs: the peak while serving pages one at a time, over
        # the peak before the first one.
        above_idle = rows[1]["peak RSS MiB"] - rows[0]["peak RSS MiB"]
        return ProbeResult(rows, note=(
            f"{big.dataset.label}; one page is {frames} frames, {page_mib:.1f} MiB "
            f"({json_mib:.1f} MiB as base64). Peak = VmHWM of the server process so far. "
            f"Serving one page at a time raised the peak by {above_idle:.1f} MiB above "
            f"idle: {above_idle / json_mib:.2f}x the response body."
        ))


def _attempt(worker: ClientWorker, work: dict[str, Any]) -> str:
    """Run a job; its failure is a finding to report (e.g. a 503), not a crash."""
    try:
        worker.run(work)
    except HttpError as exc:
        return str(exc)
    return ""


def _memory_row(after: str, kib: dict[str, int], failure: str) -> dict[str, Any]:
    return {"after": after, "RSS MiB": kib["VmRSS"] / _MIB,
            "peak RSS MiB": kib["VmHWM"] / _MIB, "failure": failure or "-"}
