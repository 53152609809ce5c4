"""Timing with a check: every answer is compared with the ground truth, the first one
before any timing starts and each timed one after its clock stops. An honest benchmark
never times a wrong answer."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ._plan import Dataset, expected_page

__all__ = [
    "Case",
    "Measure",
    "Measurement",
    "Reader",
    "WrongAnswer",
    "check_page",
    "percentile",
    "time_case",
]

#: read(stream, limit) -> the newest ``limit`` stored (seq, frame) pairs, oldest first.
Reader = Callable[[str, int], Awaitable[Sequence[tuple[int, bytes]]]]


#: measure(cases, warmup, repeats): one round of one strategy over one dataset's cases.
Measure = Callable[[Sequence["Case"], int, int], list["Measurement"]]


class WrongAnswer(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Case:
    dataset: Dataset
    stream: str
    limit: int


@dataclass(frozen=True, slots=True)
class Measurement:
    strategy: str
    case: Case
    #: Seconds per read, in the order they were taken.
    samples: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1e3

    @property
    def p95_ms(self) -> float:
        return percentile(self.samples, 95) * 1e3


def percentile(samples: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile: always one of the samples, never an interpolation."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


async def time_case(
    strategy: str, read: Reader, case: Case, warmup: int, repeats: int
) -> Measurement:
    expected = expected_page(case.dataset, case.limit)
    check_page(strategy, case, await read(case.stream, case.limit), expected)
    for _ in range(warmup):
        await read(case.stream, case.limit)
    samples: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        got = await read(case.stream, case.limit)
        samples.append(time.perf_counter() - started)
        check_page(strategy, case, got, expected)
    return Measurement(strategy, case, tuple(samples))


def check_page(
    strategy: str,
    case: Case,
    got: Sequence[tuple[int, bytes]],
    expected: Sequence[tuple[int, bytes]],
) -> None:
    if len(got) != len(expected):
        raise WrongAnswer(
            f"{strategy} on {case.dataset.label}, limit {case.limit}: "
            f"{len(got)} frames, expected {len(expected)}"
        )
    for i, ((seq, data), (want_seq, want_data)) in enumerate(zip(got, expected, strict=True)):
        if seq != want_seq or bytes(data) != want_data:
            raise WrongAnswer(
                f"{strategy} on {case.dataset.label}, limit {case.limit}: frame {i} is "
                f"seq {seq} ({len(data)} B), expected seq {want_seq} ({len(want_data)} B)"
            )
