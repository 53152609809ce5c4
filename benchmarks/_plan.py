"""What a run covers: the datasets, the page sizes, the repeats, and the ground truth.

Every frame's bytes and every deleted sequence follow from the dataset and a fixed seed,
so each strategy's answer is checked against an independent expectation, not against
another strategy that might share its bug.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cache

from roomkeeper.core import RoomId, parse_room_id

__all__ = [
    "PLANS",
    "Dataset",
    "Plan",
    "count_label",
    "deleted_seqs",
    "expected_page",
    "payload",
]

SEED = 20261204
_HEADER = 8
#: Frames are slices of one random block, so they look like ciphertext (R9: opaque,
#: incompressible) without generating a million random strings.
_BLOCK = random.Random(SEED).randbytes(1 << 20)
_STRIDE = 2654435761  # Knuth's multiplicative hash spreads offsets across the block.

KIB = 1024


@dataclass(frozen=True, slots=True)
class Dataset:
    backlog: int
    frame: int
    deletes_pct: int

    @property
    def room_id(self) -> RoomId:
        raw = f"bench{self.backlog:08d}f{self.frame:06d}d{self.deletes_pct:03d}zz"
        room_id = parse_room_id(raw)
        if room_id is None:  # pragma: no cover - the format above is always valid
            raise ValueError(f"not a room id: {raw}")
        return room_id

    @property
    def label(self) -> str:
        return f"{count_label(self.backlog)} x {_size(self.frame)}, {self.deletes_pct}% deleted"

    @property
    def deleted_count(self) -> int:
        return self.backlog * self.deletes_pct // 100


@dataclass(frozen=True, slots=True)
class Plan:
    mode: str
    datasets: tuple[Dataset, ...]
    limits: tuple[int, ...]
    #: Untimed reads before each round of each strategy on each dataset.
    warmup: int
    #: Timed reads per (strategy, dataset, limit), over all rounds.
    repeats: int
    #: The repeats are taken in rounds, strategies in turn (order rotating), so that
    #: a burst of load from elsewhere on the machine hits every strategy alike.
    rounds: int
    #: Why the plan covers what it does; printed with the results.
    coverage: str
    #: The HTTP load probe: this dataset, this page size, each client count for this long.
    load_dataset: Dataset
    load_limit: int
    load_clients: tuple[int, ...]
    load_seconds: float
    #: The memory probe: limit=1000 pages of large frames, this many requests.
    rss_dataset: Dataset
    rss_requests: int


def _grid(backlogs: tuple[int, ...], frames: tuple[int, ...]) -> tuple[Dataset, ...]:
    return tuple(Dataset(b, f, d) for f in frames for b in backlogs for d in (0, 10))


PLANS = {
    "full": Plan(
        mode="full",
        datasets=_grid((10_000, 100_000, 1_000_000), (256,))
        + _grid((10_000, 100_000), (4 * KIB,)),
        limits=(200, 1000),
        warmup=2,
        repeats=25,
        rounds=5,
        coverage=(
            "256 B frames at 10k, 100k and 1M; 4 KiB frames at 10k and 100k only "
            "(1M x 4 KiB is 4 GiB per stream and adds nothing the 1M x 256 B line does "
            "not show: a read touches only the newest page). Each with 0% and 10% "
            "deletions."
        ),
        load_dataset=Dataset(100_000, 256, 0),
        load_limit=200,
        load_clients=(1, 8, 32),
        load_seconds=8.0,
        rss_dataset=Dataset(2_000, 64 * KIB, 0),
        rss_requests=5,
    ),
    "quick": Plan(
        mode="quick",
        datasets=_grid((10_000, 100_000), (256,)),
        limits=(200, 1000),
        warmup=1,
        repeats=6,
        rounds=2,
        coverage="256 B frames at 10k and 100k, with 0% and 10% deletions.",
        load_dataset=Dataset(100_000, 256, 0),
        load_limit=200,
        load_clients=(1, 8, 32),
        load_seconds=2.0,
        rss_dataset=Dataset(2_000, 64 * KIB, 0),
        rss_requests=2,
    ),
    "smoke": Plan(
        mode="smoke",
        datasets=(Dataset(2_000, 256, 0), Dataset(2_000, 256, 10)),
        limits=(200, 1000),
        warmup=0,
        repeats=2,
        rounds=1,
        coverage="2k x 256 B with 0% and 10% deletions: keeps the harness from rotting.",
        load_dataset=Dataset(2_000, 256, 0),
        load_limit=200,
        load_clients=(1, 8),
        load_seconds=0.2,
        rss_dataset=Dataset(200, 64 * KIB, 0),
        rss_requests=1,
    ),
}


def payload(seq: int, frame: int) -> bytes:
    """The exact bytes stored at ``seq``: the sequence number, then pseudo-random filler."""
    offset = (seq * _STRIDE) % (len(_BLOCK) - frame)
    return seq.to_bytes(_HEADER, "big") + _BLOCK[offset : offset + frame - _HEADER]


@cache
def deleted_seqs(dataset: Dataset) -> frozenset[int]:
    """Interior deletions, spread at random (seeded): never the first or last sequence,
    so the stream's bounds stay put and only the inside has holes."""
    rng = random.Random(f"{SEED}:{dataset.backlog}:{dataset.deletes_pct}")
    return frozenset(rng.sample(range(2, dataset.backlog), dataset.deleted_count))


def expected_page(dataset: Dataset, limit: int) -> tuple[tuple[int, bytes], ...]:
    """The newest ``limit`` stored frames, oldest first (R5, R10)."""
    deleted = deleted_seqs(dataset)
    seqs: list[int] = []
    seq = dataset.backlog
    while len(seqs) < limit and seq >= 1:
        if seq not in deleted:
            seqs.append(seq)
        seq -= 1
    return tuple((s, payload(s, dataset.frame)) for s in reversed(seqs))


def count_label(n: int) -> str:
    for unit, scale in (("M", 1_000_000), ("k", 1_000)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _size(n: int) -> str:
    return f"{n // KIB} KiB" if n >= KIB and n % KIB == 0 else f"{n} B"
