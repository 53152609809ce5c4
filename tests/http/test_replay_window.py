"""A nonce is remembered for as long as its signature can still verify: the core accepts
a signature until expires + MAX_CLOCK_SKEW, so the replay cache must hold it that long."""

from __future__ import annotations

from roomkeeper.adapters.memory import ManualClock
from roomkeeper.core import MAX_CLOCK_SKEW

from .conftest import ApiClient


async def test_a_replay_in_the_skew_minute_after_expiry_is_refused(
    api: ApiClient, clock: ManualClock
) -> None:
    headers = api.sign("alice", "GET", "/rooms")
    first = await api.raw("GET", "/rooms", headers=headers)
    assert first.status == 200
    expires = int(headers["Signature-Input"].split("expires=")[1].split(";")[0])
    # Past expires, but still inside the skew that verify_request tolerates.
    clock.advance(expires - clock() + MAX_CLOCK_SKEW - 1)
    replay = await api.raw("GET", "/rooms", headers=headers)
    assert replay.status == 401
    assert replay.error == "unauthorized"
