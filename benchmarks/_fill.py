"""Fill real streams once and reuse them: a marker file records a finished fill, and the
stream's own state is checked against it before a rerun trusts it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from tqdm import tqdm  # type: ignore[import-untyped]

from ._nats import connect, delete_msg
from ._plan import SEED, Dataset, deleted_seqs, payload
from ._streams import dataset_spec, stream_config

__all__ = ["FillError", "Prepared", "Skipped", "prepare_all"]

#: Publishes per flush. A flush is a PING/PONG round trip: it bounds what sits in our
#: socket buffer without paying a JetStream ack per message.
_CHUNK = 2_000
#: Bytes published but not yet stored that we allow. Core publishes are not flow
#: controlled, so an unbounded lead could overrun the server's stream ingest queue.
_MAX_AHEAD_BYTES = 64 << 20
_STALL_SECONDS = 15.0
_DELETE_WORKERS = 32
#: Room left on the disk after a fill, so the benchmark never fills it up.
_DISK_RESERVE = 2 << 30
_MARKER_FORMAT = 3


class FillError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Prepared:
    dataset: Dataset
    stream: str
    reused: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class Skipped:
    dataset: Dataset
    reason: str


async def prepare_all(
    url: str, datasets: tuple[Dataset, ...], data_dir: Path
) -> tuple[list[Prepared], list[Skipped]]:
    ready: list[Prepared] = []
    skipped: list[Skipped] = []
    async with connect(url) as nc:
        js = nc.jetstream(timeout=30)
        for dataset in datasets:
            result = await _prepare(nc, js, dataset, data_dir)
            if isinstance(result, Prepared):
                ready.append(result)
            else:
                skipped.append(result)
    return ready, skipped


async def _prepare(
    nc: Client, js: JetStreamContext, dataset: Dataset, data_dir: Path
) -> Prepared | Skipped:
    spec = dataset_spec(dataset)
    marker = data_dir / "markers" / f"{spec.name}.json"
    started = time.perf_counter()
    if await _reusable(js, dataset, marker):
        return Prepared(dataset, spec.name, reused=True, seconds=time.perf_counter() - started)
    marker.unlink(missing_ok=True)
    await _delete_stream(js, spec.name)
    if reason := _no_room_for(dataset, data_dir):
        return Skipped(dataset, reason)
    await js.add_stream(stream_config(spec))
    await _publish(nc, js, dataset, spec.name, spec.subjects[0])
    await _delete_interior(nc, dataset, spec.name)
    await _check_state(js, dataset, spec.name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(_marker(dataset), indent=2))
    return Prepared(dataset, spec.name, reused=False, seconds=time.perf_counter() - started)


def _marker(dataset: Dataset) -> dict[str, Any]:
    return {
        "format": _MARKER_FORMAT,
        "seed": SEED,
        "backlog": dataset.backlog,
        "frame": dataset.frame,
        "deletes_pct": dataset.deletes_pct,
        # A change to the R8 config or its translation must not silently reuse streams
        # made with the old one.
        "config": stream_config(dataset_spec(dataset)).as_dict(),
    }


async def _reusable(js: JetStreamContext, dataset: Dataset, marker: Path) -> bool:
    """The marker says a fill finished with today's config, and the stream agrees."""
    if not _marker_matches(dataset, marker):
        return False
    try:
        await _check_state(js, dataset, dataset_spec(dataset).name)
    except (NotFoundError, FillError):
        return False
    return True


def _marker_matches(dataset: Dataset, marker: Path) -> bool:
    try:
        return bool(json.loads(marker.read_text()) == _marker(dataset))
    except (OSError, json.JSONDecodeError):
        return False


async def _delete_stream(js: JetStreamContext, name: str) -> None:
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(name)


def _no_room_for(dataset: Dataset, data_dir: Path) -> str | None:
    # File store: each record carries the subject, a header and a checksum; 10% on top
    # for indexes and block slack. Deleted records keep their space until compaction.
    need = int(dataset.backlog * (dataset.frame + 96) * 1.1)
    data_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(data_dir).free
    if free - need >= _DISK_RESERVE:
        return None
    return (
        f"skipped {dataset.label}: needs ~{need / 2**30:.1f} GiB and {_DISK_RESERVE >> 30} GiB "
        f"must stay free, but only {free / 2**30:.1f} GiB is free under {data_dir}"
    )


async def _publish(
    nc: Client, js: JetStreamContext, dataset: Dataset, stream: str, subject: str
) -> None:
    """Core NATS publishes in bulk (R3: the stream captures plain publishes)."""
    ahead = max(_CHUNK, _MAX_AHEAD_BYTES // dataset.frame)
    with tqdm(total=dataset.backlog, desc=f"fill {dataset.label}", unit="msg",
              unit_scale=True, disable=None, leave=False) as bar:
        for start in range(1, dataset.backlog + 1, _CHUNK):
            end = min(start + _CHUNK, dataset.backlog + 1)
            for seq in range(start, end):
                await nc.publish(subject, payload(seq, dataset.frame))
            await nc.flush()
            if end - 1 - ahead > 0:
                await _wait_stored(js, stream, end - 1 - ahead)
            bar.update(end - start)
    await _wait_stored(js, stream, dataset.backlog)


async def _wait_stored(js: JetStreamContext, stream: str, target: int) -> None:
    """Wait until the stream holds sequence ``target``. A dropped publish would leave it
    short forever, so a stall is an error rather than a wait."""
    last, since = -1, time.monotonic()
    while True:
        seq = (await js.stream_info(stream)).state.last_seq
        if seq >= target:
            return
        if seq != last:
            last, since = seq, time.monotonic()
        elif time.monotonic() - since > _STALL_SECONDS:
            raise FillError(f"{stream} stopped at seq {seq} of {target}: publishes were lost")
        await asyncio.sleep(0.01)


async def _delete_interior(nc: Client, dataset: Dataset, stream: str) -> None:
    todo = sorted(deleted_seqs(dataset))
    if not todo:
        return
    it = iter(todo)
    with tqdm(total=len(todo), desc=f"delete {dataset.label}", unit="msg",
              unit_scale=True, disable=None, leave=False) as bar:

        async def worker() -> None:
            # Workers share one iterator: bounded concurrency without a task per delete.
            for seq in it:
                if not await delete_msg(nc, stream, seq):
                    raise FillError(f"{stream}: delete of seq {seq} was refused")
                bar.update(1)

        await asyncio.gather(*(worker() for _ in range(_DELETE_WORKERS)))


async def _check_state(js: JetStreamContext, dataset: Dataset, stream: str) -> None:
    state = (await js.stream_info(stream)).state
    want = (1, dataset.backlog, dataset.backlog - dataset.deleted_count, dataset.deleted_count)
    got = (state.first_seq, state.last_seq, state.messages, state.num_deleted or 0)
    if got != want:
        raise FillError(
            f"{stream}: (first, last, messages, deleted) is {got}, expected {want}"
        )
