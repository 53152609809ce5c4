"""History paging: the request, the page, and the slicer that plans batch fetches (R5, R10).

To be implemented (see the module's tests): the planner receives the StreamState and a
PageRequest, plans FetchBatch ranges, accepts what came back (deleted sequences are
absent), and asks for more until the page is full or the stream is exhausted in the
direction of paging. Fetch rounds are O(1 + deletions inside the window / limit).
"""

from __future__ import annotations

from dataclasses import dataclass

from ._model import StoredMessage

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "PageRequest", "parse_page_request"]

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


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
    raise NotImplementedError
