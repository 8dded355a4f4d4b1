"""The file store's write path: group commit, the writer flock, one write and one fsync.

Appends from all threads go through a :class:`~eventvault.groupcommit.GroupCommit`:
the leader writes every batch queued so far with one ``write`` and one ``fsync``.
Across processes the writer ``flock`` serialises writers. Holding it, the leader
first proves its view current (:meth:`SegmentSet.refresh`: the active segment is
the file at its path, at the length indexed, and the last one), cuts what a dead
writer left after the last commit marker, rolls to a new segment if the active
one is full, and only then stamps and writes — to that proven file, at that
proven length.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from ...errors import EventVaultError, StoreUnavailableError
from ...groupcommit import GroupCommit, Request
from ...model import RecordedEvent
from ...sequencer import ChainHead, Keyed, stamp_group
from .fsio import WriterLock, backend_errors
from .index import DiskIndex, MemIndex, to_us
from .reading import ReadPath
from .records import encode_batch
from .recovery import cut_uncommitted_tail
from .segment import Segment
from .shared import Shared

__all__ = ["Fsync", "WritePath"]

log = logging.getLogger("eventvault.file")

Fsync = Literal["always", "interval", "never"]


class WritePath:
    """Appends and imports for one store object."""

    def __init__(
        self,
        shared: Shared,
        reads: ReadPath,
        *,
        fsync: Fsync,
        fsync_interval: float,
        segment_max_bytes: int,
        max_event_bytes: int,
    ) -> None:
        self._s = shared
        self._reads = reads
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self.max_event_bytes = max_event_bytes
        self.group = GroupCommit(self._commit)
        self.lock = WriterLock(shared.path / "lock", shared.file_mode)
        self.closed = False
        self._dirty = False
        self._index_writer = ThreadPoolExecutor(1, thread_name_prefix="eventvault-index")
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(
                target=self._sync_loop, args=(fsync_interval,), name="eventvault-fsync", daemon=True
            )
            self._syncer.start()

    def recover(self) -> None:
        """On open: cut a dead writer's uncommitted tail, if no writer is alive."""
        if self.lock.acquire(blocking=False):
            try:
                with self._s.lock:
                    self._prepare(roll=False)
            finally:
                self.lock.release()

    def _prepare(self, *, roll: bool = True) -> None:
        """Prove the view current and the active segment ready (flock held)."""
        segs = self._s.segs
        segs.refresh()
        seg = segs.active
        if seg is not None:
            index = segs.active_index()
            assert index is not None
            cut_uncommitted_tail(seg, index, segs.recovered)
        if roll:
            index = segs.active_index()
            if index is None or index.size >= self.segment_max_bytes:
                if seg is not None and self.fsync != "always":
                    os.fsync(seg.open())
                sealed = segs.roll()
                if sealed is not None and isinstance(sealed.index, MemIndex):
                    # Derived data, so written off the append path: until it lands
                    # this process answers from memory; if we crash first, whoever
                    # needs the file rebuilds it from the segment.
                    self._index_writer.submit(self._write_sealed_index, sealed, sealed.index)

    def _commit(self, group: list[Request]) -> None:
        """Write every request of ``group`` with one write and one fsync (the leader's job)."""
        try:
            with backend_errors("locking the store"):
                self.lock.acquire()
        except EventVaultError as exc:
            _fail(group, exc)
            return
        try:
            with self._s.lock:
                if self.closed:
                    _fail(group, StoreUnavailableError("the store was closed"))
                    return
                try:
                    with backend_errors("preparing to append"):
                        chunks, head = self._prepare_and_stamp(group)
                except EventVaultError as exc:
                    _fail(group, exc)
                    return
                self._s.writing = True
            try:
                self._write(chunks, head)
            finally:
                with self._s.lock:
                    self._s.writing = False
        finally:
            with contextlib.suppress(OSError):
                self.lock.release()

    def _prepare_and_stamp(
        self, group: list[Request]
    ) -> tuple[list[tuple[Request, list[RecordedEvent]]], ChainHead]:
        """:meth:`_prepare`, then :meth:`_stamp` — again over a fresh listing when a
        file the view names is gone.

        The cheap proof that the view is current (retention.json's identity, the
        active segment's links) can miss a retention run: a rename can give the new
        state file the old one's inode, size and coarse timestamps. A sealed segment
        the view names being gone (ENOENT while stamping looks it up) is then the
        proof, and the flock we hold means a fresh listing is final. Stamping only
        reads, so doing it again is safe.
        """
        for attempt in range(3):
            try:
                self._prepare()
                return self._stamp(group)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                self._s.segs.reload()
        raise AssertionError("unreachable")  # pragma: no cover

    def _stamp(
        self, group: list[Request]
    ) -> tuple[list[tuple[Request, list[RecordedEvent]]], ChainHead]:
        """Decide each request's records; a failing request fails alone."""
        segs = self._s.segs

        def find_many(batch: Sequence[Keyed], pending: AbstractSet[int]) -> list[int]:
            """Indexes of events whose id may be stored: in this group, in the active
            segment, or not above the largest id of the sealed segments."""
            keys = [ev.id.int for ev in batch]
            active = segs.active_index()
            stored = active.id_keys() if active is not None else pending
            ceiling = segs.sealed_id_max()
            # isdisjoint() walks ``keys`` and probes the sets: O(batch), no copies.
            if stored.isdisjoint(keys) and pending.isdisjoint(keys) and min(keys) > ceiling:
                return []
            return [i for i, k in enumerate(keys) if k in stored or k in pending or k <= ceiling]

        stamped = stamp_group(
            group,
            segs.head,
            revision_of=self._reads.revision_of,
            find=self._reads.find,
            find_many=find_many,
            max_event_bytes=self.max_event_bytes,
        )
        return stamped.settle(), stamped.head

    def _write(self, chunks: list[tuple[Request, list[RecordedEvent]]], head: ChainHead) -> None:
        if not chunks:
            return
        segs = self._s.segs
        seg = segs.active
        index = segs.active_index()
        assert seg is not None
        assert index is not None
        fd = seg.open()
        base = index.size
        parts = []
        layout = []
        at = base
        try:
            with backend_errors("appending to the store"):
                for req, recs in chunks:
                    data, offsets = encode_batch(recs)
                    parts.append(data)
                    layout.append((req, recs, [at + o for o in offsets]))
                    at += len(data)
                view = memoryview(b"".join(parts))
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync == "always":
                    os.fdatasync(fd)
        except BaseException as exc:
            # Nothing partial may stay, whatever stopped the write: cut back to the
            # last committed byte (unacknowledged bytes a later catch-up would index).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, base)
                os.fsync(fd)
            if not isinstance(exc, EventVaultError):
                raise
            for req, _ in chunks:
                req.error = exc
                req.results = []
            return
        with self._s.lock:
            for req, recs, offsets in layout:
                # An appended batch shares one clock reading, so one recorded_at;
                # imported records keep their own.
                index.add_batch(recs, offsets, None if req.imported else to_us(recs[0].recorded_at))
            index.set_size(at)
            segs.head = head
            self._dirty = True
            self._s.appended.notify_all()

    def _write_sealed_index(self, seg: Segment, index: MemIndex) -> None:
        """Write a sealed segment's index, then answer from the (mapped) file instead
        of memory: a long-running writer must not keep every index it built."""
        try:
            index.write(seg.idx_path, self._s.file_mode)
            disk = DiskIndex.load(seg.idx_path, first=index.first, size=index.size)
        except OSError as exc:
            log.warning("could not write %s (rebuilt when needed): %s", seg.idx_path, exc)
            return
        if disk is not None:
            with self._s.lock:
                if seg.index is index:
                    seg.index = disk
                else:
                    disk.close()

    def flush_index_writes(self) -> None:
        """Wait for the index files already queued (the writer runs them in order)."""
        self._index_writer.submit(lambda: None).result()

    def _sync_loop(self, interval: float) -> None:
        while not self.closed:
            threading.Event().wait(interval)
            with self._s.lock:
                seg = self._s.segs.active
                if not self._dirty or seg is None or self.closed:
                    continue
                self._dirty = False
                fd = seg.fd
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.fdatasync(fd)

    def close(self) -> None:
        self.group.drain()
        self.closed = True
        self._index_writer.shutdown(wait=True)
        with self._s.lock:
            seg = self._s.segs.active
            if seg is not None and seg.fd is not None and self.fsync != "never":
                with contextlib.suppress(OSError):
                    os.fdatasync(seg.fd)
        self.lock.close()


def _fail(group: list[Request], exc: EventVaultError) -> None:
    for req in group:
        req.error = exc
