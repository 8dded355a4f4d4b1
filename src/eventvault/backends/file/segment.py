"""One segment file and everything a process holds about it.

A :class:`Segment` owns its path, its descriptor, the *identity* of the file that
descriptor has open (inode and device, taken with ``fstat`` on the descriptor
itself) and its index. They are created together and dropped together: an index
always describes the very file its reads go to, whatever retention does to the
path meanwhile (it replaces a compacted segment by renaming a new file over it).

The active segment's index is a :class:`MemIndex` that grows as records are
appended; a sealed segment's index is loaded (or rebuilt) the first time a read
needs it, from the descriptor the segment opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ...errors import CorruptionError, EventVaultError
from ...model import RecordedEvent
from .index import DiskIndex, MemIndex, SegmentIndex
from .records import decode_run, scan_committed

__all__ = ["Segment", "segment_name"]

log = logging.getLogger("eventvault.file")


def segment_name(first: int) -> str:
    """A segment's (or its index's) file stem: the first position, zero-padded."""
    return f"{first:020d}"


class Segment:
    """One segment file: descriptor, identity and index, kept together."""

    __slots__ = ("dev", "fd", "first", "idx_path", "index", "ino", "path")

    def __init__(self, seg_dir: Path, idx_dir: Path, first: int) -> None:
        self.first = first
        stem = segment_name(first)
        self.path = f"{seg_dir}/{stem}.jsonl"  # a str: the hot path stats it
        self.idx_path = idx_dir / f"{stem}.idx"
        self.fd: int | None = None
        self.ino = self.dev = -1
        self.index: SegmentIndex | None = None

    # -- the file ------------------------------------------------------------------

    def open(self, *, create: bool = False, mode: int = 0o600) -> int:
        """The descriptor, opened on first use; the identity is taken from it.

        Raises FileNotFoundError when the segment is gone (retention deleted it).
        """
        if self.fd is None:
            flags = os.O_RDWR | os.O_APPEND | (os.O_CREAT if create else 0)
            fd = os.open(self.path, flags, mode)
            st = os.fstat(fd)
            self.fd, self.ino, self.dev = fd, st.st_ino, st.st_dev
        return self.fd

    def on_disk(self) -> bool:
        """Whether the path still names the file this segment has open (a segment
        never opened has nothing to be stale about)."""
        if self.fd is None:
            return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        return st.st_ino == self.ino and st.st_dev == self.dev

    def length(self) -> int:
        return os.fstat(self.open()).st_size

    def close(self) -> None:
        index, self.index = self.index, None
        if isinstance(index, DiskIndex):
            index.close()
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the index of a sealed segment ---------------------------------------------

    def sealed_index(self, mode: int) -> SegmentIndex:
        """The index of this (sealed) segment: held, loaded from its file if that
        describes this very file, or rebuilt from the segment."""
        if self.index is not None:
            return self.index
        fd = self.open()
        size = os.fstat(fd).st_size
        disk = DiskIndex.load(self.idx_path, first=self.first, size=size)
        if disk is not None and self._fits(disk):
            self.index = disk
            return disk
        if disk is not None:
            disk.close()
        built = self.build_index(size)
        log.info("rebuilt the index of %s (%d events)", self.path, built.count)
        self.index = built
        with contextlib.suppress(OSError):
            built.write(self.idx_path, mode)
            reloaded = DiskIndex.load(self.idx_path, first=self.first, size=size)
            if reloaded is not None:
                self.index = reloaded
        return self.index

    def _fits(self, index: SegmentIndex) -> bool:
        """Whether ``index`` describes this file: its last record sits where the
        index says, with the hash the index says (an index file of an older version
        of the segment, which retention replaced, does not)."""
        if not index.count:
            return False
        try:
            last = self.read([index.count - 1], index, index.count, index.size)[0]
        except (OSError, EventVaultError):
            return False
        return last.position == index.positions[index.count - 1] and last.hash == index.last_hash

    def build_index(self, size: int) -> MemIndex:
        """Index every record of this sealed segment (positions may have gaps)."""
        data = os.pread(self.open(), size, 0)
        heads, end = scan_committed(data, 0, self.first, self.path, gaps=True)
        if end != len(data):
            raise CorruptionError(
                f"{self.path}: {len(data) - end} bytes after the last committed record of a "
                f"sealed segment (after position {heads[-1][1].position if heads else self.first})"
            )
        built = MemIndex(self.first)
        for offset, head in heads:
            built.add_head(offset, head)
        built.set_size(size)
        return built

    # -- reading -------------------------------------------------------------------

    def read(
        self, slots: Sequence[int], index: SegmentIndex, count: int, size: int
    ) -> list[RecordedEvent]:
        """Decode the records at ``slots`` (ascending or descending), one pread per run
        of neighbours. ``count`` and ``size``: what of ``index`` to trust (the active
        index keeps growing while a read runs)."""
        fd = self.open()
        offsets = index.offsets
        positions = index.positions
        out: list[RecordedEvent] = []
        i = 0
        n = len(slots)
        step = 1 if n == 1 or slots[-1] >= slots[0] else -1
        while i < n:
            j = i
            while j + 1 < n and slots[j + 1] == slots[j] + step:
                j += 1
            lo, hi = (slots[i], slots[j]) if step == 1 else (slots[j], slots[i])
            start = offsets[lo]
            end = offsets[hi + 1] if hi + 1 < count else size
            buf = os.pread(fd, end - start, start)
            run = decode_run(buf, positions, lo, hi - lo + 1, self.path)
            out.extend(run if step == 1 else reversed(run))
            i = j + 1
        return out

    def __repr__(self) -> str:
        return f"Segment({self.path!r}, fd={self.fd})"
