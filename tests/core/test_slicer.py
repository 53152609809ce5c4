"""The history slicer (R5, R10): the fetches it plans, the page it builds, its terminal
state, and a hypothesis comparison against a naive model of a stream."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roomkeeper.core import (
    FetchBatch,
    Page,
    PageRequest,
    StoredMessage,
    StreamState,
    parse_page_request,
)
from roomkeeper.core._history import HistorySlicer, SlicerState

NAME = "ROOM_x"


@dataclass(frozen=True)
class FakeStream:
    """A stream as JetStream keeps it: first_seq is stored whenever messages > 0,
    last_seq may be a deleted sequence, and an empty stream has first = last + 1."""

    first: int
    last: int
    deleted: frozenset[int] = frozenset()

    @property
    def stored(self) -> list[int]:
        return [s for s in range(self.first, self.last + 1) if s not in self.deleted]

    def state(self) -> StreamState:
        span = self.last - self.first + 1
        return StreamState(self.first, self.last, span - len(self.deleted), len(self.deleted))

    def fetch(self, batch: FetchBatch) -> tuple[StoredMessage, ...]:
        top = min(batch.start_seq + batch.count, self.last + 1)
        return tuple(message(s) for s in range(max(batch.start_seq, self.first), top)
                     if s not in self.deleted)


def message(seq: int) -> StoredMessage:
    return StoredMessage(seq, b"frame %d" % seq)


def run(stream: FakeStream, request: PageRequest) -> tuple[Page, list[FetchBatch]]:
    slicer = HistorySlicer(NAME, stream.state(), request)
    fetches: list[FetchBatch] = []
    while True:
        step = slicer.next_step()
        if isinstance(step, Page):
            assert slicer.state is SlicerState.DONE
            assert slicer.rounds == len(fetches)
            return step, fetches
        fetches.append(step)
        slicer.receive(stream.fetch(step))


def model(stream: FakeStream, request: PageRequest) -> Page:
    """The page by definition, from the full list of stored sequences."""
    if request.after is not None:
        newer = [s for s in stream.stored if s > request.after]
        chosen, more = newer[: request.limit], len(newer) > request.limit
    else:
        bound = request.before if request.before is not None else stream.last + 1
        older = [s for s in stream.stored if s < bound]
        chosen, more = older[-request.limit:], len(older) > request.limit
    return Page(tuple(message(s) for s in chosen), has_more=more)


# --- the common cases, fetch by fetch ---------------------------------------------------


def test_default_page_without_deletions_is_one_fetch_of_exactly_limit() -> None:
    page, fetches = run(FakeStream(1, 100_000), PageRequest())
    assert fetches == [FetchBatch(NAME, 99_801, 200)]
    assert (page.first_seq, page.last_seq, page.has_more) == (99_801, 100_000, True)


def test_a_huge_backlog_costs_one_fetch() -> None:
    """Rounds and range sizes never depend on the backlog's length."""
    page, fetches = run(FakeStream(1, 10**15), PageRequest(limit=1000))
    assert fetches == [FetchBatch(NAME, 10**15 - 999, 1000)]
    assert len(page.messages) == 1000


def test_before_reads_the_newest_frames_below_the_cursor() -> None:
    page, fetches = run(FakeStream(1, 500), PageRequest(limit=50, before=101))
    assert fetches == [FetchBatch(NAME, 51, 50)]
    assert (page.first_seq, page.last_seq, page.has_more) == (51, 100, True)


def test_after_looks_one_past_the_page_to_know_has_more() -> None:
    page, fetches = run(FakeStream(1, 500), PageRequest(limit=50, after=100))
    assert fetches == [FetchBatch(NAME, 101, 51)]
    assert (page.first_seq, page.last_seq, page.has_more) == (101, 150, True)


def test_after_with_a_deleted_last_seq_has_no_more() -> None:
    """last_seq may be a deleted sequence, so has_more cannot come from it."""
    page, fetches = run(FakeStream(1, 10, frozenset({9, 10})), PageRequest(limit=3, after=5))
    assert fetches == [FetchBatch(NAME, 6, 5)]
    assert page == Page((message(6), message(7), message(8)), has_more=False)


