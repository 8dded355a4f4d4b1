"""The file backend: JSONL segments + derived indexes; the embedded default.

Layout of a store directory::

    eventvault.json                    store metadata (id, format version)
    lock                               writers hold an exclusive flock on it
    segments/00000000000000000001.jsonl
    segments/00000000000000131073.jsonl   named by first position, zero-padded
    index/00000000000000000001.idx     derived, rebuildable (sealed segments only)
    retention.json                     what retention removal must not lose (see compaction.py)

Writing (one process): appends from all threads go through a *group commit* —
the first thread to get the commit lock writes every batch queued so far with one
``write`` and one ``fsync``, so concurrent single-event appends share fsyncs.
Across processes, the ``flock`` serialises writers; before writing, a writer
catches up with what others appended (positions stay unique and contiguous) and
cuts any uncommitted tail a crashed writer left.

Reading never takes the flock, so readers never block writers. Each read first
catches up with the files (an ``fstat`` when nothing changed).

Read-only (``read_only=True``, or detected: the directory, ``segments/``, the lock
file or the active segment cannot be written — a backup, a read-only mount,
another user's store): no lock file, no directory, no recovery, no index file is
written; segments are opened ``O_RDONLY``. A torn tail a writer would cut is left
in place (readers never read past the last commit marker anyway) and reported in
:attr:`FileEventStore.notices` and ``stats().details["unrecovered"]``. Every write
raises :class:`ReadOnlyStoreError`.

Durability: ``fsync="always"`` (default) returns from ``append`` only after
``fdatasync``; ``"interval"`` syncs in the background every ``fsync_interval``;
``"never"`` leaves it to the OS. In-process readers see an event only after it
is durable; readers in *other* processes may see a committed batch while its
fsync is still running.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import logging
import os
import re
import threading
import time
import uuid
from array import array
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import msgspec

from ...chain import GENESIS
from ...errors import (
    CorruptionError,
    EventVaultError,
    ReadOnlyStoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from ...groupcommit import GroupCommit, Import, Request
from ...model import ExpectedRevision, NewEvent, Query, RecordedEvent, StoreStats
from ...retention import Policy
from ...retention_plan import GroupEvents, Run, RunIndex
from ...sequencer import DEFAULT_MAX_EVENT_BYTES, ChainHead, Keyed, stamp_group
from ...store import EventStore, ProgressCallback
from .compaction import STATE_FILE, RetentionState, SegmentEnd, compact_segment
from .fsio import WriterLock, atomic_write, fsync_dir, io_errors, replace_with
from .index import (
    FIELDS,
    DiskIndex,
    MemIndex,
    SegmentIndex,
    count_in,
    from_us,
    iter_union,
    to_us,
)
from .records import decode_run, encode_batch, scan_committed

__all__ = ["FileEventStore"]

log = logging.getLogger("eventvault.file")

FORMAT = "eventvault-file"
FORMAT_VERSION = 1
_SEGMENT = re.compile(r"(\d{20})\.jsonl")
_READ_CHUNK = 8 * 1024 * 1024
_QUERY_FIELDS = (
    ("types", "type"),
    ("actors", "actor"),
    ("correlation_ids", "correlation_id"),
    ("streams", "stream"),
)
Fsync = Literal["always", "interval", "never"]


def _name(first: int) -> str:
    return f"{first:020d}"


class _Meta(msgspec.Struct):
    format: str
    version: int
    store_id: str
    created_at: datetime


class FileEventStore(EventStore):
    """Events in JSONL segment files under one directory. Thread- and process-safe."""

    backend_name = "file"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        fsync: Fsync = "always",
        fsync_interval: float = 0.2,
        segment_max_bytes: int = 64 * 1024 * 1024,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        read_only: bool | None = None,
    ) -> None:
        """``read_only``: True opens for reading only; None (the default) does so
        when the store's files cannot be written; False insists on writing."""
        super().__init__(max_event_bytes=max_event_bytes)
        if fsync not in ("always", "interval", "never"):
            raise ValidationError(f"fsync must be always, interval or never, got {fsync!r}")
        self.path = Path(path)
        if not create and not (self.path / "eventvault.json").is_file():
            # (before anything below can make a directory or a lock file)
            raise StoreNotFoundError(
                f"no store at {self.path} (create one with 'eventvault init', or point "
                "store.file.path / --config at an existing store)"
            )
        self._asked_read_only = read_only is True
        self.read_only = read_only if read_only is not None else not _writable(self.path)
        #: What a person should know about how the store was opened (e.g. a torn
        #: tail that could not be cut because the store is read-only).
        self.notices: list[str] = []
        self._unrecovered: dict[str, Any] | None = None
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        self._seg_dir = self.path / "segments"
        self._idx_dir = self.path / "index"
        self._lock = threading.RLock()  # guards the in-memory state below
        self._appended = threading.Condition(self._lock)
        self._group = GroupCommit(self._commit)
        self._writing = False  # this process holds the flock and is writing
        self._segments: list[int] = []
        self._indexes: dict[int, SegmentIndex] = {}
        self._fds: dict[int, int] = {}
        self._active: MemIndex | None = None
        self._head = ChainHead(position=0, hash=GENESIS, recorded_at=None)
        self._sealed_streams: dict[str, int] | None = None
        self._sealed_id_max: int | None = None  # largest id in any sealed segment
        self._recovered: list[dict[str, Any]] = []
        self._stray: list[str] = []
        self._dirty = False
        self._syncer: threading.Thread | None = None
        self._index_writer = ThreadPoolExecutor(1, thread_name_prefix="eventvault-index")
        # Descriptors of segments retention replaced: closed a while later, since a
        # read that started before the swap may still be using one.
        self._retired_fds: list[tuple[float, int]] = []
        with io_errors(f"opening the store at {self.path}"):
            self._store_id = self._open_dir()
            self._state_path = str(self.path / STATE_FILE)
            self._retention = RetentionState.load(self.path)
            self._retention_stamp = self._state_stamp()
            self._load_segments()
            self._writer_lock: WriterLock | None = None
            if self.read_only:
                self._report_read_only()
            else:
                self._writer_lock = WriterLock(self.path / "lock", file_mode)
                if self._writer_lock.acquire(blocking=False):
                    try:
                        with self._lock:
                            self._cut_uncommitted_tail()
                    finally:
                        self._writer_lock.release()
        if fsync == "interval" and not self.read_only:
            self._syncer = threading.Thread(
                target=self._sync_loop, args=(fsync_interval,), name="eventvault-fsync", daemon=True
            )
            self._syncer.start()

    # -- opening ---------------------------------------------------------------------

    def _report_read_only(self) -> None:
        """Say how the store was opened, and what a writer would have recovered."""
        why = "as asked" if self._asked_read_only else "its files cannot be written"
        self.notices.append(f"{self.path}: opened read-only ({why})")
        active = self._active
        if active is None:
            return
        seg = self._seg_dir / f"{_name(active.first)}.jsonl"
        torn = os.fstat(self._fd(active.first)).st_size - active.size
        if torn <= 0 or self._writer_active():
            return  # (bytes past the last commit while a writer holds the lock: in flight)
        self._unrecovered = {"segment": seg.name, "torn_bytes": torn, "at_offset": active.size}
        message = (
            f"{seg}: {torn} bytes of an uncommitted (torn) write after position "
            f"{self._head.position}; a writer would cut them, but the store is read-only, so "
            "they were not cut (readers ignore them; nothing acknowledged is lost)"
        )
        self.notices.append(message)
        log.warning("%s", message)

    def _writer_active(self) -> bool:
        """Whether a writer holds the lock now (a flock needs no write access)."""
        try:
            fd = os.open(self.path / "lock", os.O_RDONLY)
        except OSError:
            return False  # no lock file: no writer has ever run here
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # (closing drops the probe's lock)
        return False

    def _refuse_write(self, what: str) -> None:
        if self.read_only:
            why = "as asked" if self._asked_read_only else "its files cannot be written"
            raise ReadOnlyStoreError(
                f"cannot {what}: the store at {self.path} is read-only ({why})"
            )

    def _open_dir(self) -> str:
        if self.path.exists() and not self.path.is_dir():
            raise StoreUnavailableError(f"{self.path} exists and is not a directory")
        meta_path = self.path / "eventvault.json"
        if self.read_only and not meta_path.exists():
            raise ReadOnlyStoreError(f"no store at {self.path} (and, read-only, none is made)")
        if not meta_path.exists():
            if self.path.exists() and any(self.path.iterdir()):
                raise StoreUnavailableError(
                    f"{self.path} is not empty and has no eventvault.json: not an eventvault "
                    "store (choose an empty or new directory)"
                )
            self.path.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
            for sub in (self._seg_dir, self._idx_dir):
                sub.mkdir(mode=self._dir_mode, exist_ok=True)
            meta = _Meta(FORMAT, FORMAT_VERSION, str(uuid.uuid4()), datetime.now(UTC))
            atomic_write(meta_path, msgspec.json.encode(meta), self._file_mode)
            fsync_dir(self.path.parent)
            return meta.store_id
        try:
            meta = msgspec.json.decode(meta_path.read_bytes(), type=_Meta)
        except msgspec.DecodeError as exc:
            raise StoreUnavailableError(f"{meta_path} is damaged: {exc}") from None
        if meta.format != FORMAT or meta.version > FORMAT_VERSION:
            raise StoreUnavailableError(
                f"{meta_path}: format {meta.format} v{meta.version} is not supported by this "
                f"version of eventvault (it reads {FORMAT} v{FORMAT_VERSION})"
            )
        if not self.read_only:
            for sub in (self._seg_dir, self._idx_dir):
                sub.mkdir(mode=self._dir_mode, exist_ok=True)
        return meta.store_id

    def _load_segments(self) -> None:
        firsts = []
        if not self._seg_dir.is_dir():  # (read-only: a store that never had an event)
            return
        for entry in os.scandir(self._seg_dir):
            m = _SEGMENT.fullmatch(entry.name)
            if m and entry.is_file():
                firsts.append(int(m.group(1)))
            elif not entry.name.startswith("."):
                self._stray.append(entry.name)
        if self._stray:
            log.warning("%s: ignoring files that are not segments: %s", self._seg_dir, self._stray)
        firsts.sort()
        with self._lock:
            self._segments = firsts
            if firsts:
                self._active = self._checkpoint(firsts[-1]) or MemIndex(firsts[-1])
                self._head = self._head_before(firsts[-1])
                if self._active.count:
                    self._head = self._head_at_checkpoint(self._active)
                self._scan_active()

    def _checkpoint(self, first: int) -> MemIndex | None:
        """The active segment's index as saved by the last clean close, if it still fits.

        Segments only grow, and a checkpoint covers committed bytes only, so its
        records are still there — unless the file was damaged or replaced, which the
        check of the last record's position and hash catches (then: full scan).
        """
        path = self._idx_dir / f"{_name(first)}.idx"
        disk = DiskIndex.load(path, first=first, size=None)
        if disk is None:
            return None
        try:
            mem = MemIndex.from_disk(disk)
        finally:
            disk.close()
        if not mem.count:
            return None
        try:
            last = self._read_slots(first, mem, [mem.count - 1], mem.count, mem.size)[0]
        except (OSError, EventVaultError):
            return None
        if last.position != first + mem.count - 1 or last.hash != mem.last_hash:
            log.warning("%s does not match its segment; rescanning", path)
            return None
        return mem

    def _head_at_checkpoint(self, active: MemIndex) -> ChainHead:
        last = active.count - 1
        assert active.last_hash is not None
        return ChainHead(
            position=active.first + last,
            hash=bytes.fromhex(active.last_hash),
            recorded_at=from_us(active.times[last]),
        )

    def _head_before(self, first: int) -> ChainHead:
        """The chain head just before segment ``first``: the end of the segment before
        it, as retention recorded it if it touched that segment, else as indexed."""
        end = self._retention.end_before(first)
        i = self._segments.index(first)
        if i > 0:
            prev_first = self._segments[i - 1]
            prev = self._index(prev_first)
            if prev.count and (end is None or prev.positions[prev.count - 1] > end.position):
                assert prev.last_hash is not None
                return ChainHead(
                    position=prev.positions[prev.count - 1],
                    hash=bytes.fromhex(prev.last_hash),
                    recorded_at=from_us(prev.times[prev.count - 1]),
                )
        if end is not None:
            return ChainHead(
                position=end.position,
                hash=bytes.fromhex(end.hash),
                recorded_at=from_us(end.recorded_us),
            )
        return ChainHead(position=first - 1, hash=GENESIS, recorded_at=None)

    # -- catching up with the files ----------------------------------------------------

    def _fd(self, first: int) -> int:
        fd = self._fds.get(first)
        if fd is None:
            mode = os.O_RDONLY if self.read_only else os.O_RDWR | os.O_APPEND
            fd = os.open(self._seg_dir / f"{_name(first)}.jsonl", mode)
            self._fds[first] = fd
        return fd

    def _scan_active(self) -> None:
        """Index the committed records the active segment has beyond what we know."""
        active = self._active
        assert active is not None
        fd = self._fd(active.first)
        size = os.fstat(fd).st_size
        where = f"{self._seg_dir / _name(active.first)}.jsonl"
        while size > active.size:
            want = max(_READ_CHUNK, 0)
            buf = os.pread(fd, want, active.size)
            while True:
                heads, end = scan_committed(buf, active.size, active.first + active.count, where)
                if heads or len(buf) >= size - active.size:
                    break
                want *= 2  # one batch larger than the chunk: read more
                buf = os.pread(fd, want, active.size)
            if not heads:
                break
            for offset, head in heads:
                active.add_head(offset, head)
            active.set_size(end)
            last = heads[-1][1]
            self._head = ChainHead(
                position=last.position,
                hash=bytes.fromhex(last.hash),
                recorded_at=last.recorded_at,
            )

    def _state_stamp(self) -> tuple[int, int, int] | None:
        """Identity of retention.json: it changes when any process applies retention."""
        try:
            st = os.stat(self._state_path)  # (a str: building a Path costs more than the stat)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _forget_sealed(self) -> None:
        """Drop what we cached about the sealed segments retention changed — replaced
        by a compacted copy, or deleted — and keep the rest (call with ``_lock`` held).

        Dropping everything each time made every other process reopen every sealed
        segment after every retention run: the descriptors of all of them stayed
        retired (open) for a minute, and a long soak showed them pile up.
        """
        active_first = self._active.first if self._active is not None else None
        for first in [f for f in self._fds if f != active_first]:
            if not self._same_file(first, self._fds[first]):
                self._retire_fd(self._fds.pop(first))
        for first, index in list(self._indexes.items()):
            if first not in self._fds:  # its file changed (or was never opened here)
                if isinstance(index, DiskIndex):
                    index.close()
                del self._indexes[first]
        names = [
            int(m.group(1)) for e in os.scandir(self._seg_dir) if (m := _SEGMENT.fullmatch(e.name))
        ]
        self._segments = sorted(f for f in names if active_first is None or f <= active_first)
        self._sealed_streams = None
        self._sealed_id_max = None

    def _same_file(self, first: int, fd: int) -> bool:
        """Whether the segment's path still names the file ``fd`` has open."""
        try:
            now = os.stat(self._seg_dir / f"{_name(first)}.jsonl")
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (now.st_ino, now.st_dev) == (held.st_ino, held.st_dev)

    def _sealed_still_there(self, first: int) -> bool:
        """Whether a sealed segment we know of still exists (call with ``_lock`` held).

        A process applying retention saves retention.json *before* deleting a
        segment, so a segment that is gone means that state is there to reload."""
        if first in self._indexes and first in self._fds:
            return True  # what we hold stays readable, even if unlinked since
        if os.path.exists(self._seg_dir / f"{_name(first)}.jsonl"):
            return True
        self._retention = RetentionState.load(self.path)
        self._retention_stamp = self._state_stamp()
        self._forget_sealed()
        return False

    def _retire_fd(self, fd: int) -> None:
        now = time.monotonic()
        keep = []
        for when, old in self._retired_fds:
            if now - when > 60:
                with contextlib.suppress(OSError):
                    os.close(old)
            else:
                keep.append((when, old))
        keep.append((now, fd))
        self._retired_fds = keep

    def _refresh(self) -> None:
        """Catch up with appends made by other processes (call with ``_lock`` held)."""
        if self._writing:
            return  # we hold the flock: nobody else can have written
        with io_errors("reading the store"):
            stamp = self._state_stamp()
            if stamp != self._retention_stamp:  # another process applied retention
                self._retention = RetentionState.load(self.path)
                self._retention_stamp = stamp
                self._forget_sealed()
            if self._active is None:
                first = self._seg_dir / f"{_name(1)}.jsonl"
                if not first.exists():
                    return
                self._segments = [1]
                self._active = MemIndex(1)
            while True:
                self._scan_active()
                active = self._active
                assert active is not None
                following = self._seg_dir / f"{_name(active.first + active.count)}.jsonl"
                if not active.count or not following.exists():
                    return
                # Another process sealed our active segment and started a new one.
                self._scan_active()
                self._seal(active, write_index=False)
                self._segments.append(active.first + active.count)
                self._active = MemIndex(active.first + active.count)

    def _cut_uncommitted_tail(self) -> None:
        """Cut bytes after the last commit marker (call holding the flock and ``_lock``).

        Holding the flock means no writer is mid-write, so such bytes are the torn
        tail of a writer that died. They were never acknowledged.
        """
        self._refresh()
        active = self._active
        if active is None:
            return
        fd = self._fd(active.first)
        size = os.fstat(fd).st_size
        if size > active.size:
            os.ftruncate(fd, active.size)
            os.fsync(fd)
            segment = f"{_name(active.first)}.jsonl"
            info = {
                "segment": segment,
                "cut_bytes": size - active.size,
                "at_offset": active.size,
                "at": datetime.now(UTC).isoformat(),
            }
            self._recovered.append(info)
            log.warning(
                "%s: cut %d bytes of an uncommitted (torn) write at offset %d, after position %d",
                self._seg_dir / segment,
                size - active.size,
                active.size,
                self._head.position,
            )

    # -- sealed segments -----------------------------------------------------------------

    def _seal(self, index: MemIndex, *, write_index: bool) -> None:
        if write_index:
            # Derived data, so written off the append path: until it lands this
            # process answers from ``index`` itself; if we crash first, whoever
            # needs the file rebuilds it from the segment.
            self._index_writer.submit(self._write_sealed_index, index)
        self._indexes[index.first] = index
        if self._sealed_id_max is not None:
            self._sealed_id_max = max(self._sealed_id_max, index.id_max)
        if self._sealed_streams is not None:
            self._sealed_streams.update(index.stream_last())

    def _write_sealed_index(self, index: MemIndex) -> None:
        """Write a sealed segment's index, then answer from the (mapped) file instead
        of memory: a long-running writer must not keep every index it built."""
        path = self._idx_dir / f"{_name(index.first)}.idx"
        try:
            index.write(path, self._file_mode)
            disk = DiskIndex.load(path, first=index.first, size=index.size)
        except OSError as exc:
            log.warning("could not write %s (it will be rebuilt when needed): %s", path, exc)
            return
        if disk is not None:
            with self._lock:
                if self._indexes.get(index.first) is index:
                    self._indexes[index.first] = disk
                else:
                    disk.close()

    def _flush_index_writes(self) -> None:
        """Wait for the index files already queued (the writer runs them in order)."""
        self._index_writer.submit(lambda: None).result()

    def _index(self, first: int) -> SegmentIndex:
        """The index of a sealed segment: loaded, or rebuilt from the segment."""
        found = self._indexes.get(first)
        if found is not None:
            return found
        seg = self._seg_dir / f"{_name(first)}.jsonl"
        idx_path = self._idx_dir / f"{_name(first)}.idx"
        with io_errors(f"reading {seg}"):
            # The descriptor first, and everything checked against *it*: retention
            # may replace the file at this path at any moment, and an index must
            # describe the very file its reads go to.
            fd = self._fd(first)
            size = os.fstat(fd).st_size
            disk = DiskIndex.load(idx_path, first=first, size=size)
            if disk is not None:
                self._indexes[first] = disk
                return disk
            built = self._build_index(first, seg, size, fd)
        log.info("rebuilt the index of %s (%d events)", seg, built.count)
        if self.read_only:  # (kept in memory: nothing is written)
            self._indexes[first] = built
            return built
        with contextlib.suppress(OSError):
            built.write(idx_path, self._file_mode)
            reloaded = DiskIndex.load(idx_path, first=first, size=size)
            if reloaded is not None:
                self._indexes[first] = reloaded
                return reloaded
        self._indexes[first] = built
        return built

    def _build_index(self, first: int, seg: Path, size: int, fd: int) -> MemIndex:
        data = os.pread(fd, size, 0)
        heads, end = scan_committed(data, 0, first, str(seg), gaps=True)
        if end != len(data):
            raise CorruptionError(
                f"{seg}: {len(data) - end} bytes after the last committed record of a sealed "
                f"segment (after position {first + len(heads) - 1})"
            )
        built = MemIndex(first)
        for offset, head in heads:
            built.add_head(offset, head)
        built.set_size(size)
        return built

    def reindex(self) -> int:
        """Rebuild every sealed segment's index from its segment; returns how many."""
        self._check_open()
        self._refuse_write("rebuild the indexes")
        self._flush_index_writes()
        with self._lock:
            self._refresh()
            sealed = self._segments[:-1]
            for first in sealed:
                old = self._indexes.pop(first, None)
                if isinstance(old, DiskIndex):
                    old.close()
                with io_errors("removing an index"):
                    (self._idx_dir / f"{_name(first)}.idx").unlink(missing_ok=True)
                self._index(first)
            return len(sealed)

    # -- appending -------------------------------------------------------------------------

    @property
    def store_id(self) -> str:
        return self._store_id

    def _append(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        self._refuse_write("append")
        return self._group.submit(batch, expected)

    def _import(self, imp: Import) -> list[RecordedEvent]:
        self._refuse_write("import events")
        return self._group.submit_request(Request([], ExpectedRevision.ANY, imported=imp))

    def _commit(self, group: list[Request]) -> None:
        """Write every request of ``group`` with one write and one fsync (the leader's job)."""
        assert self._writer_lock is not None  # (read-only stores refuse before this)
        try:
            self._writer_lock.acquire()
        except OSError as exc:
            self._fail(group, StoreUnavailableError(f"cannot lock the store: {exc}"))
            return
        try:
            with self._lock:
                if self._closed:
                    self._fail(group, StoreUnavailableError("the store was closed"))
                    return
                try:
                    with io_errors("preparing to append"):
                        self._cut_uncommitted_tail()
                        self._roll_if_full()
                except EventVaultError as exc:
                    self._fail(group, exc)
                    return
                chunks, head = self._stamp(group)
                self._writing = True
            try:
                self._write(group, chunks, head)
            finally:
                with self._lock:
                    self._writing = False
        finally:
            self._writer_lock.release()

    def _fail(self, group: list[Request], exc: EventVaultError) -> None:
        for req in group:
            req.error = exc

    def _stamp(
        self, group: list[Request]
    ) -> tuple[list[tuple[Request, list[RecordedEvent]]], ChainHead]:
        """Decide each request's records; a failing request fails alone."""

        def find_many(batch: Sequence[Keyed], pending: AbstractSet[int]) -> list[int]:
            """Indexes of events whose id may be stored: in this group, in the active
            segment, or not above the largest id of the sealed segments."""
            keys = [ev.id.int for ev in batch]
            active = self._active
            stored = active.id_keys() if active is not None else pending
            if self._sealed_id_max is None:
                self._sealed_id_max = max(
                    (self._index(f).id_max for f in self._segments[:-1]), default=-1
                )
            ceiling = self._sealed_id_max
            # isdisjoint() walks ``keys`` and probes the sets: O(batch), no copies.
            if stored.isdisjoint(keys) and pending.isdisjoint(keys) and min(keys) > ceiling:
                return []
            return [i for i, k in enumerate(keys) if k in stored or k in pending or k <= ceiling]

        stamped = stamp_group(
            group,
            self._head,
            revision_of=self._revision_of,
            find=self._find,
            find_many=find_many,
            max_event_bytes=self.max_event_bytes,
        )
        return stamped.settle(), stamped.head

    def _write(
        self,
        group: list[Request],
        chunks: list[tuple[Request, list[RecordedEvent]]],
        head: ChainHead,
    ) -> None:
        if not chunks:
            return
        active = self._active
        assert active is not None
        fd = self._fd(active.first)
        base = active.size
        parts = []
        layout = []
        at = base
        for req, recs in chunks:
            data, offsets = encode_batch(recs)
            parts.append(data)
            layout.append((req, recs, [at + o for o in offsets]))
            at += len(data)
        buf = b"".join(parts)
        try:
            with io_errors("appending to the store"):
                view = memoryview(buf)
                while view:
                    view = view[os.write(fd, view) :]
                if self.fsync == "always":
                    os.fdatasync(fd)
        except StoreUnavailableError as exc:
            # Nothing partial may stay: cut back to the last committed byte.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, base)
                os.fsync(fd)
            for req, _ in chunks:
                req.error = exc
                req.results = []
            return
        with self._lock:
            for req, recs, offsets in layout:
                # An appended batch shares one clock reading, so one recorded_at;
                # imported records keep their own.
                active.add_batch(
                    recs, offsets, None if req.imported else to_us(recs[0].recorded_at)
                )
            active.set_size(at)
            self._head = head
            self._dirty = True
            self._appended.notify_all()

    def _roll_if_full(self) -> None:
        """Start a new segment when there is none or the active one is full."""
        active = self._active
        if active is not None and active.size < self.segment_max_bytes:
            return
        first = self._head.position + 1
        if active is not None and self.fsync != "always":
            os.fsync(self._fd(active.first))
        path = self._seg_dir / f"{_name(first)}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, self._file_mode)
        self._fds[first] = fd
        fsync_dir(self._seg_dir)
        if active is not None:
            self._seal(active, write_index=True)
        self._segments.append(first)
        self._active = MemIndex(first)

    def _sync_loop(self, interval: float) -> None:
        while not self._closed:
            threading.Event().wait(interval)
            with self._lock:
                if not self._dirty or self._active is None or self._closed:
                    continue
                self._dirty = False
                fd = self._fds.get(self._active.first)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.fdatasync(fd)

    # -- lookups -------------------------------------------------------------------------

    def _revision_of(self, stream: str) -> int | None:
        active = self._active
        if active is not None:
            rev = active.stream_last().get(stream)
            if rev is not None:
                return rev
        if self._sealed_streams is None:
            # Streams retention emptied keep their last revision in retention.json.
            merged: dict[str, int] = dict(self._retention.stream_last)
            for first in self._segments[:-1]:
                for name, rev in self._index(first).stream_last().items():
                    if merged.get(name, -1) < rev:
                        merged[name] = rev
            self._sealed_streams = merged
        return self._sealed_streams.get(stream)

    def _locate(self, key: int) -> tuple[int, SegmentIndex, int] | None:
        for first in reversed(self._segments):
            index = self._active if first == self._segments[-1] else self._index(first)
            assert index is not None
            slot = index.find_id(key)
            if slot is not None and slot < index.count:
                return first, index, slot
        return None

    def _find(self, event_id: UUID) -> RecordedEvent | None:
        key = event_id.int
        active = self._active
        if active is not None and active.find_id(key) is None:
            # Fresh UUIDv7 ids sort after every stored one: skip the sealed segments.
            if self._sealed_id_max is None:
                self._sealed_id_max = max(
                    (self._index(f).id_max for f in self._segments[:-1]), default=-1
                )
            if key > self._sealed_id_max:
                return None
        found = self._locate(key)
        if found is None:
            return None
        first, index, slot = found
        return self._read_slots(first, index, [slot], index.count, index.size)[0]

    def _get(self, event_id: UUID) -> RecordedEvent | None:
        with self._lock:
            self._refresh()
            with io_errors("reading the store"):
                return self._find(event_id)

    def head(self) -> int:
        with self._lock:
            if not self._closed:
                self._refresh()
            return self._head.position

    # -- reading -------------------------------------------------------------------------

    def _read_slots(
        self,
        first: int,
        index: SegmentIndex,
        slots: list[int],
        count: int,
        size: int,
        fd: int | None = None,
    ) -> list[RecordedEvent]:
        """Decode the records at ``slots`` (ascending or descending), one pread per run.

        ``fd``: the descriptor taken together with ``index`` (retention may replace
        the file meanwhile; the old descriptor still reads the old one)."""
        if fd is None:
            fd = self._fd(first)
        offsets = index.offsets
        positions = index.positions
        where = f"{self._seg_dir / _name(first)}.jsonl"
        out: list[RecordedEvent] = []
        i = 0
        n = len(slots)
        while i < n:
            j = i
            step = 1 if n == 1 or slots[-1] >= slots[0] else -1
            while j + 1 < n and slots[j + 1] == slots[j] + step:
                j += 1
            lo, hi = (slots[i], slots[j]) if step == 1 else (slots[j], slots[i])
            start = offsets[lo]
            end = offsets[hi + 1] if hi + 1 < count else size
            buf = os.pread(fd, end - start, start)
            run = decode_run(buf, positions, lo, hi - lo + 1, where)
            out.extend(run if step == 1 else reversed(run))
            i = j + 1
        return out

    def _candidates(self, index: SegmentIndex, query: Query, a: int, b: int) -> Iterator[int]:
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

    def _snapshot(self) -> tuple[list[int], MemIndex | None, int, int, int]:
        """Segments, the active index with its count and size, and the head, as of now
        (the active index keeps growing; its count and size say what to read)."""
        with self._lock:
            self._refresh()
            active = self._active
            return (
                list(self._segments),
                active,
                active.count if active else 0,
                active.size if active else 0,
                self._head.position,
            )

    def _read(self, query: Query, limit: int) -> list[RecordedEvent]:
        segments, active, active_count, active_size, head = self._snapshot()
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
        with io_errors("reading the store"):
            for k in order:
                first = segments[k]
                nxt = segments[k + 1] if k + 1 < len(segments) else head + 1
                if nxt <= lo or first >= hi:  # (names are lower bounds of positions)
                    continue
                if k == len(segments) - 1 and active is not None:
                    index: SegmentIndex = active
                    count, size = active_count, active_size
                    with self._lock:
                        fd = self._fd(first)
                else:
                    with self._lock:
                        if first not in self._segments:
                            continue  # retention removed it since we looked
                        if not self._sealed_still_there(first):
                            continue  # ... in another process, after our refresh
                        index = self._index(first)
                        fd = self._fd(first)
                    count, size = index.count, index.size
                positions = index.positions
                a = bisect.bisect_left(positions, lo, 0, count)
                b = bisect.bisect_left(positions, hi, a, count)
                times = index.times
                if since is not None and a < b:
                    a = max(a, _bisect(times, since, a, b))
                if until is not None and a < b:
                    b = min(b, _bisect(times, until, a, b))
                if a >= b:
                    continue
                slots = self._candidates(index, query, a, b)
                while len(out) < limit:
                    want = limit - len(out)
                    chunk = _take(slots, min(4096, want) if exact else min(512, max(16, want)))
                    if not chunk:
                        break
                    records = self._read_slots(first, index, chunk, count, size, fd)
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

    # -- retention ------------------------------------------------------------------------

    def _retention_limit(self) -> int:
        # The active segment is never touched: retention works on sealed segments.
        with self._lock:
            self._refresh()
            if self._active is None:
                return 0
            return self._active.first - 1

    def _group_events(self, policy: Policy) -> dict[int, GroupEvents]:
        """Each group's events from the indexes alone (no segment is read)."""
        segments, active, active_count, active_size, _head = self._snapshot()
        memo: dict[tuple[str, str], int | None] = {}
        by_type: dict[str, int | None] = {}
        # Arrays, not lists: 8 bytes an event instead of ~36 (1M events: 24 MB, not 100).
        out: dict[int, tuple[array[int], array[int], array[int]]] = {}
        with io_errors("planning retention"):
            for first in segments:
                if active is not None and first == active.first:
                    index: SegmentIndex = active
                    count = active_count
                else:
                    with self._lock:
                        index = self._index(first)
                    count = index.count
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
                            gid = (
                                memo[key]
                                if key in memo
                                else memo.setdefault(key, policy.group_of(*key))
                            )
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
                size = active_size if index is active else index.size
                for gid, slots in slots_by_group.items():
                    slots.sort()
                    pos, tim, siz = out.setdefault(gid, (array("q"), array("q"), array("q")))
                    pos.extend([positions[s] for s in slots])
                    tim.extend([times[s] for s in slots])
                    siz.extend(
                        [(offsets[s + 1] if s + 1 < count else size) - offsets[s] for s in slots]
                    )
        return {gid: GroupEvents(p, t, z) for gid, (p, t, z) in out.items()}

    def _check_can_remove(self) -> None:
        self._refuse_write("apply retention")

    def _remove_runs(
        self,
        runs: list[Run],
        tails: dict[str, int],
        receipts: list[RecordedEvent],
        progress: ProgressCallback | None,
    ) -> None:
        """Delete or compact the sealed segments holding ``runs``, newest first."""
        self._refuse_write("apply retention")
        inside = RunIndex(runs)
        low = min(r.first for r in runs)
        high = max(r.last for r in runs)
        lock = WriterLock(self.path / "retention.lock", self._file_mode)
        lock.acquire()  # one retention run at a time, across processes
        swap_lock = WriterLock(self.path / "lock", self._file_mode)
        try:
            with self._lock:
                self._refresh()
                limit = self._active.first if self._active is not None else 0
                touched = []
                for k, first in enumerate(self._segments[:-1]):
                    nxt = self._segments[k + 1]
                    if first <= high and nxt > low and first < limit:
                        touched.append((first, self._index(first)))
            with io_errors("applying retention"):
                for stray in self._seg_dir.glob(".*.tmp-*"):  # a compaction that crashed
                    stray.unlink()
                state = RetentionState.load(self.path)
                for first, index in touched:
                    if first not in state.ends and index.count:
                        last = index.count - 1
                        assert index.last_hash is not None
                        state.ends[first] = SegmentEnd(
                            index.positions[last], index.last_hash, index.times[last]
                        )
                for name, rev in tails.items():
                    if state.stream_last.get(name, -1) < rev:
                        state.stream_last[name] = rev
                state.generation += 1
                state.save(self.path, self._file_mode)  # before any segment changes
                with self._lock:
                    self._retention = state
                    self._retention_stamp = self._state_stamp()
                    self._sealed_streams = None
                done = 0
                for first, index in reversed(touched):
                    goes = [inside(p) for p in index.positions]
                    n = sum(goes)
                    if not n:
                        continue
                    seg = self._seg_dir / f"{_name(first)}.jsonl"
                    idx = self._idx_dir / f"{_name(first)}.idx"
                    # Each swap happens under the writer flock (appends, which may load
                    # sealed indexes, wait) and our own lock (this process's readers
                    # see the old segment or the new one). The flock is taken on a
                    # descriptor of its own: flock() on the appenders' descriptor
                    # would succeed at once in this process, and its release would
                    # drop their lock.
                    if n == index.count:
                        with swap_lock.held(), self._lock:
                            self._segments.remove(first)
                            self._drop_sealed(first)
                            seg.unlink()
                            idx.unlink(missing_ok=True)
                            fsync_dir(self._seg_dir)
                    else:
                        assert isinstance(index, (MemIndex, DiskIndex))
                        tmp, kept, offsets, size, last_hash = compact_segment(
                            seg, index, goes, self._file_mode
                        )
                        new = MemIndex.compacted(index, kept, offsets, size, last_hash)
                        with swap_lock.held(), self._lock:
                            idx.unlink(missing_ok=True)  # the old one no longer fits
                            replace_with(tmp, seg)
                            self._drop_sealed(first)
                            self._indexes[first] = new
                        try:
                            new.write(idx, self._file_mode)
                        except OSError:  # derived data: rebuilt from the segment when needed
                            idx.unlink(missing_ok=True)
                    # Announce the change: other processes drop what they cached about
                    # sealed segments on their next read (the file's identity changed).
                    state.generation += 1
                    state.save(self.path, self._file_mode)
                    with self._lock:
                        self._retention = state
                        self._retention_stamp = self._state_stamp()
                    done += n
                    if progress is not None:
                        progress(done, None)
        finally:
            swap_lock.close()
            lock.close()

    def _drop_sealed(self, first: int) -> None:
        """Forget a sealed segment's index and descriptor (call with ``_lock`` held)."""
        old = self._indexes.pop(first, None)
        if isinstance(old, DiskIndex):
            old.close()
        fd = self._fds.pop(first, None)
        if fd is not None:
            self._retire_fd(fd)
        self._sealed_streams = None
        self._sealed_id_max = None

    # -- the rest --------------------------------------------------------------------------

    def stats(self) -> StoreStats:
        self._check_open()
        with self._lock:
            self._refresh()
            head = self._head.position
            size = 0
            events = 0
            first: int | None = None
            oldest = None
            with io_errors("reading the store"):
                for seg in self._segments:
                    size += os.fstat(self._fd(seg)).st_size
                    index = self._active if seg == self._segments[-1] else self._index(seg)
                    assert index is not None
                    if index.count and first is None:
                        first = index.positions[0]
                        oldest = from_us(index.times[0])
                    events += index.count
            return StoreStats(
                backend=self.backend_name,
                events=events,
                head_position=head,
                first_position=first,
                streams=None,
                oldest_recorded_at=oldest,
                newest_recorded_at=self._head.recorded_at,
                size_bytes=size,
                details={
                    "path": str(self.path),
                    "segments": len(self._segments),
                    "fsync": self.fsync,
                    "segment_max_bytes": self.segment_max_bytes,
                    "recovered": list(self._recovered),
                    "retention_generation": self._retention.generation,
                    "ignored_files": list(self._stray),
                    **(
                        {"read_only": True, "unrecovered": self._unrecovered}
                        if self.read_only
                        else {}
                    ),
                },
            )

    def _wait(self, head: int, timeout: float) -> None:
        # Other processes do not notify us: poll the files while waiting.
        remaining = timeout
        step = 0.05
        while remaining > 0 and not self._closed:
            with self._appended:
                self._refresh()
                if self._head.position > head:
                    return
                self._appended.wait(min(step, remaining))
                if self._head.position > head:
                    return
            remaining -= step

    def _close(self) -> None:
        self._group.drain()
        self._index_writer.shutdown(wait=True)
        with self._lock:
            self._appended.notify_all()
            active = self._active
            if active is not None and active.count >= 1000 and not self.read_only:
                # A checkpoint of the active segment's index makes the next open fast.
                with contextlib.suppress(OSError):
                    active.write(self._idx_dir / f"{_name(active.first)}.idx", self._file_mode)
            for fd in self._fds.values():
                with contextlib.suppress(OSError):
                    if self.fsync != "never" and not self.read_only:
                        os.fdatasync(fd)
                    os.close(fd)
            self._fds.clear()
            for _, fd in self._retired_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._retired_fds.clear()
            for index in self._indexes.values():
                if isinstance(index, DiskIndex):
                    index.close()
            self._indexes.clear()
            if self._writer_lock is not None:
                self._writer_lock.close()


def _writable(path: Path) -> bool:
    """Whether a writer could work here: the directory, ``segments/``, the lock file
    and the active segment, where they exist, are writable by us (``os.access``
    answers for read-only mounts, and for root without CAP_DAC_OVERRIDE)."""
    if not path.exists():
        return True  # (to be created: whether that works is for the opening to find)
    seg_dir = path / "segments"
    candidates = [path, seg_dir, path / "lock"]
    if seg_dir.is_dir():
        names = sorted(n for n in os.listdir(seg_dir) if _SEGMENT.fullmatch(n))
        candidates += [seg_dir / names[-1]] if names else []
    return all(os.access(p, os.W_OK) for p in candidates if p.exists())


def _bisect(times: Any, value: int, lo: int, hi: int) -> int:
    return bisect.bisect_left(times, value, lo, hi)


def _take(it: Iterator[int], n: int) -> list[int]:
    out = []
    for x in it:
        out.append(x)
        if len(out) >= n:
            break
    return out


assert set(FIELDS) == {f for _, f in _QUERY_FIELDS}
