"""The file backend: JSONL segments + derived indexes; the embedded default.

Layout of a store directory::

    eventvault.json                    store metadata (id, format version)
    lock                               writers hold an exclusive flock on it
    segments/00000000000000000001.jsonl
    segments/00000000000000131073.jsonl   named by first position, zero-padded
    index/00000000000000000001.idx     derived, rebuildable (sealed segments only)
    retention.json                     what retention removal must not lose (see compaction.py)
    tree.json, tree.hashes             the Merkle tree (derived; see tree.py)
    checkpoints/                       signed checkpoints kept (see tree.py)

This module holds :class:`FileBackend` (the :mod:`eventvault.spi` contract) and
:class:`FileEventStore`, the store over it; the parts live beside it:

* :mod:`.segment` — one segment: file, descriptor, identity, index;
* :mod:`.segments` — the ordered set of them and how a process's view of it stays
  true to the disk while other processes append, roll and apply retention;
* :mod:`.writing` — group commit under the writer flock (several processes may
  append at once; positions stay unique and contiguous);
* :mod:`.reading` — queries, which never take the flock;
* :mod:`.recovery` — indexing committed records, cutting what a crash left;
* :mod:`.removal` — retention;
* :mod:`.tree` — the Merkle tree (:class:`~eventvault.spi.Proving`);
* :mod:`.readonly` — when a store opens read-only, and what it reports then.

Read-only (``read_only=True``, or detected: the directory, ``segments/``, the lock
file or the active segment cannot be written — a backup, a read-only mount,
another user's store): no lock file, no directory, no recovery, no index file is
written, and neither the creation's directory flock nor the writer flock is
taken; segments are opened ``O_RDONLY``. A directory without ``eventvault.json``
is an error (no store is made). A torn tail a writer would cut is left in place
(readers never read past the last commit marker anyway) and reported in
:attr:`FileEventStore.notices` and ``stats().details["unrecovered"]``. Every write
(append, import, reindex, retention) raises :class:`ReadOnlyStoreError`.

Durability: ``fsync="always"`` (default) returns from ``append`` only after
``fdatasync``; ``"interval"`` syncs in the background every ``fsync_interval``;
``"never"`` leaves it to the OS. In-process readers see an event only after it
is durable; readers in *other* processes may see a committed batch while its
fsync is still running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec

from ...errors import (
    ReadOnlyStoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from ...groupcommit import Request
from ...integrity.chain import CHAIN, HASH_FORMATS, LEAF
from ...model import (
    ExpectedRevision,
    Import,
    NewEvent,
    Query,
    RecordedEvent,
    StoreStats,
    VerifyResult,
)
from ...retention import Policy
from ...runs.listing import RunKey
from ...runs.model import RunSummary
from ...runs.outcomes import Outcomes
from ...spi import (
    DEFAULT_MAX_EVENT_BYTES,
    Backend,
    GroupEvents,
    Importing,
    ProgressCallback,
    Proving,
    Retaining,
    Run,
    TreeState,
)
from ...store import EventStore
from . import readonly, removal
from .fsio import atomic_write, backend_errors, dir_lock, fsync_dir
from .index import from_us
from .reading import ReadPath
from .runindex import FileRunIndex
from .segments import SegmentSet
from .shared import Shared
from .tree import StoreTree
from .writing import Fsync, WritePath

if TYPE_CHECKING:
    from ...tlog.checkpoint import Checkpoint

__all__ = ["FileBackend", "FileEventStore"]

log = logging.getLogger("eventvault.file")

FORMAT = "eventvault-file"
#: 1: hash-chained events (stores made before hash format 2); 2: each event's hash
#: is its Merkle-tree leaf hash (see eventvault.integrity.chain). The version *is* the
#: hash format, so an eventvault that knows only v1 refuses a v2 store instead of
#: reporting every event's hash as broken.
FORMAT_VERSION = 2
_META = "eventvault.json"
# What a store directory holds before its metadata is written (a creation that
# died half-way may have left them; creating again under the lock is safe).
_SKELETON = {"segments", "index", "lock"}


class _Meta(msgspec.Struct):
    format: str
    version: int
    store_id: str
    created_at: datetime


class FileBackend(Backend, Importing, Retaining, Proving):
    """Events in JSONL segment files under one directory. Thread- and process-safe."""

    name = "file"

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
        hash_format: int | None = None,
    ) -> None:
        """``read_only``: True opens for reading only; None (the default) does so
        when the store's files cannot be written (:func:`.readonly.writable`);
        False insists on writing. ``hash_format``: for a store this call creates,
        1 (the hash chain of older stores) or 2 (leaf hashes, the default); for
        an existing store, what it must be (None: whatever it is)."""
        if hash_format is not None and hash_format not in HASH_FORMATS:
            raise ValidationError(f"hash_format must be 1 or 2, got {hash_format!r}")
        self.hash_format = LEAF if hash_format is None else hash_format
        self.max_event_bytes = max_event_bytes
        self._closed = False
        if fsync not in ("always", "interval", "never"):
            raise ValidationError(f"fsync must be always, interval or never, got {fsync!r}")
        self.path = Path(path)
        if not create and not (self.path / _META).is_file():
            # (before anything below can make a directory or a lock file)
            raise StoreNotFoundError(
                f"no store at {self.path} (create one with 'eventvault init', or point "
                "store.file.path / --config at an existing store)"
            )
        self._asked_read_only = read_only is True
        self.read_only = read_only if read_only is not None else not readonly.writable(self.path)
        #: What a person should know about how the store was opened (e.g. a torn
        #: tail that could not be cut because the store is read-only).
        self.notices: list[str] = []
        self._unrecovered: dict[str, Any] | None = None
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self._file_mode = file_mode
        self._dir_mode = dir_mode
        with backend_errors(f"opening the store at {self.path}"):
            self._store_id = self._open_dir(hash_format)
            segs = SegmentSet(
                self.path, file_mode=file_mode, read_only=self.read_only, hashes=self.hash_format
            )
            self._s = Shared(self.path, segs, file_mode)
            self._reads = ReadPath(self._s)
            self._runs = FileRunIndex(self._s, self._reads)
            self._tree = StoreTree(
                self.path, file_mode=file_mode, dir_mode=dir_mode, read_only=self.read_only
            )
            # Read-only there is no write path at all: no lock file, no fsync thread.
            self._writes: WritePath | None = None
            if self.read_only:
                self._report_read_only()
            else:
                self._writes = WritePath(
                    self._s,
                    self._reads,
                    self._tree,
                    fsync=fsync,
                    fsync_interval=fsync_interval,
                    segment_max_bytes=segment_max_bytes,
                    max_event_bytes=max_event_bytes,
                    hashes=self.hash_format,
                )
                self._writes.recover()
                self.notices.extend(self._tree.notices)

    # -- opening ---------------------------------------------------------------------

    def _open_dir(self, asked: int | None) -> str:
        """Open the store here, creating it if the directory is new or empty.

        Creation holds an ``flock`` on the directory and writes the metadata last
        (atomically), so processes opening a new store at the same moment agree on
        one store id, and a reader never sees a half-made store."""
        if self.path.exists() and not self.path.is_dir():
            raise StoreUnavailableError(f"{self.path} exists and is not a directory")
        meta_path = self.path / _META
        if not meta_path.exists():
            if self.read_only:  # (nothing is made: no directory, no directory flock)
                raise ReadOnlyStoreError(f"no store at {self.path} (and, read-only, none is made)")
            self.path.mkdir(mode=self._dir_mode, parents=True, exist_ok=True)
            with dir_lock(self.path):
                if not meta_path.exists():
                    return self._create(meta_path)
        try:
            meta = msgspec.json.decode(meta_path.read_bytes(), type=_Meta)
        except msgspec.DecodeError as exc:
            raise StoreUnavailableError(f"{meta_path} is damaged: {exc}") from None
        if meta.format != FORMAT or meta.version > FORMAT_VERSION:
            raise StoreUnavailableError(
                f"{meta_path}: format {meta.format} v{meta.version} is not supported by this "
                f"version of eventvault (it reads {FORMAT} v{FORMAT_VERSION})"
            )
        self.hash_format = LEAF if meta.version >= 2 else CHAIN
        if asked is not None and asked != self.hash_format:
            raise ValidationError(
                f"{self.path} keeps hash format {self.hash_format}, not {asked}: the format "
                "is fixed when a store is made ('eventvault copy' into a new store converts)"
            )
        if not self.read_only:
            for sub in ("segments", "index"):
                (self.path / sub).mkdir(mode=self._dir_mode, exist_ok=True)
        return meta.store_id

    def _create(self, meta_path: Path) -> str:
        """Make a new store (call holding the directory lock)."""
        for entry in os.scandir(self.path):
            if entry.name.startswith("."):
                continue
            leftover = entry.name in _SKELETON and (
                not entry.is_dir() or not any(os.scandir(entry.path))
            )
            if not leftover:
                raise StoreUnavailableError(
                    f"{self.path} is not empty and has no {_META}: not an eventvault "
                    "store (choose an empty or new directory)"
                )
        for sub in ("segments", "index"):
            (self.path / sub).mkdir(mode=self._dir_mode, exist_ok=True)
        version = 2 if self.hash_format == LEAF else 1
        meta = _Meta(FORMAT, version, str(uuid.uuid4()), datetime.now(UTC))
        atomic_write(meta_path, msgspec.json.encode(meta), self._file_mode)
        fsync_dir(self.path.parent)
        return meta.store_id

    def _why_read_only(self) -> str:
        return "as asked" if self._asked_read_only else "its files cannot be written"

    def _report_read_only(self) -> None:
        """Say how the store was opened, and what a writer would have recovered."""
        self.notices.append(f"{self.path}: opened read-only ({self._why_read_only()})")
        torn = readonly.torn_tail(self._s.segs)
        if torn is None:
            return
        self._unrecovered = torn
        message = (
            f"{self._s.segs.seg_dir / torn['segment']}: {torn['torn_bytes']} bytes of an "
            f"uncommitted (torn) write after position {self._s.segs.head.position}; a writer "
            "would cut them, but the store is read-only, so they were not cut (readers "
            "ignore them; nothing acknowledged is lost)"
        )
        self.notices.append(message)
        log.warning("%s", message)

    def _writer(self, what: str) -> WritePath:
        """The write path, or :class:`ReadOnlyStoreError` saying ``what`` cannot be done."""
        if self._writes is None:
            raise ReadOnlyStoreError(
                f"cannot {what}: the store at {self.path} is read-only ({self._why_read_only()})"
            )
        return self._writes

    # -- the backend contract ------------------------------------------------------------

    @property
    def store_id(self) -> str:
        return self._store_id

    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        return self._writer("append").group.submit(batch, expected)

    def import_records(self, imp: Import) -> list[RecordedEvent]:
        writes = self._writer("import events")
        return writes.group.submit_request(Request([], ExpectedRevision.ANY, imported=imp))

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        with backend_errors("reading the store"):
            return self._reads.read(query, limit)

    # -- runs (eventvault.runs.RunIndex: see .runindex) ------------------------------------

    def newest_runs(
        self, query: Query, *, head: int, before: int | None, limit: int
    ) -> list[RunKey] | None:
        with backend_errors("listing runs"):
            return self._runs.newest_runs(query, head=head, before=before, limit=limit)

    def run_summaries(
        self, correlation_ids: Sequence[str], *, head: int, outcomes: Outcomes
    ) -> dict[str, RunSummary]:
        with backend_errors("listing runs"):
            return self._runs.run_summaries(correlation_ids, head=head, outcomes=outcomes)

    def get(self, event_id: UUID) -> RecordedEvent | None:
        with backend_errors("reading the store"):
            return self._reads.get(event_id)

    def head(self) -> int:
        with backend_errors("reading the store"), self._s.lock:
            if not self._closed:
                self._s.refresh()
            return self._s.segs.head.position

    def stats(self) -> StoreStats:
        with backend_errors("reading the store"), self._s.lock:
            self._s.refresh()
            segs = self._s.segs
            size = 0
            events = 0
            first: int | None = None
            oldest = None
            for seg in segs.segments:
                size += seg.length()
                index = segs.index_of(seg)
                if index.count and first is None:
                    first = index.positions[0]
                    oldest = from_us(index.times[0])
                events += index.count
            return StoreStats(
                backend=self.name,
                events=events,
                head_position=segs.head.position,
                first_position=first,
                streams=None,
                oldest_recorded_at=oldest,
                newest_recorded_at=segs.head.recorded_at,
                size_bytes=size,
                details={
                    "path": str(self.path),
                    "segments": len(segs.segments),
                    "fsync": self.fsync,
                    "segment_max_bytes": self.segment_max_bytes,
                    "recovered": list(segs.recovered),
                    "retention_generation": segs.retention.generation,
                    "ignored_files": list(segs.stray),
                    "tree": self._tree_details(),
                    **(
                        {"read_only": True, "unrecovered": self._unrecovered}
                        if self.read_only
                        else {}
                    ),
                },
            )

    def wait(self, head: int, timeout: float) -> None:
        # Other processes do not notify us: poll the files while waiting.
        remaining = timeout
        step = 0.05
        with backend_errors("waiting for new events"):
            while remaining > 0 and not self._closed:
                with self._s.appended:
                    self._s.refresh()
                    if self._s.segs.head.position > head:
                        return
                    self._s.appended.wait(min(step, remaining))
                    if self._s.segs.head.position > head:
                        return
                remaining -= step

    def reindex(self) -> int:
        """Rebuild every sealed segment's index from its segment; returns how many."""
        self._writer("rebuild the indexes").flush_index_writes()
        with backend_errors("rebuilding the indexes"), self._s.lock:
            self._s.refresh()
            sealed = self._s.segs.sealed()
            for seg in sealed:
                seg.idx_path.unlink(missing_ok=True)
                # The old index is dropped, not closed: a read may still be using it
                # (a mapped index is unmapped when the last reference goes).
                seg.index = None
                seg.sealed_index(self._file_mode)
            self._s.segs.forget_caches()
            return len(sealed)

    def checked(self, verify: Callable[[], VerifyResult]) -> VerifyResult:
        """The result of ``verify`` (the façade's chain walk over this backend), with
        every batch's checksum checked as it reads: the first position where either
        fails is reported."""
        with backend_errors("verifying the store"):
            with self._reads.collecting() as damaged:
                result = verify()
            if not damaged:
                return result
            bad = min(damaged, key=lambda e: e.position)
            # The chain pinpoints changed content; a failing checksum it did not
            # notice (damage the hashes do not cover) is reported by itself.
            if result.first_bad_position is not None and result.first_bad_position <= bad.last:
                return result
            return VerifyResult(
                ok=False,
                checked=self._reads.count_before(bad.position),
                head_hash=None,
                first_bad_position=bad.position,
                reason=str(bad),
                checkpoint_position=result.checkpoint_position,
                receipts=result.receipts,
            )

    # -- retention ------------------------------------------------------------------------

    def retention_limit(self) -> int:
        with backend_errors("planning retention"):
            return removal.retention_limit(self._s)

    def group_events(self, policy: Policy) -> dict[int, GroupEvents]:
        with backend_errors("planning retention"):
            return removal.group_events(self._s, policy)

    def check_can_remove(self) -> None:
        self._writer("apply retention")  # (before the façade appends a receipt)

    def remove_runs(
        self,
        runs: list[Run],
        tails: dict[str, int],
        receipts: list[RecordedEvent],
        progress: ProgressCallback | None,
    ) -> None:
        writes = self._writer("apply retention")
        with backend_errors("applying retention"):
            writes.sync_tree_for_removal()  # (the leaves of what goes, durably first)
            removal.remove_runs(self._s, runs, tails, receipts, progress)

    # -- the Merkle tree ----------------------------------------------------------------------

    def tree_state(self) -> TreeState:
        with backend_errors("reading the Merkle tree"), self._s.lock:
            if not self._s.writing:
                self._s.refresh()
            state = self._tree.state(self._s.segs)
            if self._unrecovered is not None and state.size:
                # Read-only over a torn tail a writer would cut — leaves and all (see
                # tree.py): the tree ends where the events a writer keeps end.
                head = self._s.segs.head.position
                return TreeState(min(state.size, max(0, head - state.base)), state.base)
            return state

    def _tree_details(self) -> dict[str, Any]:
        state = self.tree_state()
        return {
            "size": state.size,
            "base": state.base,
            "behind": self._s.segs.head.position - state.base - state.size,
            **({"refused": self._tree.refused} if self._tree.refused else {}),
        }

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        with backend_errors("reading the Merkle tree"):
            return self._tree.read_hashes(indexes)

    def save_checkpoint(self, size: int, note: str) -> None:
        self._writer("keep a checkpoint")
        with backend_errors("keeping a checkpoint"):
            self._tree.save_checkpoint(size, note)

    def latest_checkpoint(self) -> str | None:
        with backend_errors("reading the latest checkpoint"):
            return self._tree.latest_checkpoint()

    def build_tree(self, progress: ProgressCallback | None = None) -> int:
        """Build the Merkle tree of a store made before it (or finish a build that
        was stopped; it resumes where ``tree.hashes`` ends); returns the leaves added
        (0 when it is complete). A writer's open does this by itself."""
        writes = self._writer("build the Merkle tree")
        with backend_errors("building the Merkle tree"):
            return writes.build_tree(progress)

    def close(self) -> None:
        self._closed = True
        if self._writes is not None:
            self._writes.close()
        with self._s.lock:
            self._s.appended.notify_all()
            index = self._s.segs.active_index()
            seg = self._s.segs.active
            if not self.read_only and seg is not None and index is not None and index.count >= 1000:
                # A checkpoint of the active segment's index makes the next open fast —
                # if our view of it is still true (another process may have sealed
                # it, and retention rewritten it, since our last call).
                with contextlib.suppress(OSError):
                    if seg.on_disk() and seg.length() == index.size:
                        index.write(seg.idx_path, self._file_mode)
            self._s.segs.close()
            self._tree.close(sync=not self.read_only and self.fsync != "never")


