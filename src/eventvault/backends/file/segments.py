"""The ordered set of segments a process sees, and how it stays true to the disk.

:class:`SegmentSet` is the only place that adds, rolls, replaces or drops a
:class:`~.segment.Segment`. Several processes share the files, so any view can go
stale: another process may have appended to the active segment, rolled on to a
new one, or — applying retention — deleted or rewritten sealed segments. The
set notices each of these from the disk, cheaply, in :meth:`refresh`:

* ``retention.json`` changed (its identity: every retention run rewrites it
  *before* touching any segment) → the whole directory is listed again;
* the active segment's path no longer names the file we have open, or a segment
  named ``head + 1`` exists (someone rolled on) → listed again;
* the active segment grew → the new committed records are indexed.

A writer calls :meth:`refresh` while holding the writer ``flock``. Every writer,
and every retention swap, holds that lock to change a segment, so after the
refresh the view is *proven* current until the lock is released: the active
segment is the file at its path, at the length indexed, and it is the last one.
Appends go only there. A view that cannot be made current raises — it is never
written through.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, cast

from ...errors import CorruptionError
from ...integrity.chain import CHAIN, GENESIS
from ...sequencer import ChainHead
from .compaction import STATE_FILE, RetentionState
from .fsio import fsync_dir
from .index import DiskIndex, MemIndex, SegmentIndex, from_us
from .recovery import catch_up, load_checkpoint
from .segment import Segment, segment_name

__all__ = ["SEGMENT_NAME", "SegmentSet"]

log = logging.getLogger("eventvault.file")

SEGMENT_NAME = re.compile(r"(\d{20})\.jsonl")


class SegmentSet:
    """The segments of one store directory, oldest first; the last is the active one.

    Not thread-safe by itself: the store calls it holding its own lock.
    """

    def __init__(
        self, root: Path, *, file_mode: int, read_only: bool = False, hashes: int = CHAIN
    ) -> None:
        self.root = root
        #: The store's hash format (how a record in a damaged batch is shown intact).
        self.hashes = hashes
        #: Never changes a file (see :mod:`.readonly`): segments open ``O_RDONLY``.
        self.read_only = read_only
        self.seg_dir = root / "segments"
        self.idx_dir = root / "index"
        self.file_mode = file_mode
        self.segments: list[Segment] = []
        self.head = ChainHead(position=0, hash=GENESIS, recorded_at=None)
        self._state_path = str(root / STATE_FILE)
        self.retention = RetentionState.load(root)
        self._stamp = self._state_stamp()
        #: Files in segments/ that are not segments (reported, never written).
        self.stray: list[str] = []
        #: What recovery cut, as stats() reports it.
        self.recovered: list[dict[str, Any]] = []
        self._sealed_streams: dict[str, int] | None = None
        self._sealed_id_max: int | None = None
        self.rescan()

    # -- what the set holds -----------------------------------------------------------

    @property
    def active(self) -> Segment | None:
        return self.segments[-1] if self.segments else None

    def active_index(self) -> MemIndex | None:
        if not self.segments:
            return None
        return cast(MemIndex, self.segments[-1].index)  # (the active one's is a MemIndex)

    def sealed(self) -> list[Segment]:
        return self.segments[:-1]

    def index_of(self, seg: Segment) -> SegmentIndex:
        """The index to read ``seg`` with (the active one's grows; a sealed one's loads)."""
        if seg is self.active:
            assert seg.index is not None
            return seg.index
        return seg.sealed_index(self.file_mode)

    # -- staying true to the disk ---------------------------------------------------

    def _state_stamp(self) -> tuple[int, ...] | None:
        """Identity of retention.json: it changes when any process applies retention."""
        try:
            st = os.stat(self._state_path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size

    def refresh(self) -> None:
        """Catch up with what other processes did (see the module docstring)."""
        stamp = self._state_stamp()
        if stamp != self._stamp:
            self.retention = RetentionState.load(self.root)
            self._stamp = stamp
            self.rescan()
            return
        seg = self.active
        if seg is None:
            self.rescan()
            return
        st = os.fstat(seg.open())
        if not st.st_nlink:
            # The file we hold is no longer at its path (deleted, or another file
            # renamed over it): our view of it is stale.
            self.rescan()
            return
        index = seg.index
        assert isinstance(index, MemIndex)
        head = catch_up(seg, index, st.st_size)
        if head is not None:
            self.head = head
        if index.count and os.path.exists(
            f"{self.seg_dir}/{segment_name(self.head.position + 1)}.jsonl"
        ):
            self.rescan()  # another process sealed our active segment and rolled on

    def reload(self) -> None:
        """Forget what we believed of retention and list the directory again (a file
        our view names is gone: whatever the cheap checks said, the view is stale)."""
        self.retention = RetentionState.load(self.root)
        self._stamp = self._state_stamp()
        self.rescan()

    def rescan(self) -> None:
        """List the directory and rebuild the view, keeping every segment whose file
        is still the one we hold (and its index), dropping the others."""
        for _ in range(20):
            try:
                self._rescan()
                return
            except FileNotFoundError:
                # Retention deleted a segment between the listing and its opening
                # (it saved retention.json first, so that is there to reload).
                self.retention = RetentionState.load(self.root)
                self._stamp = self._state_stamp()
        self._rescan()

    def _rescan(self) -> None:
        names: list[int] = []
        stray: list[str] = []
        entries: list[os.DirEntry[str]] = []
        if not self.read_only or os.path.isdir(self.seg_dir):
            # (read-only, a store that never had a segment may lack segments/: no mkdir)
            entries = list(os.scandir(self.seg_dir))
        for entry in entries:
            m = SEGMENT_NAME.fullmatch(entry.name)
            if m and entry.is_file():
                names.append(int(m.group(1)))
            elif not entry.name.startswith("."):
                stray.append(entry.name)
        names.sort()
        held = {seg.first: seg for seg in self.segments}
        segments: list[Segment] = []
        for first in names:
            seg = held.pop(first, None)
            if seg is not None and not seg.on_disk():  # replaced (compacted) or deleted
                self._retire(seg)
                seg = None
            segments.append(seg if seg is not None else self._segment(first))
        for gone in held.values():
            self._retire(gone)
        self.segments = segments
        self._sealed_streams = None
        self._sealed_id_max = None
        for seg in self.segments[:-1]:
            if isinstance(seg.index, MemIndex):
                catch_up(seg, seg.index)  # it was our active one: index what it got since
        # Empty segment files below the last one cannot be real (a writer rolls on
        # only from a segment it wrote to); drop them before the chain head is
        # worked out from the segment before the active one.
        for seg in list(self.segments[:-1]):
            if seg.index is None and _empty(seg):
                self.segments.remove(seg)
                self._retire(seg)
                stray.append(f"{segment_name(seg.first)}.jsonl")
        # The last segment is the active one — once proven: its name must follow
        # the chain head before it. An empty segment-named file that does not (a
        # restore tool, a stray ``touch``) is reported and never written to.
        while self.segments:
            seg = self.segments[-1]
            before = self.head_before(len(self.segments) - 1)
            index = self._as_active(seg)
            head = catch_up(seg, index)
            if index.count or seg.first == before.position + 1:
                self.head = head if head is not None else self._head_of(index, before)
                break
            self.segments.pop()
            self._retire(seg)
            stray.append(f"{segment_name(seg.first)}.jsonl")
        else:
            self.head = ChainHead(position=0, hash=GENESIS, recorded_at=None)
        if stray != self.stray and stray:
            log.warning("%s: ignoring files that are not segments: %s", self.seg_dir, stray)
        self.stray = stray

    def _segment(self, first: int) -> Segment:
        return Segment(
            self.seg_dir, self.idx_dir, first, read_only=self.read_only, hashes=self.hashes
        )

    def _as_active(self, seg: Segment) -> MemIndex:
        """The growable index of ``seg`` as the active segment."""
        if isinstance(seg.index, MemIndex):
            return seg.index
        if isinstance(seg.index, DiskIndex):
            # (not closed: a read may still use it; unmapped when the last one drops it)
            mem = MemIndex.from_disk(seg.index)
        else:
            mem = load_checkpoint(seg) or MemIndex(seg.first)
        seg.index = mem
        return mem

    @staticmethod
    def _head_of(index: SegmentIndex, before: ChainHead) -> ChainHead:
        if not index.count:
            return before
        last = index.count - 1
        assert index.last_hash is not None
        return ChainHead(
            position=index.positions[last],
            hash=bytes.fromhex(index.last_hash),
            recorded_at=from_us(index.times[last]),
        )

    def head_before(self, k: int) -> ChainHead:
        """The chain head just before ``segments[k]``: the end of the segment before
        it, as retention recorded it if it touched that segment, else as indexed."""
        first = self.segments[k].first
        end = self.retention.end_before(first)
        if k > 0:
            prev = self.segments[k - 1].sealed_index(self.file_mode)
            if prev.count and (end is None or prev.positions[prev.count - 1] > end.position):
                return self._head_of(prev, self.head)
        if end is not None:
            return ChainHead(
                position=end.position,
                hash=bytes.fromhex(end.hash),
                recorded_at=from_us(end.recorded_us),
            )
        return ChainHead(position=first - 1, hash=GENESIS, recorded_at=None)

    # -- changes this process makes -------------------------------------------------

    def roll(self) -> Segment | None:
        """Start a new active segment at ``head + 1`` (call holding the writer flock,
        just after :meth:`refresh`); return the segment it seals, if any."""
        old = self.active
        seg = self._segment(self.head.position + 1)
        fd = seg.open(create=True, mode=self.file_mode)
        if os.fstat(fd).st_size:
            seg.close()
            raise CorruptionError(
                f"{seg.path} already holds data although the chain head is "
                f"{self.head.position}: not a segment of this store's chain"
            )
        fsync_dir(self.seg_dir)
        seg.index = MemIndex(seg.first)
        self.segments.append(seg)
        if old is not None and old.index is not None:
            if self._sealed_id_max is not None:
                self._sealed_id_max = max(self._sealed_id_max, old.index.id_max)
            if self._sealed_streams is not None:
                self._sealed_streams.update(old.index.stream_last())
        return old

    def drop(self, seg: Segment) -> None:
        """Forget a sealed segment retention deleted."""
        self.segments.remove(seg)
        self._retire(seg)
        self.forget_caches()

    def replace(self, old: Segment, new_index: MemIndex) -> Segment:
        """Swap in the compacted file now at ``old``'s path, with its index."""
        new = self._segment(old.first)
        new.open()
        new.index = new_index
        self.segments[self.segments.index(old)] = new
        self._retire(old)
        self.forget_caches()
        return new

    def note_retention(self, state: RetentionState) -> None:
        """Retention saved ``state`` here: adopt it without rescanning."""
        self.retention = state
        self._stamp = self._state_stamp()
        self.forget_caches()

    def forget_caches(self) -> None:
        self._sealed_streams = None
        self._sealed_id_max = None

    @staticmethod
    def _retire(seg: Segment) -> None:
        """Drop ``seg``: closed now, or by the last read still using it (a read that
        took it before it was dropped reads the old file consistently)."""
        seg.retire()

    # -- what the sealed segments hold, cached -----------------------------------------

    def sealed_id_max(self) -> int:
        """The largest event id (as an int) in any sealed segment."""
        if self._sealed_id_max is None:
            self._sealed_id_max = max(
                (s.sealed_index(self.file_mode).id_max for s in self.sealed()), default=-1
            )
        return self._sealed_id_max

    def sealed_streams(self) -> dict[str, int]:
        """The last revision of every stream in the sealed segments (and of those
        retention emptied, which retention.json keeps)."""
        if self._sealed_streams is None:
            merged: dict[str, int] = dict(self.retention.stream_last)
            for seg in self.sealed():
                for name, rev in seg.sealed_index(self.file_mode).stream_last().items():
                    if merged.get(name, -1) < rev:
                        merged[name] = rev
            self._sealed_streams = merged
        return self._sealed_streams

    def close(self) -> None:
        for seg in self.segments:
            seg.close()
        self.segments = []


def _empty(seg: Segment) -> bool:
    try:
        return os.stat(seg.path).st_size == 0
    except FileNotFoundError:
        return True
