"""The file store's index of runs: newest runs and run summaries from the segments'
run maps (:mod:`.runmap`), not from the events.

Every segment's index carries (once a listing asked) a :class:`~.runmap.SegmentRuns`:
a summary per correlation id of the events in that segment, ordered by each run's
last event. A run's summary is the segments' summaries combined, oldest segment
first (count added, first from the oldest, last from the newest, actors and streams
in order of first appearance); the newest runs are the segments' run maps read
backwards, newest segment first. So a page of 50 runs costs a few hundred dict
lookups, whatever the runs' sizes.

Why it stays exact:

* *Other processes*: every listing first catches up with the files, as every read
  does (:meth:`.reading.ReadPath.snapshot`); the active segment's run map grows
  with the records a catch-up indexes.
* *Retention*: a compacted segment is a new file with a new index, a deleted one
  leaves the view; run maps belong to an index, so removed events are in none.
* *As of* ``head``: positions above ``head`` (appended after the listing's first
  page) are cut off by slot. A run with such events in a segment is summarised
  there from its records up to ``head`` (read and checked like any read); its
  newest event up to ``head`` is found in its posting list.

Memory: a summary per run and segment (not per event). A sealed segment's run map
is read from ``index/<segment>.runs`` (:mod:`.runfile`) or, missing or stale, built
from its index's posting lists the first time it is needed (no record read) and
saved there; it is kept for as long as the segment's file is the same. The
active segment's map is built the same way once, then kept current as records
are indexed.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ...model import Query, RecordedEvent
from ...runs.listing import RunKey, unfiltered
from ...runs.model import RunSummary
from ...runs.outcomes import Outcomes, outcome_of
from ...timeutil import from_us, to_us
from .index import MemIndex, SegmentIndex
from .reading import ReadPath
from .runfile import load_runs, save_runs
from .runmap import SegmentRuns, build_runs
from .segment import Segment
from .shared import Shared

__all__ = ["FileRunIndex"]


class _Part(NamedTuple):
    """A run's events in one segment, up to the listing's head."""

    events: int
    first_position: int
    last_position: int
    first_us: int
    last_us: int
    first_type: str
    last_type: str
    actors: tuple[str, ...]
    streams: tuple[str, ...]


def _part_of(records: Sequence[RecordedEvent]) -> _Part:
    first, last = records[0], records[-1]
    return _Part(
        events=len(records),
        first_position=first.position,
        last_position=last.position,
        first_us=to_us(first.recorded_at),
        last_us=to_us(last.recorded_at),
        first_type=first.type,
        last_type=last.type,
        actors=tuple(dict.fromkeys(r.actor for r in records if r.actor is not None)),
        streams=tuple(dict.fromkeys(r.stream for r in records)),
    )


class FileRunIndex:
    """:class:`~eventvault.runs.RunIndex` over one file store's view."""

    def __init__(self, shared: Shared, reads: ReadPath) -> None:
        self._s = shared
        self._reads = reads
        #: Sealed segments' run maps by (first, inode, device) of the file: (its
        #: size then, the map, whether it is saved beside the index file).
        self._sealed: dict[tuple[int, int, int], tuple[int, SegmentRuns, bool]] = {}

    def _indexes(self, segments: list[Segment]) -> Iterator[tuple[Segment, SegmentIndex]]:
        """Each segment with its index (call with the lock held)."""
        for k, seg in enumerate(segments):
            index = seg.index if k == len(segments) - 1 else self._reads._sealed(seg)
            if index is not None:
                yield seg, index

    def _runs_of(self, seg: Segment, index: SegmentIndex) -> SegmentRuns:
        """The run map of ``index`` (call with the lock held)."""
        key = (seg.first, seg.ino or 0, seg.dev or 0)
        cached = self._sealed.get(key)
        if cached is not None and cached[0] != index.size:
            cached = None
        if isinstance(index, MemIndex):
            if index.runs is None:
                index.runs = cached[1] if cached is not None else build_runs(index, index.count)
            # (kept for the index file that takes over once the segment is sealed)
            self._sealed[key] = (index.size, index.runs, False)
            return index.runs
        if cached is not None and cached[2]:
            return cached[1]
        runs = cached[1] if cached is not None else load_runs(seg.idx_path, index)
        saved = runs is not None and cached is None
        if runs is None:
            runs = build_runs(index, index.count)
        if not saved and not self._s.segs.read_only:
            save_runs(seg.idx_path, index, runs, self._s.file_mode)
        self._sealed[key] = (index.size, runs, True)
        return runs

    def _prune(self, segments: list[Segment]) -> None:
        live = {(s.first, s.ino or 0, s.dev or 0) for s in segments}
        for key in [k for k in self._sealed if k not in live]:
            del self._sealed[key]

    def newest_runs(
        self, query: Query, *, head: int, before: int | None, limit: int
    ) -> list[RunKey] | None:
        """Without filters, from the run maps (newest segment first, each backwards);
        with filters None: the listing scans."""
        if not unfiltered(query):
            return None
        bound = head + 1 if before is None else min(before, head + 1)
        seen: set[str] = set()
        out: list[RunKey] = []
        with self._reads.snapshot() as (segments, _count, _size, _head), self._s.lock:
            self._prune(segments)
            for seg, index in reversed(list(self._indexes(segments))):
                if seg.first > head:
                    continue
                positions = index.positions
                hi = bisect.bisect_left(positions, head + 1, 0, index.count)
                if not hi:
                    continue
                mid = bisect.bisect_left(positions, bound, 0, hi)
                for slot, cid in self._newest(index, self._runs_of(seg, index), hi, mid, seen):
                    seen.add(cid)
                    out.append(RunKey(cid, positions[slot]))
                    if len(out) >= limit:
                        return out
        return out

    @staticmethod
    def _newest(
        index: SegmentIndex, runs: SegmentRuns, hi: int, mid: int, seen: set[str]
    ) -> Iterator[tuple[int, str]]:
        """(slot of the newest event below slot ``mid``, cid) of the segment's runs
        not in ``seen``, newest first. Runs with an event in ``[mid, hi)`` join
        ``seen`` (listed on an earlier page); events from ``hi`` on do not count."""
        postings = index.postings("correlation_id")
        items = reversed(runs.items())
        displaced: list[tuple[int, str]] = []
        first_rest: tuple[int, str] | None = None
        for cid, run in items:  # the runs whose last event is at or after mid
            if run.last < mid:
                first_rest = (run.last, cid)
                break
            if cid in seen:
                continue
            slots = postings[cid]
            j = bisect.bisect_left(slots, hi)
            if not j:
                continue  # only events after head here
            if slots[j - 1] >= mid:
                seen.add(cid)
            else:
                displaced.append((slots[j - 1], cid))
        displaced.sort(reverse=True)

        def rest() -> Iterator[tuple[int, str]]:
            if first_rest is not None:
                yield first_rest
                for cid, run in items:
                    yield run.last, cid

        for slot, cid in heapq.merge(displaced, rest(), key=lambda x: x[0], reverse=True):
            if cid not in seen:
                yield slot, cid

    def run_summaries(
        self, correlation_ids: Sequence[str], *, head: int, outcomes: Outcomes
    ) -> dict[str, RunSummary]:
        wanted = list(dict.fromkeys(correlation_ids))
        parts: dict[str, list[_Part | int]] = {cid: [] for cid in wanted}
        #: Runs with events after head in a segment: read there (outside the lock).
        reads: list[tuple[Segment, SegmentIndex, int, int, list[int]]] = []
        with self._reads.snapshot() as (segments, _count, _size, _head):
            with self._s.lock:
                self._prune(segments)
                for seg, index in self._indexes(segments):
                    if seg.first > head:
                        break
                    count, positions, times = index.count, index.positions, index.times
                    hi = bisect.bisect_left(positions, head + 1, 0, count)
                    if not hi:
                        continue
                    runs = self._runs_of(seg, index)
                    for cid in wanted:
                        run = runs.get(cid)
                        if run is None:
                            continue
                        if run.last < hi:
                            parts[cid].append(
                                _Part(
                                    run.count,
                                    positions[run.first],
                                    positions[run.last],
                                    times[run.first],
                                    times[run.last],
                                    run.first_type,
                                    run.last_type,
                                    run.actors,
                                    run.streams,
                                )
                            )
                            continue
                        slots = index.postings("correlation_id")[cid]
                        j = bisect.bisect_left(slots, hi)
                        if j:
                            parts[cid].append(len(reads))
                            reads.append((seg, index, count, index.size, list(slots[:j])))
            done = [_part_of(seg.read(s, index, n, size)) for seg, index, n, size, s in reads]
        out: dict[str, RunSummary] = {}
        for cid, found in parts.items():
            if not found:
                continue
            got = [done[p] if isinstance(p, int) else p for p in found]
            first, last = got[0], got[-1]
            out[cid] = RunSummary(
                correlation_id=cid,
                events=sum(p.events for p in got),
                first_position=first.first_position,
                last_position=last.last_position,
                first_recorded_at=from_us(first.first_us),
                last_recorded_at=from_us(last.last_us),
                duration_us=last.last_us - first.first_us,
                actors=tuple(dict.fromkeys(a for p in got for a in p.actors)),
                streams=tuple(dict.fromkeys(s for p in got for s in p.streams)),
                first_type=first.first_type,
                last_type=last.last_type,
                outcome=outcome_of(last.last_type, outcomes),
            )
        return out
