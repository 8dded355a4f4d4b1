"""Retention in the file store: planning from the indexes, and removing runs of events.

Retention only touches sealed segments: each one that loses every event is
deleted, each one that loses some is rewritten without them (see
:mod:`.compaction`). One retention run at a time, across processes
(``retention.lock``); each swap under the writer flock, so a writer — which
proves its view current under that flock before every write — never writes to a
segment retention is changing, and never misses that it changed.
"""

from __future__ import annotations

import bisect
import os
from array import array
from pathlib import Path

from ...model import RecordedEvent
from ...retention import Policy
from ...retention.plan import GroupEvents
from ...retention.receipts import Run, RunIndex
from ...store import ProgressCallback
from .compaction import RetentionState, SegmentEnd, compact_segment
from .fsio import WriterLock, fsync_dir, replace_with
from .index import DiskIndex, MemIndex, SegmentIndex
from .runfile import runs_path
from .segment import Segment
from .shared import Shared

__all__ = ["group_events", "remove_runs", "retention_limit"]


def retention_limit(s: Shared) -> int:
    """The highest position retention may touch: everything before the active segment."""
    with s.lock:
        s.refresh()
        active = s.segs.active
        return 0 if active is None else active.first - 1


def group_events(s: Shared, policy: Policy) -> dict[int, GroupEvents]:
    """Each group's events from the indexes alone (no segment is read)."""
    with s.lock:
        s.refresh()
        segments = list(s.segs.segments)
        active = s.segs.active_index()
        active_count = active.count if active else 0
        active_size = active.size if active else 0
        for seg in segments:
            seg.pin()
    try:
        return _group_events(s, policy, segments, active, active_count, active_size)
    finally:
        with s.lock:
            for seg in segments:
                seg.unpin()


def _group_events(
    s: Shared,
    policy: Policy,
    segments: list[Segment],
    active: MemIndex | None,
    active_count: int,
    active_size: int,
) -> dict[int, GroupEvents]:
    memo: dict[tuple[str, str], int | None] = {}
    by_type: dict[str, int | None] = {}
    # Arrays, not lists: 8 bytes an event instead of ~36 (1M events: 24 MB, not 100).
    out: dict[int, tuple[array[int], array[int], array[int]]] = {}
    for k, seg in enumerate(segments):
        index: SegmentIndex
        if k == len(segments) - 1 and active is not None:
            index, count, size = active, active_count, active_size
        else:
            with s.lock:
                try:
                    index = seg.sealed_index(s.file_mode)
                except FileNotFoundError:
                    continue  # another process's retention removed it
            count, size = index.count, index.size
        slots_by_group: dict[int, list[int]] = {}
        types = index.postings("type")
        if policy.uses_streams:
            stream_of: list[str] = [""] * count
            for name, slots in index.postings("stream").items():
                for slot in slots:
                    if slot < count:
                        stream_of[slot] = name
            for name in list(types):
                for slot in types[name]:
                    if slot >= count:
                        break
                    key = (name, stream_of[slot])
                    gid = memo[key] if key in memo else memo.setdefault(key, policy.group_of(*key))
                    if gid is not None:
                        slots_by_group.setdefault(gid, []).append(slot)
        else:
            for name in list(types):
                if name not in by_type:
                    by_type[name] = policy.group_of(name, "")
                gid = by_type[name]
                if gid is not None:
                    slots = types[name]
                    cut = bisect.bisect_left(slots, count)
                    slots_by_group.setdefault(gid, []).extend(slots[:cut])
        positions = index.positions
        times = index.times
        offsets = index.offsets
        for gid, slots in slots_by_group.items():
            slots.sort()
            pos, tim, siz = out.setdefault(gid, (array("q"), array("q"), array("q")))
            pos.extend([positions[s] for s in slots])
            tim.extend([times[s] for s in slots])
            siz.extend([(offsets[s + 1] if s + 1 < count else size) - offsets[s] for s in slots])
    return {gid: GroupEvents(p, t, z) for gid, (p, t, z) in out.items()}


def remove_runs(
    s: Shared,
    runs: list[Run],
    tails: dict[str, int],
    receipts: list[RecordedEvent],
    progress: ProgressCallback | None,
) -> None:
    """Delete or compact the sealed segments holding ``runs``, newest first."""
    inside = RunIndex(runs)
    low = min(r.first for r in runs)
    high = max(r.last for r in runs)
    lock = WriterLock(s.path / "retention.lock", s.file_mode)
    lock.acquire()  # one retention run at a time, across processes
    # The flock is taken on a descriptor of its own: flock() on the appenders'
    # descriptor would succeed at once in this process, and its release would drop
    # their lock.
    swap_lock = WriterLock(s.path / "lock", s.file_mode)
    touched: list[tuple[Segment, SegmentIndex]] = []
    try:
        with s.lock:
            s.refresh()  # after taking the lock: no other run changes segments now
            segs = s.segs.segments
            for k, seg in enumerate(segs[:-1]):
                if seg.first <= high and segs[k + 1].first > low:
                    touched.append((seg, seg.sealed_index(s.file_mode)))
                    seg.pin()  # read (compacted) below, outside the lock
        seg_dir = s.segs.seg_dir
        for stray in seg_dir.glob(".*.tmp-*"):  # a compaction that crashed
            stray.unlink()
        state = RetentionState.load(s.path)
        for seg, index in touched:
            if seg.first not in state.ends and index.count:
                last = index.count - 1
                assert index.last_hash is not None
                state.ends[seg.first] = SegmentEnd(
                    index.positions[last], index.last_hash, index.times[last]
                )
        for name, rev in tails.items():
            if state.stream_last.get(name, -1) < rev:
                state.stream_last[name] = rev
        state.generation += 1
        state.save(s.path, s.file_mode)  # before any segment changes
        with s.lock:
            s.segs.note_retention(state)
        done = 0
        for seg, index in reversed(touched):
            goes = [inside(p) for p in index.positions]
            n = sum(goes)
            if not n:
                continue
            # Each swap happens under the writer flock (appends wait) and our own
            # lock (this process's readers see the old segment or the new one).
            if n == index.count:
                with swap_lock.held(), s.lock:
                    s.segs.drop(seg)
                    os.unlink(seg.path)
                    seg.idx_path.unlink(missing_ok=True)
                    runs_path(seg.idx_path).unlink(missing_ok=True)
                    fsync_dir(seg_dir)
            else:
                assert isinstance(index, (MemIndex, DiskIndex))
                tmp, kept, offsets, size, last_hash, ends = compact_segment(
                    seg.open(), seg.path, index, goes, s.file_mode
                )
                new = MemIndex.compacted(index, kept, offsets, size, last_hash, ends)
                with swap_lock.held(), s.lock:
                    seg.idx_path.unlink(missing_ok=True)  # the old one no longer fits
                    runs_path(seg.idx_path).unlink(missing_ok=True)  # (nor its run map)
                    replace_with(tmp, Path(seg.path))
                    replaced = s.segs.replace(seg, new)
                try:
                    new.write(replaced.idx_path, s.file_mode)
                except OSError:  # derived data: rebuilt from the segment when needed
                    replaced.idx_path.unlink(missing_ok=True)
            # Announce the change: other processes rescan on their next call (the
            # identity of retention.json changed).
            state.generation += 1
            state.save(s.path, s.file_mode)
            with s.lock:
                s.segs.note_retention(state)
            done += n
            if progress is not None:
                progress(done, None)
    finally:
        with s.lock:
            for seg, _ in touched:
                seg.unpin()
        swap_lock.close()
        lock.close()
