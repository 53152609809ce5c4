"""Random frames over HTTP publish, on memory and on real NATS: history gives back every
accepted frame byte for byte (R9: opaque), and a frame over 1 MiB is a clear 413 that
changes nothing in the room (R11)."""

from __future__ import annotations

import base64
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.backends import Stack, open_stack
from tests.reliability.harness import record

MAX_FRAME = 1024 * 1024
#: Edge cases first: empty, one byte, invalid UTF-8 of several kinds, every byte value.
EDGES = [b"", b"\x00", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
         bytes(range(256)), b"\x00" * MAX_FRAME]


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


#: Large frames come from a seeded generator: Hypothesis draws the size, not each byte.
sizes = st.one_of(st.sampled_from([1, 2, MAX_FRAME - 1, MAX_FRAME]),
                  st.integers(0, MAX_FRAME))
frames = st.one_of(st.sampled_from(EDGES), st.binary(max_size=512),
                   st.builds(noise, sizes, st.integers(0, 2**32)))
oversized = st.builds(noise, st.integers(MAX_FRAME + 1, MAX_FRAME + 64 * 1024),
                      st.integers(0, 2**32))

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(params=["memory", "nats"])
def backend(request: pytest.FixtureRequest) -> tuple[str, object]:
    """The backend's name and its server (sync: Hypothesis reruns the test body, and
    with it every async fixture, once per example)."""
    server = request.getfixturevalue("nats_server") if request.param == "nats" else None
    return request.param, server


@asynccontextmanager
async def a_room(backend: tuple[str, object]) -> AsyncIterator[tuple[Stack, str]]:
    """A fresh room that already holds two frames, so "nothing moved" means something."""
    async with open_stack(*backend) as stack:
        created = await stack.alice.create_room("frames")
        assert created.status == 201, created
        room_id = created.json()["id"]
        for frame in (b"earlier", b"\x00later"):
            assert (await stack.alice.publish(room_id, frame)).status == 201
        yield stack, room_id


async def room_state(stack: Stack, room_id: str) -> tuple[object, object]:
    """The room record and its newest frames, as the owner sees them."""
    record_ = await stack.alice.call("GET", f"/rooms/{room_id}")
    tail = await stack.alice.history(room_id, "limit=3")
    return record_.json(), tail.json()


@given(frame=frames)
@SETTINGS
async def test_history_returns_every_published_frame_exactly(
    backend: tuple[str, object], frame: bytes
) -> None:
    async with a_room(backend) as (stack, room_id):
        before = await room_state(stack, room_id)
        published = await stack.alice.publish(room_id, frame)
        assert published.status == 201, published
        seq = published.json()["seq"]

        page = (await stack.alice.history(room_id, f"after={seq - 1}&limit=1")).json()
        assert [base64.b64decode(m, validate=True) for m in page["messages"]] == [frame]
        assert (page["first_seq"], page["last_seq"], page["has_more"]) == (seq, seq, False)
        # Nothing before it moved.
        older = (await stack.alice.history(room_id, f"before={seq}&limit=3")).json()
        assert older == before[1]
    LARGEST[stack.backend] = max(LARGEST.get(stack.backend, 0), len(frame))
    record("frames", **{f"{name}: largest frame round-tripped (bytes)": size
                        for name, size in LARGEST.items()})


@given(frame=oversized)
@settings(SETTINGS, max_examples=5)
async def test_an_oversized_frame_is_a_clear_413_and_changes_nothing(
    backend: tuple[str, object], frame: bytes
) -> None:
    async with a_room(backend) as (stack, room_id):
        before = await room_state(stack, room_id)
        refused = await stack.alice.publish(room_id, frame)
        assert refused.status == 413, refused
        assert refused.json()["error"] == "payload_too_large"
        assert await room_state(stack, room_id) == before


#: The largest frame each backend gave back exactly, for the report.
LARGEST: dict[str, int] = {}
