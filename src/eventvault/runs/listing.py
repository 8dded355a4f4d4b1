"""Listing runs, newest first, a page at a time — over any :class:`EventStore`.

A run is *listed* when at least one of its events matches the query; runs are
ordered by their newest matching event (without filters: their last event), and
each summary covers the whole run. A cursor pins the store's head when the first
page was read, so later pages neither repeat nor skip a run while others append;
events appended after the first page show up on a fresh listing.

The work splits in two steps behind :class:`RunIndex`, the seam for backends with
an index of runs:

1. *which runs* — the correlation ids of the newest matching events;
2. *their summaries* — count, first/last event, actors, streams per run.

:class:`ScanRunIndex` does both with the public API alone: step 1 reads the log
backwards by position until it has seen ``limit`` distinct correlation ids (cost:
every event newer than the page's oldest run, plus one bounded lookup per candidate
on later pages); step 2 reads every event of the page's runs through the
correlation-id filter (cost: the sum of their sizes, e.g. 50 runs of 1,000 events
decode 50,000 events). A backend that keeps a table of runs (first/last position,
count, actors, streams per correlation id, updated as events are appended) answers
both steps with one indexed read each, and only has to implement this protocol;
it may answer step 1 only for some queries (None: the listing scans for the runs
and still asks the index for their summaries).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import msgspec

from ..errors import ValidationError
from ..model import MAX_LIMIT, Query, RecordedEvent
from ..timeutil import from_us, to_us
from .model import RunPage, RunSummary
from .outcomes import DEFAULT_OUTCOMES, Outcomes
from .tree import summarise

if TYPE_CHECKING:  # (the store imports this module when asked for runs)
    from ..store import EventStore

__all__ = ["MAX_RUNS_PAGE", "RunIndex", "ScanRunIndex", "list_runs", "unfiltered"]

#: The largest page of runs one call returns.
MAX_RUNS_PAGE = 1000


class RunKey(msgspec.Struct, frozen=True, array_like=True):
    """A run on a page: its correlation id and the position of its newest matching event."""

    correlation_id: str
    position: int


@runtime_checkable
class RunIndex(Protocol):
    """What :func:`list_runs` needs from a store; a backend with an index of runs
    implements these two methods — on its :class:`~eventvault.spi.Backend` (or its
    store class) — and is used as it is.

    Both must answer exactly what :class:`ScanRunIndex` answers (the contract kit
    compares them on every backend), in particular *as of* ``head``: events
    appended after it neither list a run nor change a summary, and events
    retention removed count nowhere. The PostgreSQL backend keeps a ``runs`` table
    (:mod:`eventvault.backends.postgres.runindex`), the file backend derives runs
    from its segment indexes (:mod:`eventvault.backends.file.runindex`).
    """

    def newest_runs(
        self, query: Query, *, head: int, before: int | None, limit: int
    ) -> list[RunKey] | None:
        """Up to ``limit`` runs with an event matching ``query`` at a position
        ``<= head``, newest matching event first. With ``before``, only runs whose
        newest matching event (up to ``head``) is below ``before``.

        None: this index cannot answer ``query`` (an index of runs knows runs, not
        every event: filters on types, actors, times… need the events), and
        :func:`list_runs` scans for the runs instead — still asking this index for
        their summaries."""
        ...

    def run_summaries(
        self, correlation_ids: Sequence[str], *, head: int, outcomes: Outcomes
    ) -> dict[str, RunSummary]:
        """The summary of each run over its events at positions ``<= head``."""
        ...


def unfiltered(query: Query) -> bool:
    """Whether ``query`` filters no events (a backend's table of runs answers it alone)."""
    return not (
        query.types
        or query.actors
        or query.streams
        or query.correlation_ids
        or query.causation_ids
        or query.after is not None
        or query.before is not None
        or query.since is not None
        or query.until is not None
    )


class ScanRunIndex:
    """:class:`RunIndex` over the public read API: a backwards scan by position."""

    #: Pages of the backwards scan double, so it reads at most twice what it needs.
    scan_pages = (256, 512, 1024, 2048, 4096, 8192)

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def _scan(self, query: Query) -> Iterator[RecordedEvent]:
        cursor: str | None = None
        for size in self._sizes():
            page = self.store.read(msgspec.structs.replace(query, limit=size), cursor=cursor)
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _sizes(self) -> Iterator[int]:
        yield from self.scan_pages[:-1]
        while True:
            yield self.scan_pages[-1]

    def newest_runs(  # (always answers: never None)
        self, query: Query, *, head: int, before: int | None, limit: int
    ) -> list[RunKey]:
        bound = head + 1 if before is None else min(before, head + 1)
        if query.before is not None:
            bound = min(bound, query.before)
        scan = msgspec.structs.replace(query, reverse=True, before=bound)
        seen: set[str] = set()
        out: list[RunKey] = []
        for ev in self._scan(scan):
            cid = ev.correlation_id
            if cid is None or cid in seen:
                continue
            seen.add(cid)
            if before is not None and self._listed_already(query, cid, before, head):
                continue
            out.append(RunKey(cid, ev.position))
            if len(out) >= limit:
                break
        return out

    def _listed_already(self, query: Query, cid: str, before: int, head: int) -> bool:
        """Whether run ``cid`` has a matching event in [before, head]: then its newest
        matching event is there, and an earlier page listed it."""
        after = before - 1 if query.after is None else max(query.after, before - 1)
        upper = head + 1 if query.before is None else min(query.before, head + 1)
        probe = msgspec.structs.replace(
            query, correlation_ids=(cid,), after=after, before=upper, reverse=False, limit=1
        )
        return bool(self.store.read(probe).events)

    def run_summaries(
        self, correlation_ids: Sequence[str], *, head: int, outcomes: Outcomes
    ) -> dict[str, RunSummary]:
        if not correlation_ids:
            return {}
        grouped: dict[str, list[RecordedEvent]] = {cid: [] for cid in correlation_ids}
        whole = Query(correlation_ids=correlation_ids, before=head + 1, limit=MAX_LIMIT)
        for ev in self.store.iter(whole):
            grouped[ev.correlation_id].append(ev)  # type: ignore[index]
        return {cid: summarise(cid, events, outcomes) for cid, events in grouped.items() if events}


class _Cursor(msgspec.Struct, array_like=True):
    version: int
    head: int
    before: int
    store: str
    filters: str
    #: The instant the listing's relative times (``--since 2h``) were resolved
    #: against (µs since the epoch), so the next page resolves them to the same
    #: bounds; absent in cursors of listings without relative times.
    resolved: int | None = None


def _digest(query: Query) -> str:
    key = msgspec.json.encode([query.filter_key().decode(), query.after, query.before])
    return hashlib.sha256(b"runs:" + key).hexdigest()[:16]


def _encode(query: Query, head: int, before: int, store_id: str) -> str:
    resolved = None if query.resolved_at is None else to_us(query.resolved_at)
    cur = _Cursor(1, head, before, store_id[:12], _digest(query), resolved)
    return base64.urlsafe_b64encode(msgspec.json.encode(cur)).rstrip(b"=").decode("ascii")


def _parse(cursor: str) -> _Cursor:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        return msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, UnicodeError, ValueError, msgspec.DecodeError):
        raise ValidationError(
            "runs cursor is malformed (truncated, or not from a run listing)"
        ) from None


