"""RFC 9162 §2.1.1 hashing: the leaf and interior-node hashes of the Merkle tree.

Domain separation (``0x00`` before a leaf, ``0x01`` before two children) keeps a
leaf from ever being mistaken for an interior node, so no second preimage can be
built by presenting a node as if it were an entry.
"""

from __future__ import annotations

import hashlib
from typing import Final

from ..errors import ValidationError

__all__ = ["EMPTY_ROOT", "HASH_SIZE", "check_hash", "leaf_hash", "node_hash"]

#: Every hash in the tree is a SHA-256 digest.
HASH_SIZE: Final = 32
#: MTH({}): the root of the empty tree, SHA-256 of the empty string.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_LEAF: Final = b"\x00"
_NODE: Final = b"\x01"


def leaf_hash(entry: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 ‖ d): the hash of one entry, the tree's leaf."""
    return _sha256(_LEAF + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right): an interior node over two subtree hashes."""
    return _sha256(_NODE + left + right).digest()


def check_hash(value: object, name: str) -> bytes:
    """``value`` as a 32-byte hash, or a :class:`ValidationError` naming ``name``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise ValidationError(f"{name} must be {HASH_SIZE} bytes, got {type(value).__name__}")
    data = bytes(value)
    if len(data) != HASH_SIZE:
        raise ValidationError(f"{name} must be {HASH_SIZE} bytes (SHA-256), got {len(data)}")
    return data
