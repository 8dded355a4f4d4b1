"""An appendable RFC 9162 Merkle tree over a hash store.

:class:`MerkleTree` keeps, besides the store, only the tree's right edge in memory:
the roots of the perfect subtrees the current leaves decompose into (at most
``log2 n + 1`` hashes, read once when the tree is opened). Appending a leaf then
needs no read at all — it combines the new leaf with the edge's last subtrees of
equal size, which are exactly the hashes it must store — and the current root is a
fold of the edge. Roots at earlier sizes and proofs read ``O(log n)`` stored hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from ..errors import CorruptionError, ValidationError
from .hashing import EMPTY_ROOT, check_hash, leaf_hash, node_hash
from .layout import leaf_count, perfect_subtrees, stored_hash_count, stored_hash_index
from .proofs import consistency_proof, inclusion_proof, tree_hash
from .storage import HashStore

__all__ = ["MerkleTree", "TruncatableHashStore"]


@runtime_checkable
class TruncatableHashStore(HashStore, Protocol):
    """A hash store that can drop a suffix (hashes of leaves that must be undone)."""

    def truncate(self, count: int) -> None: ...


class MerkleTree:
    """The tree stored in ``store``; its size is what the store holds.

    A store that ends inside a leaf's hashes (a torn append) is cut back to the last
    whole leaf if it can be truncated (:attr:`repaired_hashes` says how many hashes
    went), and is a :class:`~eventvault.errors.CorruptionError` otherwise. With
    ``repair=False`` — the default for a store opened ``readonly`` — such a tail is
    left alone and the tree ends at the last whole leaf.
    """

    def __init__(self, store: HashStore, *, repair: bool | None = None) -> None:
        self.store = store
        #: Stored hashes cut on open because they belonged to a leaf only partly written.
        self.repaired_hashes = 0
        # A read-only view (a reader following a writer) must not cut: the hashes past
        # the last whole leaf are the writer's append in progress, not a torn one.
        self._repair = not getattr(store, "readonly", False) if repair is None else repair
        self._size, self._edge = self._load(self._repair)

    def _load(self, repair: bool) -> tuple[int, list[bytes]]:
        store = self.store
        count = store.hash_count
        size = leaf_count(count)
        whole = stored_hash_count(size)
        if whole != count and repair:
            if not isinstance(store, TruncatableHashStore):
                raise CorruptionError(
                    f"the tree's hash store holds {count} hashes, which is no whole number of "
                    f"leaves ({whole} would be {size} leaves)"
                )
            store.truncate(whole)
            self.repaired_hashes += count - whole
        return size, self._read_edge(size)

    def refresh(self) -> int:
        """Catch up with appends another process (or store object) made: re-read the
        store's size (calling its ``refresh()`` if it has one); returns :attr:`size`.
        Hashes past the last whole leaf are left for their writer to finish."""
        refresh = getattr(self.store, "refresh", None)
        if callable(refresh):
            refresh()
        self._size, self._edge = self._load(repair=False)
        return self._size

    def _read_edge(self, size: int) -> list[bytes]:
        nodes = perfect_subtrees(0, size)
        return self.store.read_hashes([stored_hash_index(level, k) for level, k in nodes])

    @property
    def size(self) -> int:
        """How many leaves the tree has."""
        return self._size

    # -- appending ---------------------------------------------------------------------

    def append(self, entry: bytes) -> int:
        """Add one entry (its leaf hash is SHA-256(0x00 ‖ entry)); returns its leaf index."""
        return self.append_leaf_hashes([leaf_hash(entry)])

    def extend(self, entries: Iterable[bytes]) -> int:
        """Add entries in order with one store write; returns the first one's leaf index."""
        return self.append_leaf_hashes([leaf_hash(e) for e in entries])

    def append_leaf_hashes(self, leaves: Sequence[bytes]) -> int:
        """Add leaves given by their leaf hashes, with one store write; returns the
        first one's leaf index. Nothing changes if the store refuses the write."""
        first = self._size
        edge = list(self._edge)
        push, pop = edge.append, edge.pop
        out: list[bytes] = []
        add = out.append
        sha256 = hashlib.sha256  # inlined node_hash: this loop is the append's hot path
        n = first
        for leaf in leaves:
            h = leaf if type(leaf) is bytes and len(leaf) == 32 else check_hash(leaf, "leaf hash")
            add(h)
            # Each trailing 1 bit of n completes a perfect subtree: merge it with the
            # edge's last subtree (the same size, just left of it) and store the result.
            m = n
            while m & 1:
                h = sha256(b"\x01" + pop() + h).digest()
                add(h)
                m >>= 1
            push(h)
            n += 1
        if out:
            self.store.append_hashes(stored_hash_count(first), out)
        self._size = n
        self._edge = edge
        return first

    def truncate(self, size: int) -> None:
        """Cut the tree back to its first ``size`` leaves (leaves whose events were
        never made durable). Needs a :class:`TruncatableHashStore`."""
        if type(size) is not int or not 0 <= size <= self._size:
            raise ValidationError(f"cannot truncate a tree of size {self._size} to {size!r}")
        if not isinstance(self.store, TruncatableHashStore):
            raise ValidationError("this hash store cannot be truncated")
        self.store.truncate(stored_hash_count(size))
        self._size = size
        self._edge = self._read_edge(size)

    # -- reading ------------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all)."""
        if size is None or size == self._size:
            if not self._edge:
                return EMPTY_ROOT
            h = self._edge[-1]
            for left in reversed(self._edge[:-1]):
                h = node_hash(left, h)
            return h
        self._check(size, "tree size")
        return tree_hash(self.store, size)

    def leaf_hash(self, index: int) -> bytes:
        """The stored leaf hash of leaf ``index``."""
        if type(index) is not int or not 0 <= index < self._size:
            raise ValidationError(f"leaf index {index!r} is not in a tree of size {self._size}")
        return self.store.read_hashes([stored_hash_index(0, index)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 audit path of leaf ``index`` in the tree of ``size`` (default: all)."""
        size = self._size if size is None else size
        self._check(size, "tree size")
        return inclusion_proof(self.store, index, size)

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from size ``first`` to ``second`` (default: all)."""
        second = self._size if second is None else second
        self._check(second, "second tree size")
        return consistency_proof(self.store, first, second)

    def _check(self, size: int, name: str) -> None:
        if type(size) is not int or not 0 <= size <= self._size:
            raise ValidationError(f"{name} {size!r} is beyond this tree's {self._size} leaves")
