"""Checking a store's Merkle tree against its events and against signed checkpoints.

``verify`` walks the events in position order anyway (for the hash chain); on a
:class:`~eventvault.spi.Proving` backend it hands each event's canonical bytes to a
:class:`TreeCheck` too, which

1. recomputes the event's leaf hash and *regenerates the whole tree* from the
   leaves — recomputed for events the store holds, read from the stored tree for
   events retention removed (their leaves stay, their bodies go) —
2. compares every hash it regenerates with the stored one, in the order they were
   stored, so a changed event, a changed leaf and a changed interior node are each
   found and named;
3. compares the regenerated root at each checkpoint's size with the root the
   checkpoint signed, and checks an RFC 9162 consistency proof from each checkpoint
   to the current tree (the check an outsider makes);
4. at the end, finds what the chain alone cannot: tree leaves whose events are
   gone from the newest end (the newest events removed), and checkpoints larger
   than the tree (the log was cut back, or this is another store).

The regenerated tree lives in memory only as its right edge (``O(log n)``); stored
hashes are compared a block at a time, so memory stays flat however large the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ..errors import EventVaultError
from ..model import RecordedEvent
from ..spi import Proving, TreeState
from ..tlog.checkpoint import Checkpoint
from ..tlog.hashing import EMPTY_ROOT
from ..tlog.layout import split_stored_hash_index, stored_hash_index
from ..tlog.proofs import ProofError, consistency_proof, tree_hash, verify_consistency
from ..tlog.tree import MerkleTree
from .chain import WalkFailure

__all__ = ["TreeCheck", "TreeFailure"]

#: Leaves regenerated per comparison with the stored hashes (one read each).
_BLOCK = 4096
_sha256 = hashlib.sha256


class TreeFailure(WalkFailure):
    """Where and why the tree check failed (``position``: the first event it names)."""


class _ComparingStore:
    """A hash store that holds nothing: each hash "appended" is compared with the one
    the backend stored at that index (the regenerated tree must equal the stored one)."""

    def __init__(self, backend: Proving, base: int) -> None:
        self.backend = backend
        self.base = base
        self.hash_count = 0
        self.edge: list[bytes] = []

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return self.backend.read_hashes(indexes)

    def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
        stored = self.backend.read_hashes(range(start, start + len(hashes)))
        if stored != list(hashes):
            at = next(i for i, (a, b) in enumerate(zip(stored, hashes, strict=True)) if a != b)
            level, k = split_stored_hash_index(start + at)
            if level == 0:
                position = self.base + 1 + k
                raise TreeFailure(
                    f"the event at position {position} does not match leaf {k} of the "
                    "Merkle tree: the event (or the tree) was changed after it was appended",
                    position,
                )
            first = self.base + 1 + (k << level)
            raise TreeFailure(
                f"the Merkle tree's stored node (level {level}, index {k}) does not match "
                f"the leaves under it (positions {first}..{first + (1 << level) - 1}): the "
                "tree was altered",
                first,
            )
        self.hash_count = start + len(hashes)


class TreeCheck:
    """Regenerate a backend's tree from a walk of its events (see the module docs).

    Feed every stored event in position order to :meth:`event`, then call
    :meth:`finish` with the position of the newest stored event. Both raise
    :class:`TreeFailure` at the first disagreement.
    """

    def __init__(self, backend: Proving, checkpoints: Sequence[Checkpoint] = ()) -> None:
        self.backend = backend
        self.state: TreeState = backend.tree_state()
        self.size = self.state.size
        self.base = self.state.base
        self._store = _ComparingStore(backend, self.base)
        self._regen = MerkleTree(self._store, repair=False)
        self._leaves: list[bytes] = []
        self._next = 0  # the next leaf index to regenerate
        # A checkpoint of the empty tree is checked here (its root is a constant);
        # the others when the regenerated tree reaches their size.
        empty = [c for c in checkpoints if c.size == 0]
        self._empty_forged = [c for c in empty if c.root_hash != EMPTY_ROOT]
        self._checkpoints = sorted((c for c in checkpoints if c.size), key=lambda c: c.size)
        self._cp = 0  # checkpoints checked so far
        self._empty_checked = len(empty) - len(self._empty_forged)
        #: Events walked that are newer than the tree (it is catching up with them).
        self.beyond = 0
        #: Leaves taken from the stored tree because their events were removed.
        self.removed_leaves = 0
        #: Stored leaf hashes read ahead for holes: (first leaf index, hashes).
        self._window: tuple[int, list[bytes]] = (0, [])
        #: The leaf count at which :meth:`event` must flush: a block's end, or the
        #: next checkpoint's size (its root is compared exactly there).
        self._stop = 0
        self._set_stop()

    @property
    def checkpoints_checked(self) -> int:
        return self._cp + self._empty_checked

    def root(self) -> bytes:
        """The regenerated root (after :meth:`finish`: the root of the whole tree)."""
        return self._regen.root()

    def event(self, event: RecordedEvent, canonical: bytes, leaf: bytes | None = None) -> None:
        """``leaf``: the event's leaf hash when the caller has it (a leaf-format store's
        stored hash, just verified); otherwise it is computed from ``canonical``."""
        index = event.position - 1 - self.base
        if index == self._next and index < self.size:
            # The common case, kept short (it runs once per event): the next leaf.
            self._leaves.append(leaf or _sha256(b"\x00" + canonical).digest())
            self._next = index = index + 1
            if index >= self._stop:
                self._flush()
            return
        if index < 0:
            return  # before the tree began (an upgraded store): the chain covers it
        if index >= self.size:
            self.beyond += 1
            return
        if index > self._next:
            self._fill(index)  # a hole retention left: the tree kept those leaves
        self._leaves.append(leaf or _sha256(b"\x00" + canonical).digest())
        self._next = index + 1
        if self._next >= self._stop:
            self._flush()

    def finish(self, newest: int | None) -> None:
        """The walk is over; ``newest``: the position of the newest stored event."""
        for cp in self._empty_forged:
            raise TreeFailure(
                f"the checkpoint of {cp.origin!r} for the empty tree signed the root "
                f"{cp.root_hash.hex()}, which is not the empty tree's: it is not of this log",
                None,
            )
        last = self.base + self.size  # the position of the tree's last leaf
        newest = 0 if newest is None else newest
        if newest < last and self.size:
            gone_from = max(newest, self.base) + 1
            self._flush()
            raise TreeFailure(
                f"the Merkle tree has {self.size} leaves (up to position {last}), but the "
                f"store holds no event after position {newest}: events {gone_from}..{last} "
                "were removed from the newest end",
                gone_from,
            )
        self._flush()
        for cp in self._checkpoints[self._cp :]:
            raise TreeFailure(
                f"a checkpoint of {cp.origin!r} commits to {cp.size} events, but this "
                f"store's tree has only {self.size}: the newest {cp.size - self.size} were "
                "removed (the log was cut back), or this is another store",
                self.base + self.size + 1,
            )

    # -- internals ----------------------------------------------------------------------

    def _fill(self, upto: int) -> None:
        """Take leaves ``_next..upto-1`` from the stored tree (removed events)."""
        while self._next < upto:
            stop = min(upto, self._stop)
            self._leaves.extend(self._stored_leaves(self._next, stop))
            self.removed_leaves += stop - self._next
            self._next = stop
            if stop >= self._stop:
                self._flush()

    def _stored_leaves(self, lo: int, hi: int) -> list[bytes]:
        """The stored leaf hashes ``lo..hi-1``, read a window of :data:`_BLOCK` leaves
        at a time: holes are often one event wide (retention removing one type among
        others), and one read per hole — a round trip on a database — would dominate
        the walk. (The window's other leaves, of events still stored, are not used.)"""
        out: list[bytes] = []
        while lo < hi:
            start, window = self._window
            if not start <= lo < start + len(window):
                end = min(self.size, max(hi, lo + _BLOCK))
                indexes = [stored_hash_index(0, i) for i in range(lo, end)]
                self._window = (lo, self.backend.read_hashes(indexes))
                continue
            take = min(hi, start + len(window))
            out.extend(window[lo - start : take - start])
            lo = take
        return out

    def _set_stop(self) -> None:
        stop = self._regen.size + _BLOCK
        cps = self._checkpoints
        if self._cp < len(cps) and cps[self._cp].size > self._regen.size:
            stop = min(stop, cps[self._cp].size)
        self._stop = stop

    def _flush(self) -> None:
        if self._leaves:
            leaves, self._leaves = self._leaves, []
            self._regen.append_leaf_hashes(leaves)
        cps = self._checkpoints
        while self._cp < len(cps) and cps[self._cp].size <= self._regen.size:
            cp = cps[self._cp]
            if cp.size < self._regen.size:  # (two checkpoints in one block: cannot happen)
                raise AssertionError("checkpoint skipped")  # pragma: no cover
            self._check_checkpoint(cp)
            self._cp += 1
        self._set_stop()

    def _check_checkpoint(self, cp: Checkpoint) -> None:
        root = self._regen.root()
        if root != cp.root_hash:
            raise TreeFailure(
                f"the tree of this store's first {cp.size} events has root {root.hex()}, "
                f"but the checkpoint of {cp.origin!r} signed {cp.root_hash.hex()} for that "
                "size: the record was rewritten at or before that point (or this is a fork)",
                self.base + cp.size if cp.size else None,
            )
        if 0 < cp.size < self.size:
            # The check an outsider holding ``cp`` makes: the current tree extends it.
            try:
                current = self._current_root()
                proof = consistency_proof(self.backend, cp.size, self.size)
                verify_consistency(cp.size, self.size, cp.root_hash, current, proof)
            except (ProofError, EventVaultError) as exc:
                raise TreeFailure(
                    f"no valid consistency proof from the checkpoint of size {cp.size} to "
                    f"the tree of size {self.size}: {exc}",
                    self.base + cp.size,
                ) from None

    def _current_root(self) -> bytes:
        return tree_hash(self.backend, self.size)
