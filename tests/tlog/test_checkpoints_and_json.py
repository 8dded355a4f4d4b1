"""Signed checkpoints between two tree states, and proofs as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventvault.errors import ValidationError
from eventvault.tlog import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    MemoryHashStore,
    MerkleTree,
    NoteError,
    NoteSigner,
    ProofError,
    UnverifiedNoteError,
    check_extends,
    leaf_hash,
    open_checkpoint,
    sign_checkpoint,
    sign_note,
)

from . import reference as ref

ORIGIN = "example.com/eventvault/test"
ENTRIES = [f"event {i}".encode() for i in range(300)]


@pytest.fixture
def tree() -> MerkleTree:
    t = MerkleTree(MemoryHashStore())
    t.extend(ENTRIES[:100])
    return t


def _cp(tree: MerkleTree, size: int | None = None) -> Checkpoint:
    size = tree.size if size is None else size
    return Checkpoint(ORIGIN, size, tree.root(size))


def test_a_client_accepts_only_checkpoints_that_extend_what_it_saw(tree: MerkleTree) -> None:
    log = NoteSigner.generate(ORIGIN)
    seen = open_checkpoint(sign_checkpoint(_cp(tree, 40), [log]), [log.verifier()], origin=ORIGIN)
    tree.extend(ENTRIES[100:])
    now = open_checkpoint(sign_checkpoint(_cp(tree), [log]), [log.verifier()], origin=ORIGIN)
    check_extends(seen, now, tree.consistency_proof(40))
    check_extends(now, now, [])
    check_extends(Checkpoint(ORIGIN, 0, ref.mth([])), now, [])
    # Going backwards, another log, a fork: each refused, naming it.
    with pytest.raises(ProofError, match="went backwards"):
        check_extends(now, seen, [])
    with pytest.raises(ProofError, match="two logs"):
        check_extends(Checkpoint("other.example", 40, seen.root_hash), now, [])
    forked = MerkleTree(MemoryHashStore())
    forked.extend([*ENTRIES[:39], b"rewritten", *ENTRIES[40:300]])
    fork = Checkpoint(ORIGIN, 300, forked.root())
    with pytest.raises(ProofError, match="does not extend"):
        check_extends(seen, fork, forked.consistency_proof(40))


def test_open_checkpoint_refuses_what_it_must(tree: MerkleTree) -> None:
    log, other = NoteSigner.generate(ORIGIN), NoteSigner.generate(ORIGIN)
    signed = sign_checkpoint(_cp(tree), [log])
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(signed, [other.verifier()])  # signed by another key
    with pytest.raises(NoteError, match=r"not 'elsewhere\.example'"):
        open_checkpoint(signed, [log.verifier()], origin="elsewhere.example")
    not_a_checkpoint = NoteSigner.generate(ORIGIN)
    with pytest.raises(NoteError, match="not a checkpoint"):
        open_checkpoint(sign_note("hello\n", [not_a_checkpoint]), [not_a_checkpoint.verifier()])


def test_proofs_round_trip_through_json_and_verify(tree: MerkleTree) -> None:
    inc = InclusionProof(17, 100, tree.leaf_hash(17), tuple(tree.inclusion_proof(17)), tree.root())
    text = json.dumps(inc.to_dict())
    back = InclusionProof.from_dict(json.loads(text))
    assert back == inc
    assert set(json.loads(text)) == {
        "leaf_index",
        "tree_size",
        "leaf_hash",
        "audit_path",
        "root_hash",
    }
    back.verify()
    back.verify(tree.root(), leaf_hash(ENTRIES[17]))
    with pytest.raises(ProofError, match="another root"):
        back.verify(tree.root(99))
    with pytest.raises(ProofError, match="another leaf"):
        back.verify(leaf_hash=leaf_hash(b"not it"))

    con = ConsistencyProof(30, 100, tree.root(30), tree.root(), tuple(tree.consistency_proof(30)))
    back_c = ConsistencyProof.from_dict(json.loads(json.dumps(con.to_dict())))
    assert back_c == con
    assert set(con.to_dict()) == {"first", "second", "first_root", "second_root", "proof"}
    back_c.verify()
    back_c.verify(tree.root(30), tree.root())
    with pytest.raises(ProofError, match="another first root"):
        back_c.verify(tree.root(31))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"leaf_index": -1}, "integer >= 0"),
        ({"tree_size": "7"}, "integer >= 0"),
        ({"leaf_hash": "ab"}, "64 hex digits"),
        ({"root_hash": "zz" * 32}, "not hex"),
        ({"audit_path": "ab"}, "list of hex"),
        ({"audit_path": [1]}, r"audit_path\[0\]"),
    ],
)
def test_bad_proof_json_is_a_validation_error(
    tree: MerkleTree, change: dict[str, Any], match: str
) -> None:
    good = InclusionProof(1, 100, tree.leaf_hash(1), tuple(tree.inclusion_proof(1)), tree.root())
    with pytest.raises(ValidationError, match=match):
        InclusionProof.from_dict({**good.to_dict(), **change})


def test_proof_json_must_be_an_object_with_every_field() -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        ConsistencyProof.from_dict([1, 2])
    with pytest.raises(ValidationError, match="missing second_root, proof"):
        ConsistencyProof.from_dict({"first": 1, "second": 2, "first_root": "00" * 32})
