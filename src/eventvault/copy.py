"""Copying events between stores (any backends) and comparing two stores.

``copy_store(src, dst)`` moves every event, in position order, keeping ids,
streams, revisions, types, actors, correlation/causation ids, ``occurred_at``,
``recorded_at`` and the chain hashes: the destination numbers positions its own
way (see below) but recomputes nothing the chain covers, so both chain heads are
the same hash. A filtered copy (a *slice*) cannot keep the hashes — its events no
longer follow each other in the source — so the destination chains them afresh over
the same content (``rechain``); everything else is kept.

Positions are the destination's: file and PostgreSQL number 1, 2, 3…, EventStoreDB
uses commit positions. Order is kept, so a position range in one store maps to the
same events in the other; ids are the identity to use across stores.

Resuming: batches are atomic, so an interrupted copy leaves the destination
holding a *prefix* of what it copies. Run again, the copy finds the destination's
newest event in the source (by id), checks it is the same event, and continues
right after it. Nothing is copied twice; an id the destination already holds with
other content is a :class:`~eventvault.errors.DuplicateEventError`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

import msgspec

from .errors import ConflictError, ValidationError
from .integrity.bridges import GENESIS_HEX, Bridges
from .integrity.canonical import format_time, same_payload
from .integrity.chain import GENESIS, LEAF, bridge, record_hash
from .model import MAX_LIMIT, Import, Query, RecordedEvent
from .retention import RECEIPT_TYPE
from .spi import ProgressCallback
from .store import EventStore

__all__ = [
    "Comparison",
    "CopyError",
    "CopyProgress",
    "CopyReport",
    "compare_stores",
    "copy_store",
]

#: Events per read and per destination batch (one transaction / one fsync each).
DEFAULT_BATCH = 5000


class CopyProgress(Protocol):
    """``progress(copied, total)``, called after each batch: events in the destination
    so far; ``total`` is None when the source cannot tell cheaply (a slice)."""

    def __call__(self, copied: int, total: int | None, /) -> None: ...


class CopyError(ConflictError):
    """The destination is not (a prefix of) a copy of this source."""


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of comparing two stores event by event."""

    ok: bool
    events: int  # events compared (equal ones, up to the first difference)
    streams: int  # streams seen, with equal revisions
    head_hash: str | None  # the first store's last compared event's hash
    other_head_hash: str | None  # the second's (equal, unless a slice was rechained)
    difference: str | None = None  # the first difference, for a person
    #: Events one store holds that the other's retention removed (not differences).
    removed_by_retention: int = 0


class CopyReport(msgspec.Struct, frozen=True, kw_only=True):
    copied: int  # events written to the destination by this run
    resumed_after: int | None  # source position the run continued after (None: from start)
    rechained: bool  # a slice: the destination chained the events afresh
    seconds: float
    comparison: Comparison | None = None  # with verify=True


def _is_slice(query: Query) -> bool:
    """Whether ``query`` leaves events out (then the copy cannot keep the hashes)."""
    everything = msgspec.structs.replace(query, limit=Query().limit)
    if tuple(query.types) == ("*",):
        everything = msgspec.structs.replace(everything, types=())
    return everything != Query()


def _resume_point(src: EventStore, dst: EventStore, query: Query, rechain: bool) -> int | None:
    """The source position to continue after (None: the destination holds nothing).

    By chain position, not by presence: the point is the newest destination event
    the source still holds. Usually that is the destination's newest; if the
    source's retention removed that one since (and maybe more), it is the last one
    before the hole — the destination is still a faithful prefix, and the equal hash
    there proves the history up to it is the same.
    """
    newest = dst.read(Query(reverse=True, limit=1)).events
    if not newest:
        return None
    last = newest[0]
    there = src.get(last.id)
    if there is None and not rechain:
        anchor = _anchor(src, dst, last)
        if anchor is not None:
            last, there = anchor
        elif _all_removed(src, last):
            return 0  # the source removed all the destination holds: from its start
    if there is None:
        raise CopyError(
            f"the destination already holds events, and its newest ({last.id}, position "
            f"{last.position}) is not in the source: it is not a copy of this source. Copy "
            "into an empty store."
        )
    same = there.hash == last.hash if not rechain else _differs(there, last, hashes=False) is None
    if not same:
        raise CopyError(
            f"the destination's newest event {last.id} differs from the source's: the "
            "destination is not a copy of this source (or one of them was altered)"
        )
    oldest = dst.read(Query(limit=1)).events[0]
    first = src.read(msgspec.structs.replace(query, limit=1, reverse=False, before=None)).events
    if not first or first[0].id != oldest.id:
        held = src.get(oldest.id)
        # The source's retention may since have removed the destination's oldest
        # events: then its first event chains across a hole its receipts record.
        if not (
            (held is not None and held.hash == oldest.hash)
            or (held is None and first and not rechain and _Side(src).removed_before(first[0]))
        ):
            raise CopyError(
                f"the destination's oldest event {oldest.id} is not the first event this "
                "copy starts with: it holds something else. Copy into an empty store."
            )
    return there.position


