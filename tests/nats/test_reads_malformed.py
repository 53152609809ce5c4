"""Malformed batch replies fail the read as a 503 (BackendUnavailable), not a 500."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from roomkeeper.adapters.nats.reads import BatchReader, _Round
from roomkeeper.core import BackendUnavailable

KEY = b"_INBOX.x.1"


def failure_of(feed: Any) -> BaseException | None:
    async def scenario() -> BaseException | None:
        reader = BatchReader(cast(Any, None))
        batch = _Round(asyncio.get_running_loop().create_future())
        reader._rounds[KEY] = batch
        feed(reader)
        assert batch.done.done()
        return batch.done.exception()

    return asyncio.run(scenario())


FEEDS = {
    "non-numeric Status": lambda r: r.on_parsed(KEY, {"Status": "abc"}, b""),
    "non-numeric Nats-Num-Pending": lambda r: r.on_parsed(
        KEY, {"Status": "204", "Nats-Num-Pending": "x"}, b""),
    "non-numeric Nats-Sequence (parsed)": lambda r: r.on_parsed(
        KEY, {"Nats-Sequence": "x", "Nats-Num-Pending": "1"}, b"m"),
    "non-numeric Nats-Sequence (raw)": lambda r: r.on_raw(
        KEY, b"NATS/1.0\r\nNats-Sequence: x\r\nNats-Num-Pending: 1\r\n\r\n", b"m"),
    "a batch reply without Nats-Sequence": lambda r: r.on_parsed(
        KEY, {"Nats-Num-Pending": "1"}, b"m"),
}


@pytest.mark.parametrize("feed", FEEDS.values(), ids=list(FEEDS))
def test_a_malformed_reply_is_a_backend_error(feed: Any) -> None:
    exc = failure_of(feed)
    assert isinstance(exc, BackendUnavailable)
    assert exc.code == "jetstream_error" and exc.status == 503
    assert "malformed" in str(exc)
