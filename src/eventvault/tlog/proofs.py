"""Building and checking RFC 9162 §2.1 proofs.

Building reads the stored hashes a proof needs — ``O(log n)`` of them, in one
:meth:`~eventvault.tlog.storage.HashReader.read_hashes` call — and assembles them in
the order the RFC's recursive definitions give (RFC 9162 §2.1.3.1 ``PATH`` and
§2.1.4.1 ``PROOF``/``SUBPROOF``): the hash nearest the leaf (or the old tree) first,
the root's other child last.

Checking follows the RFC's iterative algorithms (§2.1.3.2, §2.1.4.2) step by step,
so a proof from any RFC 9162 / RFC 6962 log verifies here and ours verify there.
Both raise :class:`ProofError` (naming what did not match) rather than return a flag
a caller could forget to look at.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import EventVaultError, ValidationError
from .hashing import EMPTY_ROOT, HASH_SIZE, check_hash, node_hash
from .layout import perfect_subtrees, stored_hash_index
from .storage import HashReader

__all__ = [
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "root_from_inclusion_proof",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]


class ProofError(EventVaultError):
    """A proof does not verify: the log cannot show what was claimed.

    Not bad input (that is :class:`~eventvault.errors.ValidationError`): a well-formed
    proof whose hashes do not lead to the root the verifier trusts.
    """


ProofError.__module__ = "eventvault.tlog"

_Range = tuple[int, int]


def _ranges_hashes(reader: HashReader, ranges: Sequence[_Range]) -> list[bytes]:
    """The hash of each leaf range (each a subtree the RFC recursion produces),
    reading every stored hash they need in one call."""
    parts = [perfect_subtrees(lo, hi) for lo, hi in ranges]
    indexes = [stored_hash_index(level, k) for nodes in parts for level, k in nodes]
    # One ordered batch: a file or table store reads sequentially.
    order = sorted(range(len(indexes)), key=indexes.__getitem__)
    fetched = reader.read_hashes([indexes[i] for i in order])
    if len(fetched) != len(indexes):
        raise ValidationError(f"the hash store returned {len(fetched)} of {len(indexes)} hashes")
    hashes: list[bytes] = [b""] * len(indexes)
    for slot, value in zip(order, fetched, strict=True):
        hashes[slot] = value
    out: list[bytes] = []
    at = 0
    for nodes in parts:
        mine = hashes[at : at + len(nodes)]
        at += len(nodes)
        h = mine[-1]
        for left in reversed(mine[:-1]):
            h = node_hash(left, h)
        out.append(h)
    return out


def _check_size(size: int, name: str = "tree size") -> None:
    if type(size) is not int or size < 0:
        raise ValidationError(f"{name} must be an integer >= 0, got {size!r}")


def tree_hash(reader: HashReader, size: int) -> bytes:
    """MTH(D[0:size]): the root of the tree's first ``size`` leaves."""
    _check_size(size)
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes(reader, [(0, size)])[0]


def inclusion_proof(reader: HashReader, index: int, size: int) -> list[bytes]:
    """PATH(index, D[0:size]) (RFC 9162 §2.1.3.1): the audit path of leaf ``index``."""
    _check_size(size)
    if type(index) is not int or not 0 <= index < size:
        raise ValidationError(f"leaf index {index!r} is not in a tree of size {size}")
    siblings: list[_Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of two < hi - lo
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    siblings.reverse()  # PATH(m, D[0:k]) : MTH(D[k:n]) — the deepest sibling first
    return _ranges_hashes(reader, siblings)


def consistency_proof(reader: HashReader, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1) for ``0 < first <= second``.

    ``first == second`` gives the empty proof (the RFC's ``SUBPROOF(m, D[m], true)``);
    the empty tree has no consistency proof (it is consistent with every tree, and
    RFC 9162 defines the proof for ``0 < m`` only).
    """
    _check_size(first, "first tree size")
    _check_size(second, "second tree size")
    if not 0 < first <= second:
        raise ValidationError(
            f"a consistency proof needs 0 < first <= second, got first={first}, second={second}"
        )
    nodes: list[_Range] = []
    lo, hi = 0, second
    complete = True  # the RFC's b: the subtree is still the old tree's left edge
    while first != hi:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if first <= lo + k:
            nodes.append((lo + k, hi))
            hi = lo + k
        else:
            nodes.append((lo, lo + k))
            lo += k
            complete = False
    if not complete:
        nodes.append((lo, hi))  # SUBPROOF(m, D[m], false) = {MTH(D[m])}
    nodes.reverse()
    return _ranges_hashes(reader, nodes)


def _path(proof: Sequence[bytes], name: str) -> list[bytes]:
    if isinstance(proof, bytes | str):
        raise ValidationError(f"{name} must be a list of {HASH_SIZE}-byte hashes")
    return [check_hash(p, f"{name}[{i}]") for i, p in enumerate(proof)]


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` of a tree of ``size``
    (RFC 9162 §2.1.3.2 steps 1–4); :class:`ProofError` if the proof has the wrong length."""
    _check_size(size)
    if type(index) is not int or not 0 <= index < size:
        raise ValidationError(f"leaf index {index!r} is not in a tree of size {size}")
    r = check_hash(leaf, "leaf hash")
    path = _path(proof, "audit path")
    fn, sn = index, size - 1
    for p in path:
        if sn == 0:
            raise ProofError(f"the audit path has more hashes than a tree of size {size} needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"the audit path has fewer hashes than a tree of size {size} needs")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` whose root is
    ``root`` (RFC 9162 §2.1.3.2); :class:`ProofError` if not."""
    want = check_hash(root, "root hash")
    if root_from_inclusion_proof(index, size, leaf, proof) != want:
        raise ProofError(
            f"the audit path of leaf {index} does not lead to the root of the tree of size {size}"
        )


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that the tree of size ``second`` with root ``second_root`` extends the tree
    of size ``first`` with root ``first_root`` (RFC 9162 §2.1.4.2); :class:`ProofError`
    if not. ``first == second`` needs an empty proof and equal roots."""
    _check_size(first, "first tree size")
    _check_size(second, "second tree size")
    if not 0 < first <= second:
        raise ValidationError(
            f"a consistency proof needs 0 < first <= second, got first={first}, second={second}"
        )
    old = check_hash(first_root, "first root hash")
    new = check_hash(second_root, "second root hash")
    path = _path(proof, "consistency proof")
    if first == second:
        if path:
            raise ProofError("trees of the same size need an empty consistency proof")
        if old != new:
            raise ProofError(f"two different roots for the same tree size {first}")
        return
    # 1. An empty path cannot prove anything between different sizes.
    if not path:
        raise ProofError(f"an empty consistency proof cannot link size {first} to {second}")
    # 2. If first is an exact power of two, the old root is the first node of the path.
    if first & (first - 1) == 0:
        path.insert(0, old)
    # 3.–4.
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5.–6.
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(
                f"the consistency proof has more hashes than sizes {first} and {second} need"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    # 7.
    if sn != 0:
        raise ProofError(
            f"the consistency proof has fewer hashes than sizes {first} and {second} need"
        )
    if fr != old:
        raise ProofError(
            f"the tree of size {second} does not extend the given tree of size {first}: "
            "the proof does not lead to the first root (a rewrite or a fork)"
        )
    if sr != new:
        raise ProofError(
            f"the consistency proof from size {first} does not lead to the root of size {second}"
        )
