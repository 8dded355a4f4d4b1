"""The file store's Merkle tree (RFC 9162): ``tree.hashes`` beside the segments.

Files::

    tree.json                  {"version": 1, "base": N}: leaf i = the event at
                               position N+1+i (written atomically, before the tree)
    tree.hashes                the tree's stored hashes (:class:`~eventvault.tlog.FileHashStore`)
    checkpoints/checkpoints.log  every signed checkpoint kept, one JSON line each
    checkpoints/latest         the latest one's note (atomically replaced)

**Derived data, written after the events.** A writer appends a group's leaf hashes
(and the interior nodes they complete) after the group's events are written — and
fdatasynced under ``fsync="always"`` — still holding the writer flock. The tree
file is *not* fsynced per append: every hash follows from the events, so a tree
that a crash left behind is caught up from them (it is fsynced when a segment
rolls, on close, by the interval syncer and before retention removes events —
the only moment its leaves stop being recomputable). Under the flock, before
every write and on a writer's open, :meth:`StoreTree.catch_up` re-reads the
tree's size (another process may have appended) and appends the leaves of the
events it lacks, read back from the segments.

**A tree ahead of its events** (more leaves than events up to the head) means
events the tree saw are gone. Under ``fsync="always"`` no crash can do that (the
events were durable before their leaves were written), so it is evidence —
somebody cut the newest events, or this is another store's tree — and it is kept:
the store opens, reads and ``verify`` work (verify names the removed positions),
but appends are refused with a :class:`~eventvault.errors.CorruptionError`. A
writer opened with ``fsync="never"`` or ``"interval"``, where a crash *can* lose
events whose leaves' page reached the disk, cuts the tree back with a warning,
keeping the cut hashes in ``tree.cut-<size>.hashes``. So does a writer whose
recovery has just cut *torn* batches at the head (:mod:`.records`: a commit marker
on disk, pages before it not): recovery judged those events unacknowledged, and
the tree follows that judgement — loudly, keeping the cut leaves. (Under
``fsync="always"`` their leaves can only exist if the batch *was* acknowledged,
i.e. the "torn" batch is later damage; the kept hashes and any signed checkpoint
still show it.)

**The tail check on open.** An unsynced tail can be garbage after a power loss
(zeros, typically). A writer opening the store recomputes the last few leaves
from their events: where they disagree and the stored tail is garbage (a zero
hash, or nodes that do not follow from the stored leaves) the tree is cut back
to the first bad leaf and rebuilt. A tail that is a *consistent* tree of other
leaves is evidence the events were changed: it is left alone and reported (log,
:attr:`StoreTree.notices`; ``verify`` names the position).

**Stores made before the tree** are upgraded in place (:meth:`StoreTree.catch_up`
with a progress callback: ``build_tree``): leaves are appended from the events, and
as the file is append-only a killed build resumes where the file ends. If
retention removed events before the tree existed, their leaves can no longer be
computed: the tree then starts after the last hole — ``base`` is the position just
before the contiguous run of events that ends at the head — and the events before
``base`` are covered by the hash chain only. Read-only opens never write the tree
(nor ``tree.json``): they report what is there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from ...errors import CorruptionError, EventVaultError, ReadOnlyStoreError, StoreUnavailableError
from ...integrity.chain import event_leaf_hash
from ...model import RecordedEvent
from ...spi import ProgressCallback, TreeState
from ...tlog.filestore import FileHashStore
from ...tlog.layout import leaf_count, stored_hash_count, stored_hash_index
from ...tlog.storage import MemoryHashStore
from ...tlog.tree import MerkleTree
from .fsio import WriterLock, atomic_write, fsync_dir
from .segments import SegmentSet

__all__ = ["ReadRange", "StoreTree", "derive_base"]

log = logging.getLogger("eventvault.file")

TREE_FILE = "tree.hashes"
META_FILE = "tree.json"
CHECKPOINT_DIR = "checkpoints"
#: Leaves recomputed from their events when a writer opens the store.
TAIL_CHECK = 16
_READ_BATCH = 4096
_ZERO = bytes(32)

#: Events after position ``after``, in order, at most ``limit`` (the store's reads).
ReadRange = Callable[[int, int], list[RecordedEvent]]


class TreeMeta(msgspec.Struct):
    version: int = 1
    base: int = 0


def derive_base(segs: SegmentSet) -> int:
    """The position before the contiguous run of events that ends at the head (0 for
    a store retention never took events from): where a tree built now can begin."""
    base = 0
    expect = 1
    for seg in segs.segments:
        index = segs.index_of(seg)
        count = index.count
        if not count:
            continue
        positions = index.positions
        if positions[0] != expect:
            base = positions[0] - 1
        if positions[count - 1] - positions[0] + 1 != count:  # a hole inside (compacted)
            for k in range(count - 1, 0, -1):
                if positions[k] != positions[k - 1] + 1:
                    base = max(base, positions[k] - 1)
                    break
        expect = positions[count - 1] + 1
    return base


class _Regenerating:
    """A hash store that starts as the first ``count`` hashes of ``real`` and keeps
    what is appended in memory (to recompute a tree's tail without touching it)."""

    def __init__(self, real: MemoryHashStore | FileHashStore, count: int) -> None:
        self.real = real
        self.hash_count = count
        self.out: list[bytes] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return self.real.read_hashes(indexes)

    def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
        self.out.extend(hashes)
        self.hash_count = start + len(hashes)


class StoreTree:
    """The tree of one store object (call everything holding the store's lock;
    :meth:`catch_up` and :meth:`append` also holding the writer flock)."""

    def __init__(self, root: Path, *, file_mode: int, dir_mode: int, read_only: bool) -> None:
        self.root = root
        self.path = root / TREE_FILE
        self.meta_path = root / META_FILE
        self.cp_dir = root / CHECKPOINT_DIR
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self.read_only = read_only
        #: What a person should know (the tail check's findings, a cut tree).
        self.notices: list[str] = []
        #: Why appends are refused (the tree is ahead of the events), if they are.
        self.refused: str | None = None
        self.meta = self._load_meta()
        self._store: FileHashStore | MemoryHashStore = MemoryHashStore()
        self._tree = MerkleTree(self._store)
        self._key: tuple[int, ...] | None = None
        self._derived_base: int | None = None
        self._reopen()

    # -- the files ------------------------------------------------------------------------

    def _load_meta(self) -> TreeMeta | None:
        try:
            raw = self.meta_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return msgspec.json.decode(raw, type=TreeMeta)
        except msgspec.DecodeError as exc:
            raise StoreUnavailableError(f"{self.meta_path} is damaged: {exc}") from None

    def _stat(self) -> tuple[int, ...] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns

    def _reopen(self) -> None:
        """(Re)open ``tree.hashes`` as it is on disk now."""
        old = self._store
        if self.meta is None:
            self.meta = self._load_meta()  # (a reader: a writer may have started the tree)
        key = self._stat()
        if key is None and self.read_only:
            self._store = MemoryHashStore()  # no tree yet: size 0, nothing written
        elif key is not None or self.meta is not None:
            self._store = FileHashStore(
                self.path, file_mode=self.file_mode, readonly=self.read_only, buffer_bytes=1 << 30
            )
            key = self._stat()
        self._tree = MerkleTree(self._store)
        if self._tree.repaired_hashes:
            log.warning(
                "%s: cut %d hashes of a leaf only partly written",
                self.path,
                self._tree.repaired_hashes,
            )
        self._key = key
        if isinstance(old, FileHashStore) and old is not self._store:
            with contextlib.suppress(EventVaultError):
                old.close()

    def refresh(self) -> None:
        """Catch up with what other processes wrote (one ``stat`` if nothing changed)."""
        key = self._stat()
        if key == self._key:
            return
        if key is None or self._key is None or key[:2] != self._key[:2]:
            self._reopen()  # made, deleted or replaced meanwhile
            return
        self._tree.refresh()
        self._key = key

    @property
    def base(self) -> int:
        if self.meta is not None:
            return self.meta.base
        return self._derived_base or 0

    @property
    def size(self) -> int:
        """Leaves whose events are durable (a group's are added after its events)."""
        return self._tree.size

    def state(self, segs: SegmentSet) -> TreeState:
        self.refresh()
        if self.meta is None and self._derived_base is None:
            self._derived_base = derive_base(segs)  # (read-only, before any tree)
        return TreeState(self.size, self.base)

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return self._store.read_hashes(indexes)

    # -- writing (writer flock held) ----------------------------------------------------

    def append(self, leaves: Sequence[bytes]) -> None:
        """Add a written group's leaves (see the module docstring: no fsync here). A
        failure is logged, not raised — the events are committed; the next
        :meth:`catch_up` recomputes what is missing. (Computing the hashes in a helper
        thread during the events' fdatasync was tried: once each event's hash is its
        leaf, the ~0.6 µs of node hashing a leaf no longer paid for the thread.)"""
        if not leaves or self.refused is not None or self.meta is None:
            return
        try:
            self._tree.append_leaf_hashes(leaves)
            self._store_flush()
            self._key = self._stat()
        except (OSError, EventVaultError) as exc:
            log.warning("%s: could not append to the tree (caught up later): %s", self.path, exc)
            self._key = None
            with contextlib.suppress(OSError, EventVaultError):
                self._reopen()

    def _store_flush(self) -> None:
        if isinstance(self._store, FileHashStore):
            self._store.flush()

    def sync(self) -> None:
        if isinstance(self._store, FileHashStore) and not self.read_only:
            with contextlib.suppress(EventVaultError):
                self._store.sync()

    def close(self, *, sync: bool) -> None:
        store = self._store
        if isinstance(store, FileHashStore):
            with contextlib.suppress(EventVaultError):
                if sync and not self.read_only:
                    store.close()  # (syncs)
                else:
                    store.flush()
                    store.fsync = False
                    store.close()

    def _start(self, segs: SegmentSet) -> None:
        """Give a store without a tree its ``tree.json`` (base after the last hole)."""
        base = derive_base(segs)
        self.meta = TreeMeta(base=base)
        atomic_write(self.meta_path, msgspec.json.encode(self.meta), self.file_mode)
        head = segs.head.position
        log.info("%s: starting the Merkle tree after position %d (head %d)", self.path, base, head)
        self._reopen()

    def catch_up(
        self,
        segs: SegmentSet,
        read: ReadRange,
        *,
        may_cut: bool,
        progress: ProgressCallback | None = None,
        check_tail: bool = False,
    ) -> int:
        """Bring the tree level with the events (see the module docstring); returns
        how many leaves were added. Raises :class:`CorruptionError` while the tree is
        ahead of the events and ``may_cut`` is false, and when events the tree lacks
        are gone."""
        if self.read_only:
            raise ReadOnlyStoreError(f"cannot build the tree at {self.path}: read-only")
        if self.meta is None:
            self._start(segs)
        self.refresh()  # (a deleted tree.hashes is made again, and rebuilt below)
        head = segs.head.position
        want = head - self.base
        if check_tail:
            self._check_tail(read, want)
        size = self._tree.size
        if size > want:
            self._ahead(size, want, head, may_cut=may_cut)
            return 0
        self.refused = None
        if size == want:
            return 0
        return self._fill(read, size, want, progress)

    def _fill(
        self, read: ReadRange, size: int, want: int, progress: ProgressCallback | None
    ) -> int:
        added = 0
        total = want - size
        if progress is not None:
            progress(0, total)
        while size < want:
            after = self.base + size
            events = read(after, min(_READ_BATCH, want - size))
            leaves = []
            for k, ev in enumerate(events):
                if ev.position != after + 1 + k:
                    break
                leaves.append(event_leaf_hash(ev))
            if not leaves:
                gone = events[0].position - 1 if events else self.base + want
                raise CorruptionError(
                    f"{self.path}: the tree lacks the leaves of positions {after + 1}.."
                    f"{self.base + want}, but the events at positions {after + 1}..{gone} "
                    "are gone, so their leaves cannot be recomputed (restore tree.hashes "
                    f"from a backup, or remove both it and {META_FILE} to start a new tree "
                    "after the last gap — checkpoints signed before then will not verify)"
                )
            self._tree.append_leaf_hashes(leaves)
            self._store_flush()
            size += len(leaves)
            added += len(leaves)
            if progress is not None:
                progress(added, total)
        self._key = self._stat()
        return added

    def _ahead(self, size: int, want: int, head: int, *, may_cut: bool) -> None:
        what = (
            f"{self.path}: the Merkle tree has {size} leaves (up to position "
            f"{self.base + size}) but the store's events end at position {head}: the "
            f"leaves of positions {head + 1}..{self.base + size} have no event"
        )
        if not may_cut:
            self.refused = (
                f"{what}. With fsync='always' no crash does that: the newest events were "
                "removed (or the tree is another store's). Appends are refused; 'verify' "
                "names the positions. If those events were lost in a crash of a writer "
                "running with fsync='never' or 'interval', open the store once with that "
                "setting to cut the tree back (the cut hashes are kept beside it)"
            )
            if self.refused not in self.notices:
                self.notices.append(self.refused)
                log.error("%s", self.refused)
            raise CorruptionError(self.refused)
        keep = stored_hash_count(want)
        cut = self._store.read_hashes(range(keep, self._store.hash_count))
        atomic_write(self.root / f"tree.cut-{size}.hashes", b"".join(cut), self.file_mode)
        self._tree.truncate(want)
        self._key = self._stat()
        message = (
            f"{what} (lost in a crash, or cut as torn by recovery): the tree was cut "
            f"back to {want} leaves; the cut hashes are in tree.cut-{size}.hashes"
        )
        self.notices.append(message)
        log.warning("%s", message)
        self.refused = None

    def _check_tail(self, read: ReadRange, want: int) -> None:
        """Recompute the last few leaves (and the nodes they complete) from their
        events; cut a garbage tail, report a consistent one that disagrees."""
        upto = min(self._tree.size, want)
        first = max(0, upto - TAIL_CHECK)
        if upto <= first:
            return
        events = read(self.base + first, upto - first)
        if [e.position for e in events] != list(range(self.base + first + 1, self.base + upto + 1)):
            return  # events gone (retention): nothing to compare with
        fresh = self._regenerate(first, [event_leaf_hash(e) for e in events])
        start = stored_hash_count(first)
        stored = self._store.read_hashes(range(start, start + len(fresh)))
        bad = next((i for i, (a, b) in enumerate(zip(fresh, stored, strict=True)) if a != b), None)
        if bad is None:
            return
        leaf = leaf_count(start + bad)
        if self._garbage(leaf):
            log.warning(
                "%s: the tree's unsynced tail from leaf %d (position %d) is damaged "
                "(a crash): rebuilding it from the events",
                self.path,
                leaf,
                self.base + 1 + leaf,
            )
            self._tree.truncate(leaf)
            self._key = self._stat()
            return
        message = (
            f"{self.path}: the event at position {self.base + 1 + leaf} does not match leaf "
            f"{leaf} of the Merkle tree, whose stored hashes are consistent: the event (or "
            "the tree) was changed after it was appended. The tree is left as it is "
            "('verify' reports it; signed checkpoints tell which is true)"
        )
        self.notices.append(message)
        log.error("%s", message)

    def _regenerate(self, first: int, leaves: list[bytes]) -> list[bytes]:
        """The hashes appending ``leaves`` at leaf ``first`` would store."""
        regen = _Regenerating(self._store, stored_hash_count(first))
        MerkleTree(regen, repair=False).append_leaf_hashes(leaves)
        return regen.out

    def _garbage(self, leaf: int) -> bool:
        """Whether the stored hashes from ``leaf`` on are not a tree (zeros, or nodes
        that do not follow from the stored leaves): a torn, unsynced tail."""
        start = stored_hash_count(leaf)
        stored = self._store.read_hashes(range(start, self._store.hash_count))
        if _ZERO in stored:
            return True
        leaves = self._store.read_hashes(
            [stored_hash_index(0, k) for k in range(leaf, self._tree.size)]
        )
        return self._regenerate(leaf, leaves) != stored

    # -- checkpoints -----------------------------------------------------------------------

    def save_checkpoint(self, size: int, note: str) -> None:
        """Keep ``note`` if ``size`` is at least the latest one's (see the module docs)."""
        if self.read_only:
            raise ReadOnlyStoreError(f"cannot keep a checkpoint in {self.cp_dir}: read-only")
        self.cp_dir.mkdir(mode=self.dir_mode, exist_ok=True)
        lock = WriterLock(self.cp_dir / "lock", self.file_mode)
        try:
            with lock.held():
                latest = self.latest_checkpoint()
                if latest is not None and _note_size(latest) > size:
                    log.info("not keeping a checkpoint of size %d: the latest is larger", size)
                    return
                line = msgspec.json.encode({"size": size, "note": note}) + b"\n"
                fd = os.open(
                    self.cp_dir / "checkpoints.log",
                    os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                    self.file_mode,
                )
                try:
                    os.write(fd, line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                atomic_write(self.cp_dir / "latest", note.encode(), self.file_mode)
                fsync_dir(self.root)
        finally:
            lock.close()

    def latest_checkpoint(self) -> str | None:
        try:
            return (self.cp_dir / "latest").read_text()
        except FileNotFoundError:
            return None


def _note_size(note: str) -> int:
    """The tree size a checkpoint note's body states (its second line), or -1."""
    lines = note.split("\n")
    try:
        return int(lines[1])
    except (IndexError, ValueError):
        return -1