def test_backward_has_more_is_false_exactly_at_first_seq() -> None:
    page, _ = run(FakeStream(51, 100), PageRequest(limit=50))
    assert (page.first_seq, page.has_more) == (51, False)
    page, _ = run(FakeStream(50, 100), PageRequest(limit=50))
    assert (page.first_seq, page.has_more) == (51, True)


def test_cursors_outside_the_stream_are_clamped_to_it() -> None:
    stream = FakeStream(1001, 1100)  # everything below 1001 expired
    assert run(stream, PageRequest(limit=10, after=3))[1] == [FetchBatch(NAME, 1001, 11)]
    assert run(stream, PageRequest(limit=10, before=10**18))[1] == [FetchBatch(NAME, 1091, 10)]


@pytest.mark.parametrize(("stream", "request_"), [
    (FakeStream(1, 0), PageRequest()),
    (FakeStream(5001, 5000), PageRequest(after=0)),
    (FakeStream(10, 20), PageRequest(before=10)),
    (FakeStream(10, 20), PageRequest(before=0)),
    (FakeStream(10, 20), PageRequest(after=20)),
    (FakeStream(10, 20), PageRequest(after=10**18)),
])
def test_nothing_in_the_direction_of_paging_needs_no_fetch(
    stream: FakeStream, request_: PageRequest
) -> None:
    assert run(stream, request_) == (Page((), has_more=False), [])


def test_the_first_range_is_sized_by_the_deletion_density() -> None:
    """Half the stream is deleted: the first range covers about twice the limit, so one
    round fills the page instead of a dozen."""
    stream = FakeStream(1, 10_000, frozenset(range(2, 10_001, 2)))
    page, fetches = run(stream, PageRequest(limit=100))
    assert len(fetches) == 1
    assert 200 <= fetches[0].count <= 300
    assert page == model(stream, PageRequest(limit=100))


