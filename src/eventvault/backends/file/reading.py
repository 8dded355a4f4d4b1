"""The file store's query path: from a query to the slots of each segment to records.

Reads never take the writer flock. Each one catches up with the files first (a few
``stat`` calls when nothing changed), then works on a snapshot: the list of
segments and the active index's count and size at that moment. A
:class:`~.segment.Segment` carries its own descriptor and index, so a segment
retention replaces meanwhile is still read consistently (the old file, through
the old descriptor, with the old index).
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from ...model import Query, RecordedEvent
from .index import FIELDS, SegmentIndex, count_in, iter_union, to_us
from .records import DamagedRecordError
from .segment import Segment
from .shared import Shared

__all__ = ["ReadPath"]

_QUERY_FIELDS = (
    ("types", "type"),
    ("actors", "actor"),
    ("correlation_ids", "correlation_id"),
    ("streams", "stream"),
)
assert set(FIELDS) == {f for _, f in _QUERY_FIELDS}


class ReadPath:
    """Queries, lookups by id and stream revisions over one :class:`Shared` view."""

    def __init__(self, shared: Shared) -> None:
        self._s = shared
        self._local = threading.local()

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[DamagedRecordError]]:
        """Within this block (this thread only), reads return records as stored and
        collect the batches whose checksum fails instead of raising (``verify``)."""
        found: list[DamagedRecordError] = []
        self._local.damaged = found
        try:
            yield found
        finally:
            self._local.damaged = None

    def count_before(self, position: int) -> int:
        """How many stored events lie below ``position`` (from the indexes)."""
        with self.snapshot() as (segments, active_count, _size, _head):
            n = 0
            for k, seg in enumerate(segments):
                index = seg.index if k == len(segments) - 1 else self._sealed(seg)
                if index is None:
                    continue
                count = active_count if k == len(segments) - 1 else index.count
                n += bisect.bisect_left(index.positions, position, 0, count)
            return n

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[tuple[list[Segment], int, int, int]]:
        """Segments, the active index's count and size, and the head, as of now —
        each segment pinned (kept open) until the block ends."""
        s = self._s
        with s.lock:
            s.refresh()
            index = s.segs.active_index()
            segments = list(s.segs.segments)
            for seg in segments:
                seg.pin()
            view = (
                segments,
                index.count if index else 0,
                index.size if index else 0,
                s.segs.head.position,
            )
        try:
            yield view
        finally:
            with s.lock:
                for seg in segments:
                    seg.unpin()

    def _sealed(self, seg: Segment) -> SegmentIndex | None:
        """A sealed segment's index, or None if retention deleted it meanwhile."""
        with self._s.lock:
            try:
                return seg.sealed_index(self._s.file_mode)
            except FileNotFoundError:
                return None

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        with self.snapshot() as view:
            return self._read(view, query, limit)

    def _read(
        self, view: tuple[list[Segment], int, int, int], query: Query, limit: int
    ) -> list[RecordedEvent]:
        damaged: list[DamagedRecordError] | None = getattr(self._local, "damaged", None)
        segments, active_count, active_size, head = view
        lo = (query.after or 0) + 1
        hi = min(query.before if query.before is not None else head + 1, head + 1)
        since = to_us(query.since) if query.since is not None else None
        until = to_us(query.until) if query.until is not None else None
        out: list[RecordedEvent] = []
        # Without name filters the slot range *is* the answer: positions and times
        # were mapped to slots exactly, so records need no second check.
        exact = not (
            query.types
            or query.actors
            or query.correlation_ids
            or query.streams
            or query.causation_ids  # (not indexed: the records are checked)
        )
        order = reversed(range(len(segments))) if query.reverse else range(len(segments))
        for k in order:
            seg = segments[k]
            nxt = segments[k + 1].first if k + 1 < len(segments) else head + 1
            if nxt <= lo or seg.first >= hi:  # (names are lower bounds of positions)
                continue
            index: SegmentIndex | None
            if k == len(segments) - 1:
                index = seg.index
                count, size = active_count, active_size
            else:
                index = self._sealed(seg)
                if index is None:
                    continue  # retention removed it since we looked
                count, size = index.count, index.size
            if index is None:
                continue
            positions = index.positions
            a = bisect.bisect_left(positions, lo, 0, count)
            b = bisect.bisect_left(positions, hi, a, count)
            times = index.times
            if since is not None and a < b:
                a = max(a, bisect.bisect_left(times, since, a, b))
            if until is not None and a < b:
                b = min(b, bisect.bisect_left(times, until, a, b))
            if a >= b:
                continue
            slots = _candidates(index, query, a, b)
            while len(out) < limit:
                want = limit - len(out)
                chunk = _take(slots, min(4096, want) if exact else min(512, max(16, want)))
                if not chunk:
                    break
                records = seg.read(chunk, index, count, size, damaged=damaged)
                if exact:
                    out.extend(records[:want])
                    continue
                for rec in records:
                    if query.matches(rec):
                        out.append(rec)
                        if len(out) >= limit:
                            break
            if len(out) >= limit:
                break
        return out

    # -- lookups (call with the lock held) ---------------------------------------------

    def find(self, event_id: UUID) -> RecordedEvent | None:
        key = event_id.int
        segs = self._s.segs
        active = segs.active_index()
        # Fresh UUIDv7 ids sort after every stored one: skip the sealed segments.
        if active is not None and active.find_id(key) is None and key > segs.sealed_id_max():
            return None
        for seg in reversed(segs.segments):
            try:
                index = segs.index_of(seg)
            except FileNotFoundError:
                continue  # retention deleted it since the refresh
            slot = index.find_id(key)
            if slot is not None and slot < index.count:
                return seg.read([slot], index, index.count, index.size)[0]
        return None

    def get(self, event_id: UUID) -> RecordedEvent | None:
        with self._s.lock:
            self._s.refresh()
            return self.find(event_id)

    def revision_of(self, stream: str) -> int | None:
        active = self._s.segs.active_index()
        if active is not None:
            rev = active.stream_last().get(stream)
            if rev is not None:
                return rev
        return self._s.segs.sealed_streams().get(stream)


def _candidates(index: SegmentIndex, query: Query, a: int, b: int) -> Iterator[int]:
    """Slots in ``[a, b)`` that may match, most selective posting filter first."""
    best: list[Any] | None = None
    best_count = -1
    for qfield, ifield in _QUERY_FIELDS:
        wanted: tuple[str, ...] = getattr(query, qfield)
        if not wanted:
            continue
        postings = index.postings(ifield)
        if qfield == "types" and any(p.endswith("*") for p in wanted):
            keys = [k for k in list(postings) if query.type_matches(k)]
        else:
            keys = [k for k in wanted if k in postings]
        lists = [postings[k] for k in keys]
        n = count_in(lists, a, b)
        if best is None or n < best_count:
            best, best_count = lists, n
            if n == 0:
                break
    if best is None:
        return iter(range(b - 1, a - 1, -1) if query.reverse else range(a, b))
    return iter_union(best, a, b, reverse=query.reverse)


def _take(it: Iterator[int], n: int) -> list[int]:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out
