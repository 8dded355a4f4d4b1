"""A transparency log: an RFC 9162 Merkle tree, its proofs, and signed checkpoints.

The pieces, each usable alone:

* :mod:`~eventvault.tlog.hashing` — leaf and node hashes (RFC 9162 §2.1.1);
* :mod:`~eventvault.tlog.layout` — where each hash is stored, so that an append
  writes ``O(1)`` hashes on average and a proof reads ``O(log n)``;
* :mod:`~eventvault.tlog.storage`, :mod:`~eventvault.tlog.filestore` — the
  storage protocol, in memory and in an append-only file;
* :mod:`~eventvault.tlog.tree` — :class:`MerkleTree`, an appendable tree over a store;
* :mod:`~eventvault.tlog.proofs` — inclusion and consistency proofs, built and
  checked as RFC 9162 §2.1.3–§2.1.4 specify;
* :mod:`~eventvault.tlog.checkpoint`, :mod:`~eventvault.tlog.note` — C2SP
  ``tlog-checkpoint`` bodies in C2SP ``signed-note`` s with Ed25519 keys;
* :mod:`~eventvault.tlog.witness` — a C2SP ``tlog-witness`` that co-signs
  (``tlog-cosignature``) only checkpoints extending the last one it co-signed.

Importing this package needs nothing beyond the core; signing and verifying notes
need the ``audit`` extra (``pip install 'eventvault[audit]'``).
"""

from __future__ import annotations

from .checkpoint import Checkpoint, check_extends, open_checkpoint, sign_checkpoint
from .filestore import FileHashStore
from .hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from .layout import (
    leaf_count,
    perfect_subtrees,
    split_stored_hash_index,
    stored_hash_count,
    stored_hash_index,
)
from .note import (
    InvalidSignatureError,
    Note,
    NoteError,
    NoteSigner,
    NoteVerifier,
    Signature,
    UnverifiedNoteError,
    key_id,
    open_note,
    read_key_file,
    sign_note,
    write_key_file,
)
from .proofjson import ConsistencyProof, InclusionProof
from .proofs import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    root_from_inclusion_proof,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)
from .storage import HashReader, HashStore, HashWriter, MemoryHashStore
from .tree import MerkleTree, TruncatableHashStore

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "ConsistencyProof",
    "FileHashStore",
    "HashReader",
    "HashStore",
    "HashWriter",
    "InclusionProof",
    "InvalidSignatureError",
    "MemoryHashStore",
    "MerkleTree",
    "Note",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "Signature",
    "TruncatableHashStore",
    "UnverifiedNoteError",
    "check_extends",
    "consistency_proof",
    "inclusion_proof",
    "key_id",
    "leaf_count",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "perfect_subtrees",
    "read_key_file",
    "root_from_inclusion_proof",
    "sign_checkpoint",
    "sign_note",
    "split_stored_hash_index",
    "stored_hash_count",
    "stored_hash_index",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
    "write_key_file",
]