def test_a_dense_run_of_deletions_costs_rounds_in_proportion() -> None:
    """3000 deleted sequences just below the top and limit 100: later rounds cover at least
    need + limit sequences, so the run costs at most 1 + ceil(3000 / 101) rounds."""
    stream = FakeStream(1, 10_000, frozenset(range(7_000, 10_000)))
    page, fetches = run(stream, PageRequest(limit=100))
    assert page == model(stream, PageRequest(limit=100))
    assert len(fetches) <= 1 + -(-3000 // 101)
    assert all(b.start_seq + b.count == a.start_seq for a, b in itertools.pairwise(fetches))


# --- driver bugs and the terminal state -------------------------------------------------


def started(stream: FakeStream = FakeStream(1, 100), limit: int = 10) -> HistorySlicer:
    slicer = HistorySlicer(NAME, stream.state(), PageRequest(limit=limit))
    assert slicer.next_step() == FetchBatch(NAME, 91, 10)
    return slicer


@pytest.mark.parametrize("seqs", [
    (90,), (101,), (95, 95), (96, 95), (91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101),
])
def test_a_batch_outside_its_range_or_out_of_order_is_refused(seqs: tuple[int, ...]) -> None:
    slicer = started()
    with pytest.raises(ValueError, match="out of order or outside"):
        slicer.receive(tuple(message(s) for s in seqs))


def test_a_fetch_must_be_answered_before_the_next_one() -> None:
    slicer = started()
    with pytest.raises(RuntimeError, match="AWAITING_BATCH"):
        slicer.next_step()


def test_a_batch_nobody_asked_for_is_refused() -> None:
    slicer = HistorySlicer(NAME, FakeStream(1, 100).state(), PageRequest())
    assert slicer.state is SlicerState.NEED_FETCH
    with pytest.raises(RuntimeError, match="NEED_FETCH"):
        slicer.receive(())


def test_a_finished_slicer_takes_nothing_more_and_keeps_its_page() -> None:
    slicer = started()
    slicer.receive(tuple(message(s) for s in range(91, 101)))
    assert slicer.state is SlicerState.DONE
    page = slicer.next_step()
    assert slicer.next_step() is page
    with pytest.raises(RuntimeError, match="DONE"):
        slicer.receive(())


@pytest.mark.parametrize("request_", [
    PageRequest(limit=0), PageRequest(limit=1001), PageRequest(before=1, after=1),
])
def test_an_unparsed_page_request_is_refused(request_: PageRequest) -> None:
    with pytest.raises(ValueError):
        HistorySlicer(NAME, FakeStream(1, 10).state(), request_)


def test_an_inconsistent_deleted_count_only_widens_the_first_range() -> None:
    stream = FakeStream(1, 100)
    state = StreamState(first_seq=1, last_seq=100, messages=100, deleted=500)
    slicer = HistorySlicer(NAME, state, PageRequest(limit=10))
    fetch = slicer.next_step()
    assert isinstance(fetch, FetchBatch)
    slicer.receive(stream.fetch(fetch))
    assert slicer.next_step() == model(stream, PageRequest(limit=10))


# --- hypothesis against the model -------------------------------------------------------


@st.composite
def fake_streams(draw: st.DrawFn) -> FakeStream:
    first = draw(st.one_of(st.just(1), st.integers(2, 10**6), st.just(10**18)))
    span = draw(st.integers(0, 2500))
    last = first + span - 1
    if span <= 1:
        return FakeStream(first, last)
    interior = st.integers(first + 1, last)
    deleted: set[int] = set()
    for start, length in draw(st.lists(st.tuples(interior, st.integers(1, 1500)), max_size=3)):
        deleted.update(range(start, min(start + length, last + 1)))
    deleted.update(draw(st.lists(interior, max_size=100)))
    rate = draw(st.sampled_from([0.0, 0.0, 0.3, 0.9, 0.995]))
    # A seeded generator rather than st.randoms(): each of its calls would be a draw.
    rnd = random.Random(draw(st.integers(0, 2**32)))
    deleted.update(s for s in range(first + 1, last + 1) if rnd.random() < rate)
    return FakeStream(first, last, frozenset(deleted))


@st.composite
def requests(draw: st.DrawFn, stream: FakeStream) -> PageRequest:
    raw_limit = draw(st.one_of(st.integers(1, 30), st.integers(1, 1200), st.integers(1, 10**6)))
    near = st.integers(max(0, stream.first - 3), stream.last + 3)
    cursor = draw(st.one_of(st.none(), near, st.integers(0, 2**63 - 1)).map(
        lambda c: None if c is None else str(c)))
    backward = draw(st.booleans())
    return parse_page_request(
        str(raw_limit), cursor if backward else None, None if backward else cursor
    )


def window_deletions(stream: FakeStream, request: PageRequest, page: Page) -> int:
    """Deleted sequences between the cursor and the stored message just beyond the
    page's far edge: the only sequences a fetch round may have to wade through."""
    stored = stream.stored
    if request.after is None:
        top = stream.last if request.before is None else min(stream.last, request.before - 1)
        below = [s for s in stored if page.first_seq is not None and s < page.first_seq]
        low = below[-1] + 1 if below else stream.first
        return sum(low <= d <= top for d in stream.deleted)
    low = max(stream.first, request.after + 1)
    above = [s for s in stored if page.last_seq is not None and s > page.last_seq]
    high = above[0] - 1 if above else stream.last
    return sum(low <= d <= high for d in stream.deleted)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_slicer_matches_the_model_in_bounded_rounds(data: st.DataObject) -> None:
    stream = data.draw(fake_streams())
    request = data.draw(requests(stream))
    page, fetches = run(stream, request)
    assert page == model(stream, request)
    # Every fetch stays inside the stream and covers fresh sequences.
    for fetch in fetches:
        assert fetch.count >= 1
        assert stream.first <= fetch.start_seq <= fetch.start_seq + fetch.count - 1 <= stream.last
    # The bound proved in _history's docstring: rounds <= 1 + ceil(D / (limit + 1)).
    deletions = window_deletions(stream, request, page)
    assert len(fetches) <= 1 + -(-deletions // (request.limit + 1))
    if not stream.deleted and fetches:
        # No deletions: one round of exactly the sequences the page needs (forward paging
        # looks one further), or of the whole region when it is smaller.
        if request.after is None:
            top = stream.last if request.before is None else min(stream.last, request.before - 1)
            wanted, region = request.limit, top - stream.first + 1
        else:
            bottom = max(stream.first, request.after + 1)
            wanted, region = request.limit + 1, stream.last - bottom + 1
        assert [f.count for f in fetches] == [min(wanted, region)]
