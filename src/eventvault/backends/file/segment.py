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

import bisect
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ...errors import CorruptionError, EventVaultError
from ...integrity.chain import CHAIN, GENESIS, LEAF, record_hash
from ...model import RecordedEvent
from .index import DiskIndex, MemIndex, SegmentIndex
from .records import DamagedRecordError, batch_ok, decode_run, scan_committed

__all__ = ["Segment", "segment_name"]

log = logging.getLogger("eventvault.file")
_decoder = msgspec.json.Decoder(RecordedEvent)


def segment_name(first: int) -> str:
    """A segment's (or its index's) file stem: the first position, zero-padded."""
    return f"{first:020d}"


class Segment:
    """One segment file: descriptor, identity and index, kept together."""

    __slots__ = (
        "dev",
        "fd",
        "first",
        "hashes",
        "idx_path",
        "index",
        "ino",
        "path",
        "read_only",
        "retired",
        "seen_size",
        "users",
    )

    def __init__(
        self,
        seg_dir: Path,
        idx_dir: Path,
        first: int,
        *,
        read_only: bool = False,
        hashes: int = CHAIN,
    ) -> None:
        self.first = first
        self.hashes = hashes  # the store's hash format
        #: Opened ``O_RDONLY``, and a rebuilt index is kept in memory, never written.
        self.read_only = read_only
        stem = segment_name(first)
        self.path = f"{seg_dir}/{stem}.jsonl"  # a str: the hot path stats it
        self.idx_path = idx_dir / f"{stem}.idx"
        self.fd: int | None = None
        self.ino = self.dev = -1
        self.index: SegmentIndex | None = None
        #: Reads using this segment outside the store's lock (see :meth:`pin`).
        self.users = 0
        self.retired = False
        #: The file's length when it was last caught up with (see recovery.catch_up).
        self.seen_size = 0

    # -- the file ------------------------------------------------------------------

    def open(self, *, create: bool = False, mode: int = 0o600) -> int:
        """The descriptor, opened on first use; the identity is taken from it.

        Raises FileNotFoundError when the segment is gone (retention deleted it).
        """
        if self.fd is None:
            if self.retired:
                # Never reopen by path: the file there now is not the one our index
                # describes (retention replaced or deleted it).
                raise FileNotFoundError(f"{self.path} was replaced or removed")
            if self.read_only:
                assert not create  # (only a writer makes segments)
                flags = os.O_RDONLY
            else:
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

    # -- lifetime (call with the store's lock held) --------------------------------

    def pin(self) -> None:
        """A read is about to use this segment outside the lock: keep it open."""
        self.users += 1

    def unpin(self) -> None:
        self.users -= 1
        if self.retired and not self.users:
            self.close()

    def retire(self) -> None:
        """The set dropped this segment: close it once no read uses it any more."""
        self.retired = True
        if not self.users:
            self.close()

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
        describes this very file, or rebuilt from the segment (and saved, unless
        read-only)."""
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
        if self.read_only:
            return built
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
        scan = scan_committed(data, 0, self.first, self.path, gaps=True)
        if scan.end != len(data):
            last = scan.heads[-1][1].position if scan.heads else self.first
            raise CorruptionError(
                f"{self.path}: {len(data) - scan.end} bytes after the last committed record "
                f"of a sealed segment (after position {last})"
            )
        built = MemIndex(self.first)
        for offset, head in scan.heads:
            built.add_head(offset, head)
        built.end_batches(scan.batch_ends, 0)
        built.set_size(size)
        return built

    # -- reading -------------------------------------------------------------------

    def read(
        self,
        slots: Sequence[int],
        index: SegmentIndex,
        count: int,
        size: int,
        *,
        damaged: list[DamagedRecordError] | None = None,
    ) -> list[RecordedEvent]:
        """Decode the records at ``slots`` (ascending or descending), one pread per run
        of neighbours, after checking the checksum of every batch they are in.

        ``count`` and ``size``: what of ``index`` to trust (the active index keeps
        growing while a read runs). A failing checksum raises
        :class:`DamagedRecordError` for the first returned record that cannot be
        shown intact — unless ``damaged`` is given (``verify``), which collects the
        failures and returns the records as stored, for the chain to judge.
        """
        fd = self.open()
        offsets = index.offsets
        positions = index.positions
        ends = index.batch_ends
        out: list[RecordedEvent] = []
        i = 0
        n = len(slots)
        step = 1 if n == 1 or slots[-1] >= slots[0] else -1
        # The batches last read and found intact: runs of records scattered through
        # one big batch (a run's events among others') read and checksum it once,
        # not once per run (779 preads of a 10,000-event batch for 1,000 events).
        kept_lo = kept_hi = -1
        kept_start = 0
        kept_buf = b""
        while i < n:
            j = i
            while j + 1 < n and slots[j + 1] == slots[j] + step:
                j += 1
            lo, hi = (slots[i], slots[j]) if step == 1 else (slots[j], slots[i])
            # Whole batches around [lo, hi]: a checksum covers a batch.
            b0 = bisect.bisect_right(ends, lo)
            b1 = bisect.bisect_right(ends, hi, b0)
            blo = ends[b0 - 1] if b0 else 0
            bhi = min(ends[b1], count) if b1 < len(ends) else count
            if kept_lo <= blo and bhi <= kept_hi:
                start, buf = kept_start, kept_buf
            else:
                start = offsets[blo]
                buf = os.pread(fd, (offsets[bhi] if bhi < count else size) - start, start)
                intact = True
                for b in range(b0, min(b1 + 1, len(ends))):
                    first_slot = ends[b - 1] if b else 0
                    end_slot = min(ends[b], count)
                    bs = offsets[first_slot] - start
                    be = (offsets[end_slot] if end_slot < count else size) - start
                    if not batch_ok(buf, bs, be):
                        intact = False
                        batch = range(first_slot, end_slot)
                        wanted = range(max(lo, batch.start), min(hi + 1, batch.stop))
                        self._check_batch(buf, start, batch, wanted, index, count, size, damaged)
                # (A damaged batch is read again for each run: each run's records are
                # judged on their own, as _check_batch does.)
                if intact:
                    kept_lo, kept_hi, kept_start, kept_buf = blo, bhi, start, buf
            a = offsets[lo] - start
            z = (offsets[hi + 1] if hi + 1 < count else size) - start
            run = decode_run(buf[a:z], positions, lo, hi - lo + 1, self.path)
            out.extend(run if step == 1 else reversed(run))
            i = j + 1
        return out

    def _unproven(
        self, buf: bytes, start: int, wanted: range, index: SegmentIndex, count: int, size: int
    ) -> int | None:
        """The first slot of ``wanted`` (in a batch whose checksum failed) that cannot
        be shown intact: it must decode, sit at its position, and its hash must
        recompute from its predecessor's. A predecessor that does not decode is the
        damage itself, so its neighbour is vouched for; with no adjacent predecessor
        (the segment's first record after position 1, a hole retention left) a
        record cannot be shown intact."""
        offsets, positions = index.offsets, index.positions

        def record(slot: int) -> RecordedEvent | None:
            a = offsets[slot]
            z = offsets[slot + 1] if slot + 1 < count else size
            raw = buf[a - start : z - start] if a >= start else os.pread(self.open(), z - a, a)
            try:
                rec = _decoder.decode(raw)
            except msgspec.DecodeError:
                return None
            return rec if rec.position == positions[slot] else None

        for slot in wanted:
            pos = positions[slot]
            rec = record(slot)
            if rec is None:
                return slot
            if self.hashes == LEAF:
                # A leaf hash covers its record alone: no predecessor needed.
                if record_hash(GENESIS, rec, LEAF).hex() == rec.hash:
                    continue
                return slot
            if slot and positions[slot - 1] == pos - 1:
                prev = record(slot - 1)
                if prev is None or record_hash(bytes.fromhex(prev.hash), rec).hex() == rec.hash:
                    continue
            elif pos == 1 and record_hash(GENESIS, rec).hex() == rec.hash:
                continue
            return slot
        return None

    def _check_batch(
        self,
        buf: bytes,
        start: int,
        batch: range,
        wanted: range,
        index: SegmentIndex,
        count: int,
        size: int,
        damaged: list[DamagedRecordError] | None,
    ) -> None:
        """Batch ``batch`` (slots) failed its checksum: raise for the first slot of
        ``wanted`` that cannot be shown intact (or collect it in ``damaged``)."""
        positions = index.positions
        first, last = positions[batch.start], positions[batch.stop - 1]
        where = f"the batch holding positions {first}..{last} (byte {index.offsets[batch.start]})"
        if damaged is not None:
            slot = self._unproven(buf, start, batch, index, count, size)
            pos = positions[slot] if slot is not None else first
            damaged.append(
                DamagedRecordError(
                    f"{self.path}: {where} fails its checksum; position {pos} is the first "
                    "record that cannot be shown intact",
                    pos,
                    last,
                )
            )
            return
        slot = self._unproven(buf, start, wanted, index, count, size)
        if slot is not None:
            raise DamagedRecordError(
                f"{self.path}: position {positions[slot]} is damaged: {where} fails its "
                "checksum and this record cannot be shown intact",
                positions[slot],
                last,
            )
        log.warning("%s: %s fails its checksum; the records read are intact", self.path, where)

    def __repr__(self) -> str:
        return f"Segment({self.path!r}, fd={self.fd})"
