"""NatsNonceStore against a real nats-server: replays are caught, across two
instances too, and entries expire with their signature."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import trio

from roomkeeper.adapters.nats import NatsConnection, open_connection
from roomkeeper.adapters.nats.nonces import (
    NONCE_TTL,
    NatsNonceStore,
    entry_ttl,
    nonce_key,
    open_nonce_store,
)
from roomkeeper.core import KeyId, encode_keyid

NOW = 1_733_300_000.0


def _keyid() -> KeyId:
    return encode_keyid(os.urandom(32))


def _nonce() -> str:
    return os.urandom(16).hex()


@pytest.fixture
def bucket() -> str:
    return f"t_nonces_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def nonces(nats_conn: NatsConnection, bucket: str) -> NatsNonceStore:
    return await open_nonce_store(nats_conn, bucket=bucket)


@pytest.fixture
async def second_conn(nats_server: object) -> AsyncIterator[NatsConnection]:
    """Another instance: its own bridge thread and its own client."""
    async with open_connection(nats_server.url, connect_timeout=2) as conn:  # type: ignore[attr-defined]
        yield conn


# Keys and TTLs (no server needed).


def test_nonce_key_is_a_valid_kv_key_that_separates_its_parts() -> None:
    key = nonce_key(KeyId("ab"), "c")
    assert re.fullmatch(r"n\.[0-9a-f]{64}", key)
    assert key == nonce_key(KeyId("ab"), "c")
    assert key != nonce_key(KeyId("a"), "bc")
    assert nonce_key(KeyId("k"), "\ud800 odd") != nonce_key(KeyId("k"), "odd")


@pytest.mark.parametrize(
    ("expires_at", "ttl"),
    [
        (NOW + 60, 60.0),
        (NOW + 0.2, 1.0),  # rounded up to whole seconds
        (NOW + 59.01, 60.0),
        (NOW - 30, 1.0),  # already past: the server's minimum
        (NOW + 10_000, NONCE_TTL),  # capped by the bucket's max_age
        (float("inf"), NONCE_TTL),
        (float("nan"), 1.0),
    ],
)
def test_entry_ttl_is_whole_seconds_within_bounds(expires_at: float, ttl: float) -> None:
    assert entry_ttl(expires_at, NOW) == ttl


def test_the_bucket_outlives_every_signature() -> None:
    # 300 s window + created 60 s ahead + expires 60 s behind (API.md).
    assert NONCE_TTL == 420.0


# The store.


async def test_a_nonce_is_new_once(nonces: NatsNonceStore) -> None:
    keyid, nonce, expires = _keyid(), _nonce(), NOW + 300
    assert await nonces.add(keyid, nonce, expires) is True
    assert await nonces.add(keyid, nonce, expires) is False
    assert await nonces.add(keyid, _nonce(), expires) is True
    assert await nonces.add(_keyid(), nonce, expires) is True


async def test_a_replay_on_another_instance_is_caught(
    nats_conn: NatsConnection, second_conn: NatsConnection, bucket: str
) -> None:
    first = await open_nonce_store(nats_conn, bucket=bucket)
    second = await open_nonce_store(second_conn, bucket=bucket)
    keyid, nonce = _keyid(), _nonce()
    assert await first.add(keyid, nonce, NOW + 60) is True
    assert await second.add(keyid, nonce, NOW + 60) is False


async def test_racing_instances_accept_a_nonce_exactly_once(
    nats_conn: NatsConnection, second_conn: NatsConnection, bucket: str
) -> None:
    stores = [await open_nonce_store(conn, bucket=bucket) for conn in (nats_conn, second_conn)]
    keyid, nonce = _keyid(), _nonce()
    results: list[bool] = []

    async def add(store: NatsNonceStore) -> None:
        results.append(await store.add(keyid, nonce, NOW + 60))

    async with trio.open_nursery() as nursery:
        for store in stores * 3:
            nursery.start_soon(add, store)
    assert sorted(results) == [False] * 5 + [True]


async def test_entries_carry_their_ttl_and_the_bucket_caps_them(
    nats_conn: NatsConnection, bucket: str
) -> None:
    nonces = await open_nonce_store(nats_conn, bucket=bucket, clock=lambda: NOW)
    keyid, nonce = _keyid(), _nonce()
    await nonces.add(keyid, nonce, NOW + 42.5)

    async def inspect() -> tuple[str | None, float | None, str]:
        msg = await nats_conn.js.get_msg(f"KV_{bucket}",
                                         subject=f"$KV.{bucket}.{nonce_key(keyid, nonce)}")
        info = await nats_conn.js.stream_info(f"KV_{bucket}")
        ttl_header = (msg.headers or {}).get("Nats-TTL")
        return ttl_header, info.config.max_age, str(info.config.storage)

    ttl_header, max_age, storage = await nats_conn.bridge.call(inspect)
    assert ttl_header == "43"
    assert max_age == NONCE_TTL
    assert "file" in storage


@pytest.mark.slow
async def test_an_expired_nonce_is_forgotten(nonces: NatsNonceStore) -> None:
    keyid, nonce = _keyid(), _nonce()
    assert await nonces.add(keyid, nonce, time.time() + 1) is True
    assert await nonces.add(keyid, nonce, time.time() + 60) is False
    # The server expires entries on its own timer: poll for up to 5 s.
    for _ in range(50):
        await trio.sleep(0.1)
        if await nonces.add(keyid, nonce, time.time() + 60):
            return
    pytest.fail("the nonce was still remembered 5 s after it expired")
