"""The Merkle tree against a naive RFC 9162 implementation, and its storage costs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventvault.errors import CorruptionError, ValidationError
from eventvault.tlog import (
    EMPTY_ROOT,
    FileHashStore,
    HashStore,
    MemoryHashStore,
    MerkleTree,
    ProofError,
    leaf_count,
    leaf_hash,
    perfect_subtrees,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
    verify_consistency,
    verify_inclusion,
)

from . import reference as ref

ENTRIES = [f"entry {i}".encode() for i in range(70)]


class CountingStore(MemoryHashStore):
    """A memory store that counts what it is asked for."""

    __slots__ = ("calls", "reads", "writes")

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.calls = 0
        self.writes = 0

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        assert list(indexes) == sorted(indexes), "tree code reads in increasing order"
        self.calls += 1
        self.reads += len(indexes)
        return super().read_hashes(indexes)

    def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
        self.writes += len(hashes)
        super().append_hashes(start, hashes)


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> HashStore:
    if request.param == "memory":
        return MemoryHashStore()
    return FileHashStore(tmp_path / "tree.hashes", fsync=False, buffer_bytes=64 * 32)


def test_layout_is_the_order_appends_write_hashes() -> None:
    # Simulate the appends naively: leaf n writes (0, n), then one node per
    # trailing 1 bit of n. Every node must sit where stored_hash_index says.
    order: list[tuple[int, int]] = []
    for n in range(300):
        order.append((0, n))
        level, m = 0, n
        while m & 1:
            level += 1
            m >>= 1
            order.append((level, n >> level))
        assert stored_hash_count(n + 1) == len(order)
        assert leaf_count(len(order)) == n + 1
    for index, (level, k) in enumerate(order):
        assert stored_hash_index(level, k) == index
        assert split_stored_hash_index(index) == (level, k)
    # A count inside a leaf's hashes maps to the last whole leaf.
    assert leaf_count(stored_hash_count(8) - 1) == 7


def test_layout_rejects_what_no_tree_has() -> None:
    with pytest.raises(ValidationError):
        stored_hash_index(-1, 0)
    with pytest.raises(ValidationError):
        split_stored_hash_index(-1)
    with pytest.raises(ValidationError):
        stored_hash_count(-1)
    with pytest.raises(ValidationError):
        leaf_count(-1)
    with pytest.raises(ValidationError, match="not a subtree"):
        perfect_subtrees(1, 3)  # [1, 3) straddles two perfect subtrees


def test_roots_and_proofs_equal_the_rfc_definitions(store: HashStore) -> None:
    tree = MerkleTree(store)
    assert tree.root() == EMPTY_ROOT == ref.mth([])
    for n in range(1, len(ENTRIES) + 1):
        assert tree.append(ENTRIES[n - 1]) == n - 1
        assert tree.root() == ref.mth(ENTRIES[:n]), n
    memo = ref.Memo(ENTRIES)
    for n in range(1, len(ENTRIES) + 1):
        root = tree.root(n)
        assert root == memo.mth(0, n)
        for m in range(n):
            audit = tree.inclusion_proof(m, n)
            assert audit == memo.path(m, 0, n), (m, n)
            assert ref.root_from_path(m, n, leaf_hash(ENTRIES[m]), audit) == root
            verify_inclusion(m, n, tree.leaf_hash(m), audit, root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m, n)
            assert proof == memo.subproof(m, 0, n, True), (m, n)
            verify_consistency(m, n, tree.root(m), root, proof)


def test_naive_reference_agrees_with_its_memoised_form() -> None:
    # The memoised reference is the one the big checks use; pin it to the plain one.
    memo = ref.Memo(ENTRIES[:20])
    for n in range(1, 21):
        assert memo.mth(0, n) == ref.mth(ENTRIES[:n])
        for m in range(n):
            assert memo.path(m, 0, n) == ref.path(m, ENTRIES[:n])
        for m in range(1, n + 1):
            assert memo.subproof(m, 0, n, True) == ref.proof(m, ENTRIES[:n])


def test_batched_and_single_appends_store_the_same_hashes() -> None:
    one, batch = MemoryHashStore(), MemoryHashStore()
    t1, t2 = MerkleTree(one), MerkleTree(batch)
    for e in ENTRIES:
        t1.append(e)
    assert t2.extend(ENTRIES[:33]) == 0
    assert t2.extend(ENTRIES[33:]) == 33
    assert one.read_hashes(range(one.hash_count)) == batch.read_hashes(range(batch.hash_count))


def test_appends_read_nothing_and_write_under_two_hashes_a_leaf() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    n = 4096 + 77
    for i in range(n):
        tree.append(i.to_bytes(4, "big"))
    assert store.reads == 0
    assert store.writes == stored_hash_count(n) == 2 * n - n.bit_count()
    assert store.writes / n < 2


def test_roots_and_proofs_read_logarithmically_many_hashes() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    n = 5000
    tree.extend(i.to_bytes(4, "big") for i in range(n))
    depth = (n - 1).bit_length()  # 13
    for m, size in [(0, n), (n - 1, n), (2500, n), (1234, 4097), (4096, 4097)]:
        store.calls = store.reads = 0
        tree.inclusion_proof(m, size)
        assert store.calls == 1
        assert store.reads <= 2 * depth
    for first in (1, 7, 2048, 3000, n - 1):
        store.calls = store.reads = 0
        tree.consistency_proof(first, n)
        assert store.calls == 1
        assert store.reads <= 3 * depth
    store.calls = store.reads = 0
    tree.root(3333)
    assert store.reads <= depth + 1
    # Opening reads only the right edge: popcount(n) hashes.
    store.calls = store.reads = 0
    reopened = MerkleTree(store)
    assert store.reads == n.bit_count()
    assert reopened.root() == tree.root()


def _flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def test_every_altered_inclusion_proof_fails() -> None:
    tree = MerkleTree(MemoryHashStore())
    tree.extend(ENTRIES[:13])
    root = tree.root()
    for m in range(13):
        leaf = tree.leaf_hash(m)
        audit = tree.inclusion_proof(m)
        for i in range(len(audit)):
            bad = [*audit[:i], _flip(audit[i]), *audit[i + 1 :]]
            with pytest.raises(ProofError):
                verify_inclusion(m, 13, leaf, bad, root)
        with pytest.raises(ProofError):
            verify_inclusion(m, 13, _flip(leaf), audit, root)
        with pytest.raises(ProofError):
            verify_inclusion(m, 13, leaf, audit, _flip(root))
        with pytest.raises(ProofError):
            verify_inclusion(m, 13, leaf, audit[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(m, 13, leaf, [*audit, audit[0]], root)
        with pytest.raises(ProofError):
            verify_inclusion((m + 1) % 13, 13, leaf, audit, root)
        # (A wrong tree size can still verify where the path's shape is the same:
        # the size is what the signed checkpoint vouches for, not the path.)


def test_every_altered_consistency_proof_fails() -> None:
    tree = MerkleTree(MemoryHashStore())
    tree.extend(ENTRIES[:13])
    new = tree.root()
    for m in range(1, 13):
        old = tree.root(m)
        proof = tree.consistency_proof(m)
        for i in range(len(proof)):
            bad = [*proof[:i], _flip(proof[i]), *proof[i + 1 :]]
            with pytest.raises(ProofError):
                verify_consistency(m, 13, old, new, bad)
        with pytest.raises(ProofError):
            verify_consistency(m, 13, _flip(old), new, proof)
        with pytest.raises(ProofError):
            verify_consistency(m, 13, old, _flip(new), proof)
        with pytest.raises(ProofError):
            verify_consistency(m, 13, old, new, proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(m, 13, old, new, [*proof, proof[0]])
        with pytest.raises(ProofError):
            verify_consistency(m, 13, new, old, proof)  # swapped roots


def test_a_rewritten_history_fails_consistency() -> None:
    # The attack the tree exists for: change one old entry, recompute everything.
    honest = MerkleTree(MemoryHashStore())
    honest.extend(ENTRIES[:40])
    forged_entries = list(ENTRIES[:40])
    forged_entries[10] = b"rewritten"
    forged = MerkleTree(MemoryHashStore())
    forged.extend(forged_entries)
    old_root = honest.root(20)  # what an auditor saw at size 20
    with pytest.raises(ProofError, match="does not extend"):
        verify_consistency(20, 40, old_root, forged.root(), forged.consistency_proof(20))


def test_edge_cases_of_the_rfc() -> None:
    tree = MerkleTree(MemoryHashStore())
    tree.append(b"only")
    # Size 1: the root is the leaf hash and the audit path is empty.
    assert tree.root() == leaf_hash(b"only") == tree.leaf_hash(0)
    assert tree.inclusion_proof(0) == []
    verify_inclusion(0, 1, leaf_hash(b"only"), [], tree.root())
    # m == n: the empty proof, and only for equal roots.
    assert tree.consistency_proof(1, 1) == []
    verify_consistency(1, 1, tree.root(), tree.root(), [])
    with pytest.raises(ProofError, match="same tree size"):
        verify_consistency(1, 1, tree.root(), EMPTY_ROOT, [])
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(1, 1, tree.root(), tree.root(), [tree.root()])
    tree.append(b"two")
    with pytest.raises(ProofError, match="empty consistency proof cannot"):
        verify_consistency(1, 2, tree.root(1), tree.root(), [])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda t: t.inclusion_proof(5), "not in a tree of size 5"),
        (lambda t: t.inclusion_proof(-1), "not in a tree"),
        (lambda t: t.inclusion_proof(0, 6), "beyond this tree"),
        (lambda t: t.consistency_proof(0), "0 < first <= second"),
        (lambda t: t.consistency_proof(4, 3), "0 < first <= second"),
        (lambda t: t.consistency_proof(1, 9), "beyond this tree"),
        (lambda t: t.root(6), "beyond this tree"),
        (lambda t: t.leaf_hash(5), "not in a tree"),
        (lambda t: t.append_leaf_hashes([b"short"]), "32 bytes"),
        (lambda t: t.truncate(6), "cannot truncate"),
        (lambda t: verify_inclusion(0, 0, bytes(32), [], bytes(32)), "not in a tree of size 0"),
        (lambda t: verify_inclusion(0, 1, bytes(31), [], bytes(32)), "32 bytes"),
        (lambda t: verify_inclusion(0, 2, bytes(32), b"x" * 32, bytes(32)), "list of 32-byte"),
        (lambda t: verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, []), "0 < first"),
        (lambda t: verify_consistency(2, 1, bytes(32), bytes(32), []), "0 < first"),
        (lambda t: verify_consistency(1, 2, bytes(32), bytes(32), ["ab"]), "32 bytes"),
    ],
)
def test_bad_input_is_a_validation_error(call: object, match: str) -> None:
    tree = MerkleTree(MemoryHashStore())
    tree.extend(ENTRIES[:5])
    with pytest.raises(ValidationError, match=match):
        call(tree)  # type: ignore[operator]


def test_a_store_refusing_the_write_leaves_the_tree_as_it_was() -> None:
    store = MemoryHashStore()
    tree = MerkleTree(store)
    tree.extend(ENTRIES[:3])
    before = tree.root()
    store.append_hashes(store.hash_count, [bytes(32)])  # someone wrote behind its back
    with pytest.raises(ValidationError, match="appended at the end"):
        tree.append(b"x")
    assert tree.size == 3
    assert tree.root() == before


def test_a_torn_leaf_is_cut_on_open_or_refused() -> None:
    store = MemoryHashStore()
    tree = MerkleTree(store)
    tree.extend(ENTRIES[:7])  # leaf 7 would write 4 hashes; write only 2 of them
    hashes = [leaf_hash(ENTRIES[7]), hashlib.sha256(b"partial").digest()]
    store.append_hashes(store.hash_count, hashes)
    reopened = MerkleTree(store)
    assert reopened.repaired_hashes == 2
    assert reopened.size == 7
    assert reopened.root() == ref.mth(ENTRIES[:7])

    class Plain:  # a store without truncate
        def __init__(self, inner: MemoryHashStore) -> None:
            self.inner = inner

        @property
        def hash_count(self) -> int:
            return self.inner.hash_count

        def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
            return self.inner.read_hashes(indexes)

        def append_hashes(self, start: int, hashes: Sequence[bytes]) -> None:
            self.inner.append_hashes(start, hashes)

    store.append_hashes(store.hash_count, hashes[:1] * 2)
    with pytest.raises(CorruptionError, match="no whole number of leaves"):
        MerkleTree(Plain(store))
    plain_tree = MerkleTree(Plain(MemoryHashStore()))
    with pytest.raises(ValidationError, match="cannot be truncated"):
        plain_tree.truncate(0)


def test_truncate_then_append_is_as_if_never_appended(store: HashStore) -> None:
    tree = MerkleTree(store)
    tree.extend(ENTRIES[:50])
    tree.truncate(37)
    assert tree.size == 37
    assert tree.root() == ref.mth(ENTRIES[:37])
    tree.extend([b"other"] * 5)
    assert tree.root() == ref.mth([*ENTRIES[:37], *[b"other"] * 5])
    tree.truncate(0)
    assert tree.root() == EMPTY_ROOT


def test_reading_past_the_stored_hashes_is_corruption() -> None:
    store = MemoryHashStore()
    with pytest.raises(CorruptionError, match="only 0 are stored"):
        store.read_hashes([0])
    with pytest.raises(ValidationError, match="cannot truncate"):
        store.truncate(1)