def _all_removed(src: EventStore, last: RecordedEvent) -> bool:
    """Whether the source's retention removed everything up to the destination's
    newest event ``last``: every event it holds is recorded after ``last``, and its
    first one chains across a hole its receipts record."""
    first = src.read(Query(limit=1)).events
    return (
        bool(first)
        and first[0].recorded_at > last.recorded_at
        and (_Side(src).removed_before(first[0]))
    )


def _anchor(
    src: EventStore, dst: EventStore, last: RecordedEvent
) -> tuple[RecordedEvent, RecordedEvent] | None:
    """The newest destination event the source still holds, as (destination's,
    source's) — found among the source's events recorded no later than ``last``,
    newest first. None if the source holds an older event the destination lacks
    (then the destination is not a prefix of it)."""
    until = last.recorded_at + timedelta(microseconds=1)
    for ev in src.iter(Query(until=until, reverse=True, limit=1000)):
        mine = dst.get(ev.id)
        if mine is not None:
            return mine, ev
        if ev.recorded_at < last.recorded_at:
            return None
    return None


def copy_store(
    src: EventStore,
    dst: EventStore,
    query: Query | None = None,
    *,
    batch: int = DEFAULT_BATCH,
    verify: bool = True,
    follow: bool = False,
    stop: threading.Event | None = None,
    progress: CopyProgress | None = None,
    poll_interval: float = 0.5,
    source_verified_to: int | None = None,
) -> CopyReport:
    """Copy the events of ``src`` matching ``query`` (all: None) into ``dst``.

    Resumable (see the module docstring). ``follow``: after catching up, keep
    copying new source events until ``stop`` is set. ``verify``: then compare both
    stores event by event (:func:`compare_stores`). ``source_verified_to``: the
    caller has just verified the source up to this position (:func:`verify_source`;
    the copy does it itself otherwise, where :func:`verifies_source_first`; the CLI
    does it with a progress bar).
    """
    if not 1 <= batch <= MAX_LIMIT:
        raise ValidationError(f"copy batch must be 1–{MAX_LIMIT}, got {batch}")
    if src is dst or (src.backend_name == dst.backend_name and src.store_id == dst.store_id):
        raise ValidationError("source and destination are the same store")
    started = time.monotonic()
    query = query if query is not None else Query()
    if query.reverse:
        raise ValidationError("a copy goes in position order; drop reverse")
    sliced = _is_slice(query)
    # A slice's events no longer chain as they did; a destination of another hash
    # format computes every hash its own way: either way its hashes are its own.
    rechain = sliced or src.hash_format != dst.hash_format
    after = _resume_point(src, dst, query, rechain)
    resumed_after = after
    total = src.stats().events if not sliced else None
    done = 0
    if after is not None and total is not None:
        # What the destination holds already counts as done for the progress bar.
        done = dst.stats().events
    stop = stop if stop is not None else threading.Event()
    verified_to = source_verified_to
    if verified_to is None and verifies_source_first(src, dst, query):
        verified_to = verify_source(src)
    holes = (
        _SourceCheck(src, after, verified_to or 0)
        if not sliced and src.hash_format == LEAF
        else None
    )
    copied = 0
    for page in _pages(src, query, after, batch, follow, stop, poll_interval):
        if holes is not None:
            holes.check(page)
        # (a destination that cannot take records says so with its first page)
        dst.import_records(Import(page, rechain=rechain))
        copied += len(page)
        done += len(page)
        if progress is not None:
            progress(done, total)
    comparison = compare_stores(src, dst, query, rechain=rechain) if verify else None
    return CopyReport(
        copied=copied,
        resumed_after=resumed_after,
        rechained=rechain,
        seconds=time.monotonic() - started,
        comparison=comparison,
    )


def verify_source(src: EventStore, progress: ProgressCallback | None = None) -> int:
    """Verify the source of a copy (see :func:`verifies_source_first`); return the
    position up to which it verified (its head before the walk), or raise
    :class:`CopyError` naming what does not verify."""
    head = src.head()
    result = src.verify(progress=progress)
    if not result.ok:
        raise CopyError(
            f"the source does not verify (position {result.first_bad_position}: "
            f"{result.reason}); a copy would hide that, as it computes every hash afresh. "
            "Run 'eventvault verify' on the source and investigate first"
        )
    return head