class FileEventStore(EventStore):
    """An :class:`~eventvault.EventStore` over a :class:`FileBackend` at ``path``
    (arguments: those of :class:`FileBackend`)."""

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
        hash_format: int | None = None,
    ) -> None:
        super().__init__(
            FileBackend(
                path,
                create=create,
                fsync=fsync,
                fsync_interval=fsync_interval,
                segment_max_bytes=segment_max_bytes,
                file_mode=file_mode,
                dir_mode=dir_mode,
                max_event_bytes=max_event_bytes,
                read_only=read_only,
                hash_format=hash_format,
            )
        )

    @property
    def backend(self) -> FileBackend:
        backend = self._backend
        assert isinstance(backend, FileBackend)
        return backend

    @property
    def path(self) -> Path:
        """The store's directory."""
        return self.backend.path

    @property
    def read_only(self) -> bool:
        """Whether the store was opened for reading only (see the module docstring)."""
        return self.backend.read_only

    @property
    def notices(self) -> list[str]:
        """What a person should know about how the store was opened."""
        return self.backend.notices

    @property
    def fsync(self) -> Fsync:
        return self.backend.fsync

    @property
    def segment_max_bytes(self) -> int:
        return self.backend.segment_max_bytes

    def reindex(self) -> int:
        """Rebuild every sealed segment's index from its segment; returns how many."""
        self._check_open()
        return self.backend.reindex()

    def verify(
        self,
        *,
        progress: ProgressCallback | None = None,
        checkpoints: Sequence[Checkpoint] = (),
    ) -> VerifyResult:
        """The chain walk of every backend, plus every batch's checksum: the first
        position where either fails is reported."""
        self._check_open()
        return self.backend.checked(
            lambda: EventStore.verify(self, progress=progress, checkpoints=checkpoints)
        )
