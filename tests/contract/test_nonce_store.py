"""The NonceStore contract: a replay cache keyed by (keyid, nonce), with expiry."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from roomkeeper.ports import NonceStore

from .helpers import new_keyid


def new_nonce() -> str:
    return os.urandom(16).hex()


async def test_a_new_nonce_is_accepted_once(
    nonce_store: NonceStore, now: Callable[[], float]
) -> None:
    keyid, nonce = new_keyid(), new_nonce()
    assert await nonce_store.add(keyid, nonce, now() + 60) is True
    assert await nonce_store.add(keyid, nonce, now() + 60) is False


async def test_nonces_are_per_key(nonce_store: NonceStore, now: Callable[[], float]) -> None:
    alice, bob, nonce = new_keyid(), new_keyid(), new_nonce()
    assert await nonce_store.add(alice, nonce, now() + 60) is True
    assert await nonce_store.add(bob, nonce, now() + 60) is True
    assert await nonce_store.add(alice, new_nonce(), now() + 60) is True
    assert await nonce_store.add(alice, nonce, now() + 60) is False


async def test_a_nonce_is_new_again_after_it_expires(
    nonce_store: NonceStore,
    now: Callable[[], float],
    advance: Callable[[float], Awaitable[None]],
) -> None:
    keyid, nonce = new_keyid(), new_nonce()
    assert await nonce_store.add(keyid, nonce, now() + 1) is True
    assert await nonce_store.add(keyid, nonce, now() + 1) is False
    await advance(1.5)
    assert await nonce_store.add(keyid, nonce, now() + 1) is True
    assert await nonce_store.add(keyid, nonce, now() + 1) is False


async def test_a_replay_does_not_extend_the_expiry(
    nonce_store: NonceStore,
    now: Callable[[], float],
    advance: Callable[[float], Awaitable[None]],
) -> None:
    keyid, nonce = new_keyid(), new_nonce()
    assert await nonce_store.add(keyid, nonce, now() + 1) is True
    assert await nonce_store.add(keyid, nonce, now() + 60) is False
    await advance(1.5)
    assert await nonce_store.add(keyid, nonce, now() + 1) is True