class _SourceCheck:
    """What a copy from a leaf-hash store checks of the source as it goes (after the
    source verified, :func:`verifies_source_first`: this covers what is appended
    meanwhile, and resumed copies): a leaf hash vouches for its event alone, and the
    destination numbers its events 1, 2, 3… — so unless the copy checks, an altered
    event, or one deleted behind the store's back, would come out of the copy
    looking intact. Each event must match its hash, and each gap in the source's
    positions must be a hole its retention receipts record
    (:meth:`~eventvault.integrity.bridges.Bridges.covers`)."""

    def __init__(self, src: EventStore, after: int | None, verified_to: int) -> None:
        self._src = src
        #: Events up to here verified just before the copy: not hashed again.
        self._verified_to = verified_to
        self._bridges: Bridges | None = None
        # Resuming: the gap after the last event copied is checked too (if retention
        # removed that event since, the run that removed it records its position).
        self._last: int = 0 if after is None else after
        self._contiguous = src.contiguous_positions

    def check(self, page: list[RecordedEvent]) -> None:
        if page and page[-1].position <= self._verified_to:
            self._last = page[-1].position
            return
        for ev in page:
            if ev.position <= self._verified_to:
                self._last = ev.position
                continue
            if record_hash(GENESIS, ev, LEAF).hex() != ev.hash:
                raise CopyError(
                    f"the source's event {ev.id} at position {ev.position} does not match "
                    "its hash: it was altered. Run 'eventvault verify' on the source and "
                    "investigate before copying"
                )
            last = self._last
            if self._contiguous and ev.position > last + 1 and not self._covered(last, ev.position):
                raise CopyError(
                    f"the source lacks positions {last + 1}..{ev.position - 1}, and no "
                    "retention receipt of its own records removing them: events were "
                    "deleted behind its back. Run 'eventvault verify' on the source and "
                    "investigate before copying"
                )
            self._last = ev.position

    def _covered(self, q: int, s: int) -> bool:
        if self._bridges is not None and self._bridges.covers(q, s):
            return True
        # (Read receipts again: retention may have run since, while the copy follows.)
        receipts = self._src.iter(Query(types=[RECEIPT_TYPE], limit=1000))
        self._bridges = Bridges(self._src.store_id).add_all(receipts)
        return self._bridges.covers(q, s)


def verifies_source_first(src: EventStore, dst: EventStore, query: Query | None = None) -> bool:
    """Whether :func:`copy_store` verifies the whole source before copying: a full
    copy whose destination computes every hash afresh — a leaf-hash source (its
    order and completeness are its Merkle tree's, which the copy does not take) or
    destination (which keeps none of a chain's evidence). The source must be
    checked while it still can be, or a damaged one would come out looking intact."""
    sliced = query is not None and _is_slice(query)
    return not sliced and LEAF in (src.hash_format, dst.hash_format)


def _pages(
    src: EventStore,
    query: Query,
    after: int | None,
    batch: int,
    follow: bool,
    stop: threading.Event,
    poll_interval: float,
) -> Iterator[list[RecordedEvent]]:
    """Source pages in position order; the next page is read while the caller writes."""
    base = msgspec.structs.replace(query, limit=batch, reverse=False)
    cursor = after if after is not None else query.after

    def read(after: int | None) -> list[RecordedEvent]:
        return src.read(msgspec.structs.replace(base, after=after)).events

    with ThreadPoolExecutor(1, thread_name_prefix="eventvault-copy-read") as pool:
        pending: Future[list[RecordedEvent]] = pool.submit(read, cursor)
        while True:
            page = pending.result()
            if page:
                cursor = page[-1].position
                pending = pool.submit(read, cursor)
                yield page
                continue
            if not follow or stop.is_set():
                return
            # Caught up: wait for the source to move (or for stop), then read again.
            head = src.head()
            if query.before is not None and head >= query.before - 1:
                return
            src.wait_for_head(head, poll_interval)
            if stop.is_set():
                return
            pending = pool.submit(read, cursor)


