"""Proofs as the JSON objects the HTTP API, the CLI and audit bundles exchange.

::

    {"leaf_index": 3, "tree_size": 7, "leaf_hash": "<hex>",
     "audit_path": ["<hex>", ...], "root_hash": "<hex>"}

    {"first": 3, "second": 7, "first_root": "<hex>", "second_root": "<hex>",
     "proof": ["<hex>", ...]}

Hashes are lowercase hex; the lists are in RFC 9162 order. Parsing checks every
field's type and every hash's length (a :class:`~eventvault.errors.ValidationError`
naming the field) and :meth:`verify` then checks the proof itself — but only the
caller knows which root to *trust*: pass it, never take the one inside the proof.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ValidationError
from .hashing import HASH_SIZE
from .proofs import ProofError, verify_consistency, verify_inclusion

__all__ = ["ConsistencyProof", "InclusionProof"]


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if type(value) is not int or value < 0:
        raise ValidationError(f"proof field {key!r} must be an integer >= 0, got {value!r}")
    return value


def _hash(value: object, key: str) -> bytes:
    if type(value) is not str or len(value) != 2 * HASH_SIZE:
        raise ValidationError(f"proof field {key!r} must be {2 * HASH_SIZE} hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValidationError(f"proof field {key!r} is not hex") from None


def _hashes(obj: Mapping[str, Any], key: str) -> tuple[bytes, ...]:
    value = obj.get(key)
    if type(value) is not list:
        raise ValidationError(f"proof field {key!r} must be a list of hex hashes")
    return tuple(_hash(v, f"{key}[{i}]") for i, v in enumerate(value))


def _check_keys(obj: object, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ValidationError(f"a proof must be a JSON object, got {type(obj).__name__}")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValidationError(f"proof is missing {', '.join(missing)}")
    return obj


def _trusted(given: bytes | None, claimed: bytes, what: str) -> bytes:
    if given is None:
        return claimed
    if given != claimed:
        raise ProofError(f"the proof is for another {what} than the one trusted")
    return given


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Leaf ``leaf_index`` of the tree of ``tree_size`` has ``leaf_hash``."""

    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: tuple[bytes, ...]
    root_hash: bytes

    KEYS = ("leaf_index", "tree_size", "leaf_hash", "audit_path", "root_hash")

    def to_dict(self) -> dict[str, Any]:
        return {
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "audit_path": [h.hex() for h in self.audit_path],
            "root_hash": self.root_hash.hex(),
        }

    @classmethod
    def from_dict(cls, obj: object) -> InclusionProof:
        d = _check_keys(obj, cls.KEYS)
        return cls(
            _int(d, "leaf_index"),
            _int(d, "tree_size"),
            _hash(d["leaf_hash"], "leaf_hash"),
            _hashes(d, "audit_path"),
            _hash(d["root_hash"], "root_hash"),
        )

    def verify(self, root_hash: bytes | None = None, leaf_hash: bytes | None = None) -> None:
        """Check the path; ``root_hash`` (from a verified checkpoint) and ``leaf_hash``
        (recomputed from the event) must match the proof's own if given."""
        root = _trusted(root_hash, self.root_hash, "root")
        leaf = _trusted(leaf_hash, self.leaf_hash, "leaf")
        verify_inclusion(self.leaf_index, self.tree_size, leaf, self.audit_path, root)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree of size ``second`` extends the tree of size ``first``."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    proof: tuple[bytes, ...]

    KEYS = ("first", "second", "first_root", "second_root", "proof")

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "proof": [h.hex() for h in self.proof],
        }

    @classmethod
    def from_dict(cls, obj: object) -> ConsistencyProof:
        d = _check_keys(obj, cls.KEYS)
        return cls(
            _int(d, "first"),
            _int(d, "second"),
            _hash(d["first_root"], "first_root"),
            _hash(d["second_root"], "second_root"),
            _hashes(d, "proof"),
        )

    def verify(self, first_root: bytes | None = None, second_root: bytes | None = None) -> None:
        """Check the proof; the roots given (from verified checkpoints) must match."""
        old = _trusted(first_root, self.first_root, "first root")
        new = _trusted(second_root, self.second_root, "second root")
        verify_consistency(self.first, self.second, old, new, self.proof)
