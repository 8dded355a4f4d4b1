"""Reads whose answers are bounded in memory (``server.max_response_bytes``).

``GET /v1/events?limit=10000`` on a store of 1 MB events would have held ~10 GB:
the page as events, then as one JSON body. Here a read is split into store reads
sized so that each one's events take about ``max_response_bytes`` (the first one
assumes the worst, ``store.max_event_bytes`` per event; later ones use the sizes
seen), and the answer is streamed from the second one on. A small read — every
answer that fits in one store read — is sent as before, in one body with a
``Content-Length``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import msgspec

from ..model import MAX_LIMIT, Page, Query
from ..store import EventStore

__all__ = ["Budget", "json_page_chunks", "read_pages"]

_encode = msgspec.json.Encoder().encode


class Budget:
    """How many events the next store read may ask for."""

    def __init__(self, max_bytes: int, max_event_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.per_event = max(1, max_event_bytes)  # (the worst case, until we know)
        self._bytes = 0
        self._events = 0

    def next_limit(self, left: int | None) -> int:
        n = max(1, self.max_bytes // self.per_event)
        return max(1, min(n, MAX_LIMIT, left if left is not None else MAX_LIMIT))

    def spent(self, nbytes: int, nevents: int) -> None:
        if nevents:
            self._bytes += nbytes
            self._events += nevents
            self.per_event = max(1, self._bytes // self._events)


async def read_pages(
    run: Callable[..., Awaitable[Any]],
    store: EventStore,
    query: Query,
    cursor: str | None,
    budget: Budget,
    total: int | None,
) -> AsyncIterator[Page]:
    """Store reads of ``query`` from ``cursor`` — together at most ``total`` events
    (None: to the end) — each sized by ``budget`` (the caller reports what each cost
    with :meth:`Budget.spent`)."""
    left = total
    while True:
        n = budget.next_limit(left)
        page: Page = await run(partial(store.read, msgspec.structs.replace(query, limit=n),
                                       cursor=cursor))  # fmt: skip
        yield page
        if left is not None:
            left -= len(page.events)
        if page.next_cursor is None or left == 0:
            return
        cursor = page.next_cursor


async def json_page_chunks(
    first: bytes, pages: AsyncIterator[Page], budget: Budget, encode: Callable[[Any], Any]
) -> AsyncIterator[bytes]:
    """``{"events": [...], "next_cursor": ...}`` in pieces: ``first`` is the encoded
    array of the first store read; ``pages`` the rest."""
    cursor: str | None = None
    yield b'{"events":' + first[:-1]
    wrote = len(first) > 2
    async for page in pages:
        cursor = page.next_cursor
        if not page.events:
            continue
        body = _encode([encode(e) for e in page.events])
        budget.spent(len(body), len(page.events))
        yield (b"," if wrote else b"") + body[1:-1]
        wrote = True
    yield b'],"next_cursor":' + _encode(cursor) + b"}"