def compare_stores(
    a: EventStore, b: EventStore, query: Query | None = None, *, rechain: bool = False
) -> Comparison:
    """Walk both stores (the events ``query`` matches in ``a``, all of ``b``) in order and
    report the first difference: an event that differs in any field but its position
    (and its hash, when ``rechain``), or one side ending early.

    Retention: an event one store holds and the other does not is no difference
    where the other's chain has a hole that its retention receipts bridge — the
    store that lacks it removed it by policy, the other still keeps it (a copy made
    before the source's retention ran). Those are counted in
    :attr:`Comparison.removed_by_retention`. Any other missing event is a difference.
    (Not for a rechained slice: its chain says nothing about the source's holes.)
    """
    query = msgspec.structs.replace(query or Query(), limit=MAX_LIMIT, reverse=False)
    left = a.iter(query)
    right = b.iter(Query(limit=MAX_LIMIT))
    revisions: dict[str, int] = {}
    count = 0
    extras = 0
    head: str | None = None
    other: str | None = None
    sides = None if rechain else (_Side(a), _Side(b))

    def result(difference: str | None = None) -> Comparison:
        return Comparison(
            ok=difference is None,
            events=count,
            streams=len(revisions),
            head_hash=head,
            other_head_hash=other,
            difference=difference,
            removed_by_retention=extras,
        )

    x = next(left, None)
    y = next(right, None)
    while x is not None:
        if y is None:
            return result(
                f"the second store ends after {count:,} events; the first goes on with {x.id} "
                f"at position {x.position}"
            )
        if x.id != y.id and sides is not None:
            # One of them may hold an event the other's retention removed.
            if sides[1].removed_before(y) and b.get(x.id) is None:
                sides[0].walked(x)
                extras += 1
                x = next(left, None)
                continue
            if sides[0].removed_before(x) and a.get(y.id) is None:
                sides[1].walked(y)
                extras += 1
                y = next(right, None)
                continue
        diff = _differs(x, y, hashes=not rechain)
        if diff is not None:
            return result(
                f"event #{count + 1:,} differs ({diff}): {x.id} at position {x.position} vs "
                f"{y.id} at position {y.position}"
            )
        count += 1
        revisions[x.stream] = x.stream_revision
        head, other = x.hash, y.hash
        if sides is not None:
            sides[0].walked(x)
            sides[1].walked(y)
        x = next(left, None)
        y = next(right, None)
    if y is not None:
        return result(
            f"the first store ends after {count:,} events; the second goes on with {y.id} "
            f"at position {y.position}"
        )
    return result()


class _Side:
    """One store's chain as a comparison walks it: is there a recorded retention
    hole right before its next event?"""

    def __init__(self, store: EventStore) -> None:
        receipts = store.iter(Query(types=[RECEIPT_TYPE], limit=1000))
        self._walker = Bridges(store.store_id).add_all(receipts).walker()
        self._hashes = store.hash_format
        self._hash = GENESIS_HEX
        self._position = 0

    def walked(self, ev: RecordedEvent) -> None:
        self._walker.walked(ev.hash)
        self._hash, self._position = ev.hash, ev.position

    def removed_before(self, ev: RecordedEvent) -> bool:
        """Whether ``ev`` does not chain to the event walked before it, but across a
        hole that this store's retention receipts account for."""
        if self._hashes == LEAF:  # (a leaf hash says nothing of the event before)
            gap = ev.position > self._position + 1
            return gap and self._walker.covers(self._position, ev.position)
        if record_hash(bytes.fromhex(self._hash), ev).hex() == ev.hash:
            return False  # no hole here
        return bridge(self._walker, self._position, ev) is not None


_FIELDS = [f for f in RecordedEvent.__struct_fields__ if f not in ("position", "hash")]


def _shown(value: object) -> str:
    """A field's value for a person: times as ISO 8601 (the canonical text), ids as
    text, the rest as JSON."""
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, UUID):
        return str(value)
    return msgspec.json.encode(value).decode()


def _differs(x: RecordedEvent, y: RecordedEvent, *, hashes: bool) -> str | None:
    """The first field (other than position) in which two events differ, if any.

    Payloads are compared as the chain covers them — their canonical bytes — not as
    Python values: PostgreSQL JSONB returns ``1e23`` as an integer, the same JSON
    number (see :func:`eventvault.integrity.canonical.same_payload`)."""
    if x == msgspec.structs.replace(y, position=x.position, hash=x.hash if not hashes else y.hash):
        return None  # (the common case, compared in C)
    for name in ["id", *(f for f in _FIELDS if f != "id")]:
        a, b = getattr(x, name), getattr(y, name)
        same = same_payload(a, b) if name in ("data", "metadata") else a == b
        if not same:
            return f"{name}: {_shown(a)} vs {_shown(b)}"
    if hashes and x.hash != y.hash:
        return f"hash: {x.hash} vs {y.hash}"
    return None
