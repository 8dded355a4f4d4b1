"""The checked-in tree vectors, checked by the naive RFC reference and by published vectors.

* tests/vectors/rfc9162_tree.json — ours (scripts/make_vectors.py), recomputed here by
  ``reference`` (the RFC's recursive definitions) *and* by eventvault.tlog.
* tests/vectors/transparency_dev_merkle.json — transcribed from
  github.com/transparency-dev/merkle (the Go library Trillian and Tessera use): the
  RFC 6962 reference leaves and roots, and its inclusion/consistency probes, good and bad.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eventvault.errors import ValidationError
from eventvault.tlog import (
    MemoryHashStore,
    MerkleTree,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

from . import reference as ref

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text("utf-8"))


OURS = _load("rfc9162_tree.json")
PUBLISHED = _load("transparency_dev_merkle.json")
H = bytes.fromhex


@pytest.fixture(scope="module")
def memo() -> ref.Memo:
    return ref.Memo([e.encode() for e in OURS["entries"]])


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    t = MerkleTree(MemoryHashStore())
    t.extend(e.encode() for e in OURS["entries"])
    return t


def test_vector_roots(memo: ref.Memo, tree: MerkleTree) -> None:
    for i, want in enumerate(OURS["leaf_hashes_first_16"]):
        assert H(want) == leaf_hash(OURS["entries"][i].encode()) == tree.leaf_hash(i)
    assert {"1", "2", "3", "7", "8", "16", "100", "1000"} <= set(OURS["roots"])
    for size, want in OURS["roots"].items():
        assert H(want) == memo.mth(0, int(size)) == tree.root(int(size)), size


def test_vector_inclusion_proofs(memo: ref.Memo, tree: MerkleTree) -> None:
    sizes = {v["tree_size"] for v in OURS["inclusion"]}
    assert {1, 2, 3, 7, 8, 16, 17, 100, 1000} <= sizes
    for v in OURS["inclusion"]:
        m, n = v["leaf_index"], v["tree_size"]
        audit = [H(h) for h in v["audit_path"]]
        assert audit == memo.path(m, 0, n), (m, n)
        assert H(v["root_hash"]) == memo.mth(0, n)
        assert ref.root_from_path(m, n, H(v["leaf_hash"]), audit) == H(v["root_hash"])
        assert tree.inclusion_proof(m, n) == audit
        verify_inclusion(m, n, H(v["leaf_hash"]), audit, H(v["root_hash"]))


def test_vector_consistency_proofs(memo: ref.Memo, tree: MerkleTree) -> None:
    pairs = {(v["first"], v["second"]) for v in OURS["consistency"]}
    assert {(1, 1), (1, 2), (2, 3), (3, 7), (7, 8), (4, 8), (8, 8), (1000, 1000)} <= pairs
    for v in OURS["consistency"]:
        m, n = v["first"], v["second"]
        proof = [H(h) for h in v["proof"]]
        assert proof == memo.subproof(m, 0, n, True), (m, n)
        assert H(v["first_root"]) == memo.mth(0, m)
        assert H(v["second_root"]) == memo.mth(0, n)
        assert tree.consistency_proof(m, n) == proof
        verify_consistency(m, n, H(v["first_root"]), H(v["second_root"]), proof)


def test_published_rfc6962_reference_roots() -> None:
    leaves = [H(x) for x in PUBLISHED["leaf_inputs_hex"]]
    tree = MerkleTree(MemoryHashStore())
    for size, want in sorted(PUBLISHED["root_hashes_by_size"].items(), key=lambda kv: int(kv[0])):
        n = int(size)
        assert H(want) == ref.mth(leaves[:n])
        if n:
            tree.append(leaves[n - 1])
        assert tree.root() == H(want), n


def _h(value: str | None) -> bytes:
    return H(value or "")


def _verify_probe(kind: str, p: dict[str, Any]) -> None:
    if kind == "inclusion":
        verify_inclusion(
            p["leaf_index"],
            p["tree_size"],
            _h(p["leaf_hash"]),
            [_h(x) for x in p["audit_path"]],
            _h(p["root_hash"]),
        )
    else:
        verify_consistency(
            p["first"],
            p["second"],
            _h(p["first_root"]),
            _h(p["second_root"]),
            [_h(x) for x in p["proof"]],
        )


def _malformed(p: dict[str, Any]) -> bool:
    values = [v for k, v in p.items() if k.endswith(("hash", "root"))]
    values += p.get("audit_path", []) + p.get("proof", [])
    return any(len(_h(v)) != 32 for v in values)


@pytest.mark.parametrize("kind", ["inclusion", "consistency"])
def test_published_probes(kind: str) -> None:
    probes = PUBLISHED[f"{kind}_probes"]
    assert len(probes) > 90
    good = bad = stricter = 0
    for p in probes:
        if not p["want_error"]:
            if _malformed(p):
                # A "don't care" root that is not 32 bytes, where their verifier never
                # looks at it; ours refuses any hash that is not a SHA-256 digest.
                with pytest.raises(ValidationError):
                    _verify_probe(kind, p)
                stricter += 1
                continue
            _verify_probe(kind, p)  # must pass
            good += 1
        else:
            with pytest.raises((ProofError, ValidationError)):
                _verify_probe(kind, p)
            bad += 1
    assert good >= 5
    assert bad >= 80
    assert stricter <= 2
