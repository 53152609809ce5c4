"""The StreamStore contract: JetStream's sequence, deletion and limit conventions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from roomkeeper.core import NotFound, StoredMessage, StreamSpec, StreamState
from roomkeeper.ports import StreamStore

from .helpers import new_spec, with_limits

Advance = Callable[[float], Awaitable[None]]


async def filled(streams: StreamStore, count: int, spec: StreamSpec | None = None) -> StreamSpec:
    """A new stream holding frames b"f1" .. b"f<count>" at sequences 1..count."""
    spec = spec or new_spec()
    await streams.ensure(spec)
    for n in range(1, count + 1):
        assert await streams.publish(spec.subjects[0], b"f%d" % n) == n
    return spec


def frames(*seqs: int) -> tuple[StoredMessage, ...]:
    return tuple(StoredMessage(seq, b"f%d" % seq) for seq in seqs)


async def test_a_new_stream_is_empty_with_first_seq_one_past_last(
    stream_store: StreamStore,
) -> None:
    spec = new_spec()
    await stream_store.ensure(spec)
    assert await stream_store.info(spec.name) == StreamState(1, 0, 0, 0)
    assert await stream_store.fetch(spec.name, 1, 10) == ()


async def test_sequences_start_at_one_and_count_up(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 3)
    assert await stream_store.info(spec.name) == StreamState(1, 3, 3, 0)


async def test_fetch_returns_the_range_ascending(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 5)
    assert await stream_store.fetch(spec.name, 2, 3) == frames(2, 3, 4)
    assert await stream_store.fetch(spec.name, 4, 10) == frames(4, 5)
    assert await stream_store.fetch(spec.name, 6, 10) == ()


async def test_stored_bytes_come_back_exactly(stream_store: StreamStore) -> None:
    # R9: frames are opaque; nothing may decode, trim or re-encode them.
    payloads = [bytes(range(256)), b"\x00\r\n\r\n\x00", b"\xff" * 4096, "é".encode()]
    spec = new_spec()
    await stream_store.ensure(spec)
    for payload in payloads:
        await stream_store.publish(spec.subjects[0], payload)
    stored = await stream_store.fetch(spec.name, 1, 10)
    assert [m.data for m in stored] == payloads


async def test_fetch_skips_deleted_messages(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 5)
    await stream_store.delete_message(spec.name, 2)
    await stream_store.delete_message(spec.name, 4)
    assert await stream_store.fetch(spec.name, 1, 5) == frames(1, 3, 5)
    assert await stream_store.fetch(spec.name, 2, 1) == ()


async def test_info_counts_interior_deletions(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 5)
    await stream_store.delete_message(spec.name, 3)
    assert await stream_store.info(spec.name) == StreamState(1, 5, 4, 1)


async def test_deleting_the_first_message_moves_first_seq(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 5)
    await stream_store.delete_message(spec.name, 3)
    await stream_store.delete_message(spec.name, 1)
    # seq 1 is no longer interior; seq 3 still is.
    assert await stream_store.info(spec.name) == StreamState(2, 5, 3, 1)
    await stream_store.delete_message(spec.name, 2)
    # first_seq skips past the deleted 3 to the next stored message.
    assert await stream_store.info(spec.name) == StreamState(4, 5, 2, 0)


async def test_deleting_the_last_message_keeps_last_seq(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 5)
    await stream_store.delete_message(spec.name, 5)
    assert await stream_store.info(spec.name) == StreamState(1, 5, 4, 1)
    # Sequences are never reused.
    assert await stream_store.publish(spec.subjects[0], b"f6") == 6


async def test_deleting_every_message_leaves_an_empty_stream(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 3)
    for seq in (2, 3, 1):
        await stream_store.delete_message(spec.name, seq)
    assert await stream_store.info(spec.name) == StreamState(4, 3, 0, 0)
    assert await stream_store.publish(spec.subjects[0], b"f4") == 4
    assert await stream_store.info(spec.name) == StreamState(4, 4, 1, 0)


async def test_deleting_a_message_twice_is_not_an_error(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 2)
    await stream_store.delete_message(spec.name, 1)
    await stream_store.delete_message(spec.name, 1)
    await stream_store.delete_message(spec.name, 99)
    assert await stream_store.info(spec.name) == StreamState(2, 2, 1, 0)


async def test_ensure_is_idempotent_and_keeps_messages(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 3)
    await stream_store.ensure(spec)
    await stream_store.ensure(spec)
    assert await stream_store.info(spec.name) == StreamState(1, 3, 3, 0)
    assert await stream_store.fetch(spec.name, 1, 3) == frames(1, 2, 3)


async def test_ensure_updates_limits_and_keeps_what_fits(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 5)
    await stream_store.ensure(with_limits(spec, max_msgs=3))
    assert await stream_store.info(spec.name) == StreamState(3, 5, 3, 0)
    assert await stream_store.fetch(spec.name, 1, 10) == frames(3, 4, 5)
    # Lifting the limit again keeps the survivors and the sequence.
    await stream_store.ensure(spec)
    assert await stream_store.publish(spec.subjects[0], b"f6") == 6
    assert await stream_store.info(spec.name) == StreamState(3, 6, 4, 0)


async def test_max_msgs_discards_the_oldest(stream_store: StreamStore) -> None:
    spec = await filled(stream_store, 4, new_spec(max_msgs=2))
    assert await stream_store.info(spec.name) == StreamState(3, 4, 2, 0)
    assert await stream_store.fetch(spec.name, 1, 10) == frames(3, 4)


async def test_max_age_expires_old_messages(
    stream_store: StreamStore, advance: Advance
) -> None:
    spec = await filled(stream_store, 2, new_spec(max_age=1))
    await advance(1.5)
    assert await stream_store.info(spec.name) == StreamState(3, 2, 0, 0)
    assert await stream_store.fetch(spec.name, 1, 10) == ()
    assert await stream_store.publish(spec.subjects[0], b"f3") == 3
    assert await stream_store.fetch(spec.name, 1, 10) == frames(3)


async def test_a_duplicate_window_longer_than_max_age_is_cut_to_fit(
    stream_store: StreamStore, advance: Advance
) -> None:
    # The server refuses a window longer than max_age; the spec shortens it to fit.
    spec = new_spec(max_age=1)
    assert spec.duplicate_window_seconds == 1
    await stream_store.ensure(spec)
    assert await stream_store.publish(spec.subjects[0], b"f1", msg_id="m-1") == 1
    await advance(1.5)
    assert await stream_store.publish(spec.subjects[0], b"f2", msg_id="m-1") == 2


async def test_a_duplicate_msg_id_returns_the_original_seq(stream_store: StreamStore) -> None:
    spec = new_spec()
    await stream_store.ensure(spec)
    subject = spec.subjects[0]
    assert await stream_store.publish(subject, b"f1", msg_id="m-1") == 1
    assert await stream_store.publish(subject, b"again", msg_id="m-1") == 1
    assert await stream_store.publish(subject, b"f2", msg_id="m-2") == 2
    assert await stream_store.publish(subject, b"f3") == 3
    assert await stream_store.fetch(spec.name, 1, 10) == frames(1, 2, 3)


async def test_dedupe_outlives_the_original_message(stream_store: StreamStore) -> None:
    spec = new_spec()
    await stream_store.ensure(spec)
    assert await stream_store.publish(spec.subjects[0], b"f1", msg_id="m-1") == 1
    await stream_store.delete_message(spec.name, 1)
    assert await stream_store.publish(spec.subjects[0], b"f1", msg_id="m-1") == 1
    assert await stream_store.info(spec.name) == StreamState(2, 1, 0, 0)


async def test_publish_without_a_capturing_stream_is_not_found(
    stream_store: StreamStore,
) -> None:
    spec = new_spec()
    with pytest.raises(NotFound) as caught:
        await stream_store.publish(spec.subjects[0], b"lost")
    assert caught.value.code == "stream_not_found"


async def test_a_publish_lands_only_in_the_stream_that_captures_it(
    stream_store: StreamStore,
) -> None:
    mine, other = new_spec(), new_spec()
    await stream_store.ensure(mine)
    await stream_store.ensure(other)
    await stream_store.publish(mine.subjects[0], b"f1")
    assert await stream_store.info(other.name) == StreamState(1, 0, 0, 0)


async def test_a_missing_stream_reads_as_absent(stream_store: StreamStore) -> None:
    name = new_spec().name
    assert await stream_store.info(name) is None
    assert await stream_store.fetch(name, 1, 10) == ()
    await stream_store.delete(name)
    await stream_store.delete_message(name, 1)


async def test_a_deleted_stream_starts_over_when_ensured_again(
    stream_store: StreamStore,
) -> None:
    spec = await filled(stream_store, 3)
    await stream_store.delete(spec.name)
    assert await stream_store.info(spec.name) is None
    assert await stream_store.fetch(spec.name, 1, 10) == ()
    with pytest.raises(NotFound):
        await stream_store.publish(spec.subjects[0], b"lost")
    await stream_store.ensure(spec)
    assert await stream_store.info(spec.name) == StreamState(1, 0, 0, 0)
    assert await stream_store.publish(spec.subjects[0], b"f1") == 1
