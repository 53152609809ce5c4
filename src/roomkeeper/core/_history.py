"""History paging: the request, the page, and the slicer that plans batch fetches.

Rules enforced here (from DESIGN.md):

R5. The page: ``limit`` defaults to 200, anything above 1000 is clamped to 1000, and
    messages are ordered oldest to newest.
R10. Deletes don't shrink pages: deleted or expired sequences inside the read window are
    skipped, and the slicer keeps fetching until the page is full or the stream is
    exhausted in the direction of paging.
R11. Bad input gets a clear error: a bad limit or cursor is BadRequest with a code.

The slicer is push-in, pull-out, like h11's Connection: ``next_step()`` hands out the next
FetchBatch (or, once the slicer is DONE, the Page); ``receive()`` takes that fetch's result.

Fetch-round bound. Let L be the limit and D the number of deleted sequences in the window
the page spans: from the cursor (or the end of the stream) to the neighbouring stored
message beyond the page's far edge. Every round but the last one is short (it left the page
unfilled without exhausting the region), so:
  * the first round asks for at least ``need`` sequences, so when short it held >= 1
    deletion;
  * every later round asks for at least ``need + L`` sequences, so when short it held
    >= L + 1 deletions;
  * all those rounds lie inside the window, and they are disjoint.
Hence D >= 1 + (rounds - 2) * (L + 1), i.e. rounds <= 1 + ceil(D / (L + 1)): O(1 + D / L),
never O(backlog). With no deletions in the window there is exactly one round.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ._effects import FetchBatch
from ._errors import BadRequest
from ._model import StoredMessage, StreamState

__all__ = [
    "DEFAULT_LIMIT",
    "EMPTY_PAGE",
    "MAX_CURSOR_DIGITS",
    "MAX_LIMIT",
    "HistorySlicer",
    "Page",
    "PageRequest",
    "SlicerState",
    "parse_page_request",
]

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000
#: A JetStream sequence is a uint64, at most 20 digits; 19 digits keeps every accepted
#: cursor inside a signed 64-bit integer as well.
MAX_CURSOR_DIGITS = 19

# ASCII digits only: str.isdigit() and int() would also accept "٣" and other scripts.
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    #: Newest ``limit`` frames with seq < before.
    before: int | None = None
    #: Oldest ``limit`` frames with seq > after.
    after: int | None = None


@dataclass(frozen=True, slots=True)
class Page:
    #: Oldest to newest.
    messages: tuple[StoredMessage, ...]
    #: More frames exist beyond this page in the direction of paging.
    has_more: bool

    @property
    def first_seq(self) -> int | None:
        return self.messages[0].seq if self.messages else None

    @property
    def last_seq(self) -> int | None:
        return self.messages[-1].seq if self.messages else None


EMPTY_PAGE = Page(messages=(), has_more=False)


def parse_page_request(
    limit: str | None, before: str | None = None, after: str | None = None
) -> PageRequest:
    """From raw query-string values. BadRequest (code invalid_limit / invalid_cursor)
    for a limit below 1 or not a decimal integer, a cursor that is not a non-negative
    decimal integer, or both cursors. A limit above MAX_LIMIT is clamped."""
    parsed_limit = _parse_limit(limit)
    if before is not None and after is not None:
        raise BadRequest("give at most one of before and after", code="invalid_cursor")
    return PageRequest(
        limit=parsed_limit, before=_parse_cursor("before", before),
        after=_parse_cursor("after", after),
    )


def _parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not _DIGITS.fullmatch(text):
        raise BadRequest("limit must be a positive decimal integer", code="invalid_limit")
    # Strip leading zeros and compare lengths first: int() refuses strings of more than
    # 4300 digits, and anything longer than "1000" is over the cap anyway.
    significant = text.lstrip("0")
    if not significant:
        raise BadRequest("limit must be at least 1", code="invalid_limit")
    if len(significant) > len(str(MAX_LIMIT)):
        return MAX_LIMIT
    return min(int(significant), MAX_LIMIT)


def _parse_cursor(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not _DIGITS.fullmatch(text) or len(text) > MAX_CURSOR_DIGITS:
        raise BadRequest(
            f"{name} must be a stream sequence: at most {MAX_CURSOR_DIGITS} decimal digits",
            code="invalid_cursor",
        )
    return int(text)


class SlicerState(enum.Enum):
    #: A fetch is planned: next_step() hands it out.
    NEED_FETCH = "need_fetch"
    #: A fetch is out: only receive() with its result is accepted.
    AWAITING_BATCH = "awaiting_batch"
    #: The page is final: next_step() returns it; receive() is refused.
    DONE = "done"


#: Which calls each state accepts; anything else is a driver bug.
_ACCEPTS: dict[str, frozenset[SlicerState]] = {
    "next_step": frozenset({SlicerState.NEED_FETCH, SlicerState.DONE}),
    "receive": frozenset({SlicerState.AWAITING_BATCH}),
}


class HistorySlicer:
    """Plans the FetchBatch ranges of one page and assembles the page (R5, R10)."""

    def __init__(self, stream: str, state: StreamState, request: PageRequest) -> None:
        _check_request(request)
        self._stream = stream
        self._limit = request.limit
        self._backward = request.after is None
        # Forward paging cannot trust last_seq (it may be a deleted sequence), so it looks
        # for one message past the page: has_more is then exactly "it was found".
        self._want = self._limit if self._backward else self._limit + 1
        self._span, self._stored = _density(state)
        # The unexplored region, inclusive at both ends; fetches eat it from one side.
        self._lo, self._hi = _region(state, request)
        self._batches: list[tuple[StoredMessage, ...]] = []
        self._found = 0
        self._rounds = 0
        self._pending: FetchBatch | None = None
        self._page: Page | None = None
        self._state = SlicerState.NEED_FETCH
        if state.messages == 0 or self._lo > self._hi:
            # Nothing stored in the direction of paging: no fetch at all.
            self._page = EMPTY_PAGE
            self._state = SlicerState.DONE

    @property
    def state(self) -> SlicerState:
        return self._state

    @property
    def rounds(self) -> int:
        """How many fetches have been handed out."""
        return self._rounds

    def next_step(self) -> FetchBatch | Page:
        self._expect("next_step")
        if self._page is not None:
            return self._page
        self._pending = self._plan()
        self._rounds += 1
        self._state = SlicerState.AWAITING_BATCH
        return self._pending

    def receive(self, messages: tuple[StoredMessage, ...]) -> None:
        self._expect("receive")
        fetch = self._pending
        assert fetch is not None  # AWAITING_BATCH always has a pending fetch
        _check_batch(fetch, messages)
        self._pending = None
        self._batches.append(messages)
        self._found += len(messages)
        if self._backward:
            self._hi = fetch.start_seq - 1
        else:
            self._lo = fetch.start_seq + fetch.count
        if self._found >= self._want or self._lo > self._hi:
            self._finish()
        else:
            self._state = SlicerState.NEED_FETCH

    def _expect(self, call: str) -> None:
        if self._state not in _ACCEPTS[call]:
            raise RuntimeError(f"{call}() is not allowed in state {self._state.name}")

    def _plan(self) -> FetchBatch:
        need = self._want - self._found
        # Later rounds cover need + limit sequences, so a round that comes back short held
        # more than `limit` deletions: that is what bounds the rounds (module docstring).
        size = self._estimate(need) if self._rounds == 0 else max(
            need + self._limit, self._estimate(need)
        )
        count = min(size, self._hi - self._lo + 1)
        start = self._hi - count + 1 if self._backward else self._lo
        return FetchBatch(self._stream, start, count)

    def _estimate(self, need: int) -> int:
        """Sequences to cover ``need`` stored messages at the stream's deletion density,
        plus a margin for clustered deletions; exactly ``need`` when nothing is deleted."""
        if self._stored >= self._span:
            return need
        estimate = -(-need * self._span // self._stored)
        return estimate + (estimate - need) // 4 + 1

    def _finish(self) -> None:
        self._state = SlicerState.DONE
        if self._backward:
            found = tuple(m for batch in reversed(self._batches) for m in batch)
            kept = found[-self._limit:]
            # The unexplored region still holds first_seq, which JetStream always keeps
            # stored while the stream has messages.
            more = len(found) > self._limit or self._lo <= self._hi
        else:
            found = tuple(m for batch in self._batches for m in batch)
            kept = found[: self._limit]
            more = len(found) > self._limit
        self._page = Page(messages=kept, has_more=more)


def _check_request(request: PageRequest) -> None:
    if not 1 <= request.limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}")
    if request.before is not None and request.after is not None:
        raise ValueError("a page request has at most one cursor")


def _density(state: StreamState) -> tuple[int, int]:
    """(span, stored estimate). The smaller of the two stored counts a stream reports is
    the safer one: it only makes the first range larger, never the page wrong."""
    span = max(state.last_seq - state.first_seq + 1, 1)
    stored = min(state.messages, span - state.deleted)
    return span, max(stored, 1)


def _region(state: StreamState, request: PageRequest) -> tuple[int, int]:
    if request.after is not None:
        return max(state.first_seq, request.after + 1), state.last_seq
    top = state.last_seq if request.before is None else min(state.last_seq, request.before - 1)
    return state.first_seq, top


def _check_batch(fetch: FetchBatch, messages: tuple[StoredMessage, ...]) -> None:
    """A batch out of its range, out of order or with duplicates is a driver bug: refuse
    it rather than build a wrong page."""
    previous = fetch.start_seq - 1
    end = fetch.start_seq + fetch.count
    for message in messages:
        if not previous < message.seq < end:
            raise ValueError(
                f"{fetch.stream}: seq {message.seq} is out of order or outside "
                f"[{fetch.start_seq}, {end})"
            )
        previous = message.seq