def runs_cursor_resolved_at(cursor: str) -> datetime | None:
    """The instant the listing a runs cursor came from resolved its relative times
    against: resolve the same options (``--since 2h``) against it to continue the
    same listing. (Malformed cursors are reported by :func:`list_runs`.)"""
    try:
        resolved = _parse(cursor).resolved
        return None if resolved is None else from_us(resolved)
    except (ValidationError, OverflowError, ValueError):
        return None


def _decode(cursor: str, query: Query, store_id: str) -> tuple[int, int]:
    cur = _parse(cursor)
    if cur.version != 1 or cur.head < 0 or cur.before < 1:
        raise ValidationError("runs cursor is malformed (unknown version)")
    if cur.store != store_id[:12]:
        raise ValidationError("runs cursor comes from another store")
    if cur.filters != _digest(query):
        raise ValidationError("runs cursor belongs to a different listing (filters changed)")
    return cur.head, cur.before


def list_runs(
    store: EventStore,
    query: Query | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
    outcomes: Outcomes = DEFAULT_OUTCOMES,
) -> RunPage:
    """One page of runs, newest first; pass ``page.next_cursor`` for the next.

    ``query`` filters the *events* that make a run listed (types, actors, streams,
    correlation ids, times, positions); its ``limit`` and ``reverse`` are ignored.
    Uses the store's (or its backend's) own :class:`RunIndex` when it has one, a
    backwards scan otherwise
    (see the module's docstring for the cost).
    """
    if type(limit) is not int or not 1 <= limit <= MAX_RUNS_PAGE:
        raise ValidationError(f"runs limit must be 1–{MAX_RUNS_PAGE}, got {limit!r}")
    query = msgspec.structs.replace(query if query is not None else Query(), reverse=False)
    index: RunIndex
    if isinstance(store, RunIndex):
        index = store
    elif isinstance(store.backend, RunIndex):
        index = store.backend
    else:
        index = ScanRunIndex(store)
    if cursor is None:
        head, before = store.head(), None
    else:
        head, before = _decode(cursor, query, store.store_id)
    keys = index.newest_runs(query, head=head, before=before, limit=limit + 1)
    if keys is None:  # (the index cannot answer this query: scan for the runs)
        keys = ScanRunIndex(store).newest_runs(query, head=head, before=before, limit=limit + 1)
    more = len(keys) > limit
    keys = keys[:limit]
    summaries = index.run_summaries([k.correlation_id for k in keys], head=head, outcomes=outcomes)
    runs = [summaries[k.correlation_id] for k in keys if k.correlation_id in summaries]
    next_cursor = _encode(query, head, keys[-1].position, store.store_id) if more else None
    return RunPage(runs=runs, next_cursor=next_cursor)
