"""NonceStore on a JetStream KV bucket with a TTL: the replay cache of API.md, shared by
every roomkeeper instance that uses the same NATS.

``add`` is ``kv.create``: the server admits exactly one create per key, so of two
instances that see the same (keyid, nonce) at once, one gets True and the other False.

Keys: KV keys allow only ``[-/_=.a-zA-Z0-9]``, and a nonce is any sf-string, so the key
is ``n.`` + the SHA-256 hex of ``keyid + "\\0" + nonce`` (the NUL keeps ("ab", "c") and
("a", "bc") apart; a keyid never contains one).

Expiry, two bounds:
- each entry carries a per-message TTL (``Nats-TTL``) of ``expires_at - now``, rounded
  up to whole seconds (the header's unit) and at least 1 s, so a nonce is forgotten
  when it expires, as the port promises;
- the bucket's ``max_age`` is NONCE_TTL = 420 s: a signature lives at most 300 s, its
  ``created`` may be 60 s ahead and its ``expires`` 60 s behind the server's clock, so
  no accepted signature outlives 420 s. It caps every entry, whatever ``expires_at``
  a caller passes.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from roomkeeper.core import MAX_CLOCK_SKEW, MAX_WINDOW, KeyId

from .bridge import NatsConnection
from .errors import translate_errors, translate_kv_errors
from .rooms import ensure_bucket

__all__ = ["NONCES_BUCKET", "NONCE_TTL", "NatsNonceStore", "nonce_key", "open_nonce_store"]

NONCES_BUCKET = "roomkeeper_nonces"
#: Seconds: the longest an accepted signature can stay inside its time window.
NONCE_TTL = float(MAX_WINDOW + 2 * MAX_CLOCK_SKEW)
#: The server's smallest per-message TTL.
MIN_ENTRY_TTL = 1.0


def nonce_key(keyid: KeyId, nonce: str) -> str:
    raw = f"{keyid}\0{nonce}".encode("utf-8", "surrogatepass")
    return "n." + hashlib.sha256(raw).hexdigest()


def entry_ttl(expires_at: float, now: float) -> float:
    """Whole seconds until ``expires_at``, within [MIN_ENTRY_TTL, NONCE_TTL]."""
    return float(math.ceil(min(NONCE_TTL, max(MIN_ENTRY_TTL, expires_at - now))))


def nonces_bucket_config(replicas: int, bucket: str = NONCES_BUCKET) -> KeyValueConfig:
    # File storage: replay protection has to survive a NATS restart.
    return KeyValueConfig(
        bucket=bucket, history=1, ttl=NONCE_TTL, storage=StorageType.FILE,
        replicas=replicas, description="roomkeeper signature nonces (replay cache)",
    )


async def open_nonce_store(
    conn: NatsConnection,
    *,
    replicas: int = 1,
    bucket: str = NONCES_BUCKET,
    clock: Callable[[], float] = time.time,
) -> NatsNonceStore:
    """Ensure the nonces bucket (one crossing) and return the store."""
    # Only at startup, which reports a failure itself.
    with translate_errors(f"ensure KV bucket {bucket}", log_refusals=False):
        kv = await conn.call(ensure_bucket, conn.js, nonces_bucket_config(replicas, bucket))
    return NatsNonceStore(conn, kv, clock=clock)


class NatsNonceStore:
    def __init__(
        self, conn: NatsConnection, kv: KeyValue, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._conn = conn
        self._kv = kv
        self._clock = clock

    async def add(self, keyid: KeyId, nonce: str, expires_at: float) -> bool:
        ttl = entry_ttl(expires_at, self._clock())
        with translate_kv_errors("remember a nonce"):
            return await self._conn.call(_create, self._kv, nonce_key(keyid, nonce), ttl)


async def _create(kv: KeyValue, key: str, ttl: float) -> bool:
    """On the bridge loop: True when this call created the key."""
    try:
        await kv.create(key, b"", msg_ttl=ttl)
    except nats.js.errors.KeyWrongLastSequenceError:
        return False
    except nats.js.errors.KeyNotFoundError:
        # create() lost, then the winner's entry expired before it could be re-read:
        # the nonce was in use a moment ago, so this is still a replay.
        return False
    return True
