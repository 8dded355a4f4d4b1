"""The file store's write path: group commit, the writer flock, one write and one fsync.

Appends from all threads go through a :class:`~eventvault.groupcommit.GroupCommit`:
the leader writes every batch queued so far with one ``write`` and one ``fsync``.
Across processes the writer ``flock`` serialises writers. Holding it, the leader
first proves its view current (:meth:`SegmentSet.refresh`: the active segment is
the file at its path, at the length indexed, and the last one), cuts what a dead
writer left after the last commit marker, rolls to a new segment if the active
one is full, and only then stamps and writes — to that proven file, at that
proven length.

The Merkle tree (:mod:`.tree`) is derived data written after the events, still
under the flock: :meth:`WritePath._prepare` first catches it up with whatever a
crash (or a writer of an older version) left it lacking.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from ...errors import CorruptionError, EventVaultError, StoreUnavailableError
from ...groupcommit import GroupCommit, Request
from ...integrity.chain import CHAIN
from ...model import Query, RecordedEvent
from ...sequencer import ChainHead, Keyed, stamp_group
from ...spi import ProgressCallback
from .fsio import WriterLock, backend_errors
from .index import DiskIndex, MemIndex, to_us
from .reading import ReadPath
from .records import encode_batch
from .recovery import cut_uncommitted_tail
from .segment import Segment
from .shared import Shared
from .tree import StoreTree

__all__ = ["Fsync", "WritePath"]

log = logging.getLogger("eventvault.file")

Fsync = Literal["always", "interval", "never"]


class WritePath:
    """Appends and imports for one store object."""

    def __init__(
        self,
        shared: Shared,
        reads: ReadPath,
        tree: StoreTree,
        *,
        fsync: Fsync,
        fsync_interval: float,
        segment_max_bytes: int,
        max_event_bytes: int,
        hashes: int = CHAIN,
    ) -> None:
        self._s = shared
        self.hashes = hashes  # the store's hash format
        self._reads = reads
        self.tree = tree
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
        """On open: cut a dead writer's uncommitted tail and bring the tree level with
        the events (building it for a store made before it), if no writer is alive."""
        if self.lock.acquire(blocking=False):
            try:
                with self._s.lock:
                    try:
                        self._prepare(roll=False, opening=True)
                    except CorruptionError as exc:
                        # The store still opens (reads and verify work); appends
                        # raise this again from _prepare.
                        if str(exc) not in self.tree.notices:
                            log.warning("%s", exc)
                            self.tree.notices.append(str(exc))
            finally:
                self.lock.release()

    def _read_after(self, after: int, limit: int) -> list[RecordedEvent]:
        return self._reads.read(Query(after=after, limit=limit), limit)

    def catch_up_tree(
        self, progress: ProgressCallback | None = None, *, opening: bool = False, torn: bool = False
    ) -> int:
        """Append the leaves the tree lacks (flock and lock held); returns how many.

        ``torn``: recovery just cut torn batches at the head (see :mod:`.records`);
        leaves the tree has for them go too — recovery judged those events never
        acknowledged — kept aside and reported like any cut (see :mod:`.tree`)."""
        building = self.tree.meta is None
        added = self.tree.catch_up(
            self._s.segs,
            self._read_after,
            may_cut=self.fsync != "always" or torn,
            progress=progress,
            check_tail=opening,
        )
        if added and (opening or progress is not None):
            log.info(
                "%s: %s the Merkle tree: %d leaves added (now %d, from position %d)",
                self.tree.path,
                "built" if building else "caught up",
                added,
                self.tree.size,
                self.tree.base + 1,
            )
        return added

    @contextlib.contextmanager
    def _flock(self) -> Iterator[None]:
        """The writer flock on a descriptor of its own (flock() on the appenders' one
        would succeed at once in this process, and its release would drop theirs),
        then the store's lock."""
        lock = WriterLock(self._s.path / "lock", self._s.file_mode)
        try:
            with lock.held(), self._s.lock:
                self._s.segs.refresh()
                yield
        finally:
            lock.close()

    def build_tree(self, progress: ProgressCallback | None) -> int:
        """Build (or finish building) the tree under the flock; returns leaves added."""
        with self._flock():
            return self.catch_up_tree(progress)

    def sync_tree_for_removal(self) -> None:
        """Before retention removes events: their leaves must be in the tree, durably
        (afterwards nothing could recompute them)."""
        with self._flock():
            self.catch_up_tree()
            self.tree.sync()

    def _prepare(self, *, roll: bool = True, opening: bool = False) -> None:
        """Prove the view current, the tree caught up and the active segment ready
        (flock held)."""
        segs = self._s.segs
        segs.refresh()
        seg = segs.active
        cut = len(segs.recovered)
        if seg is not None:
            index = segs.active_index()
            assert index is not None
            cut_uncommitted_tail(seg, index, segs.recovered)
        torn = any(info["torn_batches"] for info in segs.recovered[cut:])
        self.catch_up_tree(opening=opening, torn=torn)
        if roll:
            index = segs.active_index()
            if index is None or index.size >= self.segment_max_bytes:
                if seg is not None and self.fsync != "always":
                    os.fsync(seg.open())
                self.tree.sync()  # (a roll is a durability point for the tree too)
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
                        chunks, head, leaves = self._prepare_and_stamp(group)
                except EventVaultError as exc:
                    _fail(group, exc)
                    return
                self._s.writing = True
            try:
                self._write(chunks, head, leaves)
            finally:
                with self._s.lock:
                    self._s.writing = False
        finally:
            with contextlib.suppress(OSError):
                self.lock.release()

    def _prepare_and_stamp(
        self, group: list[Request]
    ) -> tuple[list[tuple[Request, list[RecordedEvent]]], ChainHead, list[bytes]]:
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
    ) -> tuple[list[tuple[Request, list[RecordedEvent]]], ChainHead, list[bytes]]:
        """Decide each request's records (and their leaf hashes, parallel to what is
        written); a failing request fails alone."""
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
            hashes=self.hashes,
        )
        return stamped.settle(), stamped.head, stamped.leaves

    def _write(
        self,
        chunks: list[tuple[Request, list[RecordedEvent]]],
        head: ChainHead,
        leaves: list[bytes],
    ) -> None:
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
            # After the events (durable under fsync="always"), still under the flock;
            # not fsynced here: a crash leaves the tree behind, and _prepare catches up.
            self.tree.append(leaves)
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
            self.tree.sync()

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
