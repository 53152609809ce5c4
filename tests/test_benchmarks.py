"""The benchmark harness: it must keep running end to end, never time a wrong answer,
page correctly across deletions, and reuse a finished fill."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from benchmarks._cli import _run_strategies
from benchmarks._fill import Prepared, prepare_all
from benchmarks._measure import Case, Measure, Measurement, WrongAnswer, percentile, time_case
from benchmarks._nats import connect
from benchmarks._plan import PLANS, Dataset, deleted_seqs, expected_page
from benchmarks._report import Report
from benchmarks._server import nats_server
from benchmarks._strategies import Env, newest_page
from benchmarks._streams import dataset_spec

ROOT = Path(__file__).resolve().parent.parent
SMOKE = PLANS["smoke"]
PROBE_NAMES = {"http_concurrency", "server_peak_rss"}


def _run_harness(mode: str, tmp_path: Path, timeout: float) -> Any:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "benchmarks", f"--{mode}",
           "--out", str(out), "--data-dir", str(tmp_path / "data")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    assert (out / f"bench-{mode}.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    markdown = (out / f"bench-{mode}.md").read_text()
    assert "| backlog | frame | deleted | limit |" in markdown
    return json.loads((out / f"bench-{mode}.json").read_text())


def _check_results(report: Any, datasets: int, repeats: int) -> None:
    results = report["results"]
    measured = {r["strategy"] for r in results}
    assert {"seed_sequential", "pipelined_get_msg", "batch_direct_get"} <= measured
    # The roomkeeper-backed ones run, or the report says why not.
    assert set(report["strategies"]) == measured | set(report["unavailable"]) - PROBE_NAMES
    assert len(results) == len(measured) * datasets * 2
    for r in results:
        assert len(r["samples_ms"]) == repeats
        assert all(s > 0 for s in r["samples_ms"])
        assert 0 < r["median_ms"] <= r["p95_ms"] <= r["max_ms"]
    for name in PROBE_NAMES - set(report["unavailable"]):
        rows = report["probes"][name]["rows"]
        assert rows
        assert all(v > 0 for row in rows for v in row.values() if isinstance(v, float))


@pytest.mark.slow  # about 9 s: a whole fill-and-measure run, kept out of the unit suite
def test_smoke_run_writes_markdown_json_and_png_with_positive_figures(tmp_path: Path) -> None:
    report = _run_harness("smoke", tmp_path, timeout=60)
    _check_results(report, datasets=len(SMOKE.datasets), repeats=SMOKE.repeats)
    ratios = {r["name"]: r["value"] for r in report["ratios"]}
    assert ratios["seed / floor, 2,000 msgs"] > 1
    assert ratios["HTTP / floor, 2,000 msgs"] is None or ratios["HTTP / floor, 2,000 msgs"] > 0


@pytest.mark.slow
def test_quick_run_finishes_within_a_minute(tmp_path: Path) -> None:
    report = _run_harness("quick", tmp_path, timeout=300)
    _check_results(report, datasets=len(PLANS["quick"].datasets), repeats=PLANS["quick"].repeats)
    assert report["meta"]["elapsed_seconds"] < 60


def test_a_finished_fill_is_reused_and_a_tampered_one_refilled(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dataset = Dataset(300, 256, 10)
    stream = dataset_spec(dataset).name
    intact = next(s for s in range(150, 300) if s not in deleted_seqs(dataset))

    async def prepare(url: str) -> bool:
        (prepared,), skipped = await prepare_all(url, (dataset,), data)
        assert not skipped
        return prepared.reused

    async def delete_behind_its_back(url: str) -> None:
        async with connect(url) as nc:
            assert await nc.jetstream().delete_msg(stream, intact)

    with nats_server(data / "store") as server:
        assert asyncio.run(prepare(server.url)) is False
        assert asyncio.run(prepare(server.url)) is True
        asyncio.run(delete_behind_its_back(server.url))
        assert asyncio.run(prepare(server.url)) is False
        assert asyncio.run(prepare(server.url)) is True


Fetch = Callable[[int, int], Awaitable[list[tuple[int, bytes]]]]


def _stream_with_holes(messages: dict[int, bytes]) -> tuple[Fetch, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []

    async def fetch(lo: int, hi: int) -> list[tuple[int, bytes]]:
        calls.append((lo, hi))
        return [(s, messages[s]) for s in range(lo, hi + 1) if s in messages]

    return fetch, calls


async def test_newest_page_skips_holes_and_still_fills_the_page() -> None:
    dataset = Dataset(5_000, 256, 10)
    expected = expected_page(dataset, 1000)
    stored = dict(expected_page(dataset, 10_000))
    fetch, calls = _stream_with_holes(stored)
    page = await newest_page(fetch, 1, 5_000, len(stored), 1000)
    assert page == list(expected)
    # Windows widened by the deletion density: 10% holes cost one or two rounds, not ten.
    assert len(calls) <= 2


async def test_newest_page_returns_everything_when_the_stream_is_shorter_than_the_page() -> None:
    stored = {1: b"a", 3: b"c", 4: b"d"}
    fetch, _ = _stream_with_holes(stored)
    assert await newest_page(fetch, 1, 4, 3, 1000) == [(1, b"a"), (3, b"c"), (4, b"d")]


async def test_a_wrong_answer_is_rejected_before_any_timing() -> None:
    dataset = Dataset(2_000, 256, 10)
    right = list(expected_page(dataset, 200))
    reads = 0

    async def off_by_one(stream: str, limit: int) -> list[tuple[int, bytes]]:
        nonlocal reads
        reads += 1
        return [(seq - 1, data) for seq, data in right]

    with pytest.raises(WrongAnswer, match="frame 0 is seq"):
        await time_case("broken", off_by_one, Case(dataset, "S", 200), warmup=1, repeats=2)
    assert reads == 1


async def test_a_correct_reader_is_timed_warmup_plus_repeats() -> None:
    dataset = Dataset(2_000, 256, 0)
    right = list(expected_page(dataset, 200))
    reads = 0

    async def read(stream: str, limit: int) -> list[tuple[int, bytes]]:
        nonlocal reads
        reads += 1
        return right

    m = await time_case("ok", read, Case(dataset, "S", 200), warmup=3, repeats=4)
    assert len(m.samples) == 4
    assert reads == 1 + 3 + 4


def test_percentile_is_nearest_rank() -> None:
    samples = [float(i) for i in range(1, 21)]
    assert percentile(samples, 95) == 19.0
    assert percentile(samples, 50) == 10.0
    assert percentile([3.0, 1.0], 95) == 3.0


class _FakeStrategy:
    """Answers instantly with fixed samples, or fails on the ``fail_on``-th round."""

    def __init__(self, name: str, fail_on: int | None = None) -> None:
        self.name = self.title = name
        self.rounds = 0
        self.fail_on = fail_on

    def unavailable(self) -> str | None:
        return None

    @contextmanager
    def open(self, env: Env) -> Iterator[Measure]:
        def measure(cases: Sequence[Case], warmup: int, repeats: int) -> list[Measurement]:
            self.rounds += 1
            if self.rounds == self.fail_on:
                raise WrongAnswer("frame 0 is seq 7")
            return [Measurement(self.name, c, (0.001,) * repeats) for c in cases]

        yield measure


def test_a_failing_strategy_is_reported_and_the_others_carry_on(tmp_path: Path) -> None:
    plan = PLANS["quick"]
    good, bad = _FakeStrategy("good"), _FakeStrategy("bad", fail_on=2)
    report = Report(plan=plan, meta={}, titles={"good": "good", "bad": "bad"})
    report.prepared = [Prepared(d, dataset_spec(d).name, reused=True, seconds=0.0)
                       for d in plan.datasets]
    _run_strategies(report, Env("nats://unused", tmp_path, plan), [good, bad])
    assert report.failures == {"bad": "WrongAnswer: frame 0 is seq 7"}
    assert {m.strategy for m in report.measurements} == {"good"}
    assert len(report.measurements) == len(plan.datasets) * len(plan.limits)
    assert all(len(m.samples) == plan.repeats for m in report.measurements)
    assert good.rounds == len(plan.datasets) * plan.rounds
