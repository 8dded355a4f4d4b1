"""The storage protocol of the tree's hashes, and an in-memory implementation.

A backend keeps the tree by storing 32-byte hashes at dense indexes (see
:mod:`eventvault.tlog.layout`). It needs only two operations, so the same tree code
runs over memory, an append-only file (:class:`~eventvault.tlog.filestore.FileHashStore`)
or a table with one row per stored hash:

* :meth:`HashReader.read_hashes` — the hashes at some indexes, and
* :meth:`HashWriter.append_hashes` — new hashes at the end.

Nothing is ever rewritten: an append that does not start exactly at the current
end is refused, so a bug can never silently replace a hash a proof was built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..errors import CorruptionError, ValidationError
from .hashing import HASH_SIZE

__all__ = ["HashReader", "HashStore", "HashWriter", "MemoryHashStore"]


@runtime_checkable
class HashReader(Protocol):
    """Reads stored hashes by index."""

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        """The hashes at ``indexes``, in the same order (32 bytes each).

        Tree code asks in increasing order, which a store may rely on to read
        sequentially. An index at or beyond :attr:`hash_count` is an error
        (:class:`~eventvault.errors.CorruptionError`: the tree asked for a hash
        its size says exists).
        """
        ...


@runtime_checkable
class HashWriter(Protocol):
    """Appends stored hashes."""

    @property
    def hash_count(self) -> int:
        """How many hashes are stored (the next index to write)."""
        ...

    def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
        """Store ``hashes`` at indexes ``start, start+1, …``; ``start`` must equal
        :attr:`hash_count` (a :class:`~eventvault.errors.ValidationError` otherwise)."""
        ...


@runtime_checkable
class HashStore(HashReader, HashWriter, Protocol):
    """A readable, appendable hash store: what :class:`~eventvault.tlog.tree.MerkleTree` runs on."""


def check_append(count: int, start: int, hashes: Sequence[bytes]) -> None:
    """The checks every :meth:`HashWriter.append_hashes` makes before writing anything."""
    if start != count:
        raise ValidationError(
            f"hashes must be appended at the end of the store (index {count}), not at {start}"
        )
    if hashes and set(map(len, hashes)) != {HASH_SIZE}:  # (a C-speed pass)
        for i, h in enumerate(hashes):
            if len(h) != HASH_SIZE:
                raise ValidationError(f"hash {start + i} must be {HASH_SIZE} bytes, got {len(h)}")


def missing_hash(index: int, count: int) -> CorruptionError:
    """The error for a read past the end: the tree's size and its hashes disagree."""
    return CorruptionError(
        f"stored hash {index} was asked for but only {count} are stored; the tree's hash "
        "store is shorter than its size says (rebuild it from the events)"
    )


class MemoryHashStore:
    """Hashes in a Python list: for tests, the memory backend and building proofs offline."""

    __slots__ = ("_hashes",)

    def __init__(self, hashes: Sequence[bytes] = ()) -> None:
        self._hashes: list[bytes] = []
        if hashes:
            self.append_hashes(0, hashes)

    @property
    def hash_count(self) -> int:
        return len(self._hashes)

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        stored = self._hashes
        count = len(stored)
        out: list[bytes] = []
        for i in indexes:
            if not 0 <= i < count:
                raise missing_hash(i, count)
            out.append(stored[i])
        return out

    def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
        check_append(len(self._hashes), start, hashes)
        self._hashes.extend(map(bytes, hashes))  # (bytes(b) is b itself for bytes)

    def truncate(self, count: int) -> None:
        """Drop every hash from index ``count`` on (to undo hashes of leaves whose
        events were never made durable)."""
        if not 0 <= count <= len(self._hashes):
            raise ValidationError(f"cannot truncate {len(self._hashes)} hashes to {count}")
        del self._hashes[count:]
