"""Where each hash of the tree is stored: a dense, append-only numbering.

The tree's hashes are addressed by *stored hash index*, in the order Crosby and
Wallach's history tree (and Go's ``golang.org/x/mod/sumdb/tlog``) writes them:
appending leaf ``n`` stores the leaf hash, then the hash of every perfect subtree
that leaf completes (one per trailing 1 bit of ``n``). So

* every append writes to the end of the sequence — an append-only file of
  32-byte records, or rows numbered by index, is enough;
* leaf ``n`` writes ``1 + trailing_ones(n)`` hashes, on average just under 2;
* a tree of ``n`` leaves holds exactly ``2n - popcount(n)`` hashes (every
  perfect subtree once), and any root or proof needs ``O(log n)`` of them.

Node ``(level, k)`` is the root of the perfect subtree over leaves
``[k·2^level, (k+1)·2^level)``; level 0 holds the leaf hashes.
"""

from __future__ import annotations

from ..errors import ValidationError

__all__ = [
    "leaf_count",
    "perfect_subtrees",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
]


def _index0(n: int) -> int:
    # Leaf n is preceded by every hash of the tree of n leaves: n + n//2 + n//4 + …,
    # which is 2n - popcount(n).
    return 2 * n - n.bit_count()


def stored_hash_index(level: int, k: int) -> int:
    """The stored index of node ``(level, k)``.

    It is written right after the last leaf under it, ``(k+1)·2^level - 1``, whose
    own hash comes first and is followed by one node per level up to ``level``.
    """
    if level < 0 or k < 0:
        raise ValidationError(f"no tree node at level {level}, index {k}")
    last_leaf = ((k + 1) << level) - 1
    return _index0(last_leaf) + level


def split_stored_hash_index(index: int) -> tuple[int, int]:
    """The node ``(level, k)`` stored at ``index``: the inverse of :func:`stored_hash_index`."""
    if index < 0:
        raise ValidationError(f"stored hash index must be >= 0, got {index}")
    # The leaf n that wrote this hash is the last one whose own index is <= index;
    # _index0(n) is within 64 of 2n, so start just below and walk up.
    n = max(0, (index - 64) // 2)
    while _index0(n + 1) <= index:
        n += 1
    level = index - _index0(n)
    return level, n >> level


def stored_hash_count(leaves: int) -> int:
    """How many hashes a tree of ``leaves`` leaves stores: ``2n - popcount(n)``."""
    if leaves < 0:
        raise ValidationError(f"tree size must be >= 0, got {leaves}")
    return 2 * leaves - leaves.bit_count()


def leaf_count(hashes: int) -> int:
    """The largest tree size whose stored hashes fit in ``hashes`` records.

    Equal to the exact size when ``hashes == stored_hash_count(size)``; a larger
    ``hashes`` means the tail holds part of the next leaf's hashes (a torn append).
    """
    if hashes < 0:
        raise ValidationError(f"hash count must be >= 0, got {hashes}")
    n = max(0, (hashes - 64) // 2)
    while stored_hash_count(n + 1) <= hashes:
        n += 1
    return n


def perfect_subtrees(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees, left to right, that make up leaves ``[lo, hi)``.

    ``[lo, hi)`` must be a range the RFC 9162 recursion produces (``lo`` a multiple
    of the largest power of two not above ``hi - lo``), which every subtree of a
    proof is. The range's hash is these nodes folded from the right:
    ``node(s0, node(s1, … node(s_{k-2}, s_{k-1})))``.
    """
    out: list[tuple[int, int]] = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo & ((1 << level) - 1):
            raise ValidationError(f"leaves [{lo}, {hi}) are not a subtree of the tree")
        out.append((level, lo >> level))
        lo += 1 << level
    return out
