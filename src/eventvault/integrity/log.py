"""``store.log``: a store seen as a transparency log.

Every event a :class:`~eventvault.spi.Proving` backend appends is a leaf of an RFC
9162 Merkle tree: leaf ``i`` is the event at position ``base + 1 + i`` (``base`` is 0
unless the store was upgraded after retention), its leaf hash ``SHA-256(0x00 ‖
canonical bytes)``. :class:`AuditLog` gives that tree's roots, the proofs an
outsider checks with any RFC 9162 verifier, and signed checkpoints::

    proof = store.log.inclusion_proof(event_id)          # against the whole tree
    proof.verify(root_hash=trusted_checkpoint.root_hash)  # raises ProofError if not
    note = store.log.checkpoint(signer)                   # a C2SP signed note

Proofs read ``O(log n)`` stored hashes; nothing here walks the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from ..boundary import guard_public_methods
from ..errors import EventNotFoundError, ValidationError
from ..model import RecordedEvent
from ..spi import Backend, Proving, TreeState, require_proving
from ..tlog.checkpoint import Checkpoint, sign_checkpoint
from ..tlog.layout import stored_hash_index
from ..tlog.note import NoteSigner
from ..tlog.proofjson import ConsistencyProof, InclusionProof
from ..tlog.proofs import consistency_proof, inclusion_proof, tree_hash

if TYPE_CHECKING:
    from ..store import EventStore

__all__ = ["AuditLog"]


class AuditLog:
    """The Merkle tree of one store (``store.log``). Raises
    :class:`~eventvault.errors.NotSupportedError` on a backend that keeps no tree."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    @property
    def backend(self) -> Backend:
        return self._store.backend

    def _tree(self) -> Proving:
        return require_proving(self._store.backend)

    def state(self) -> TreeState:
        """The tree's size (leaves) and base (the position before leaf 0)."""
        return self._tree().tree_state()

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the tree's first ``size`` leaves (default: all)."""
        tree = self._tree()
        current = tree.tree_state().size
        size = current if size is None else _size(size, current, "tree size")
        return tree_hash(tree, size)

    def leaf_index(self, event: RecordedEvent) -> int:
        """The leaf of ``event`` (a stored event); ValidationError if the tree does not
        cover it (before an upgraded store's tree began, or not yet added)."""
        state = self.state()
        index = event.position - 1 - state.base
        if not 0 <= index < state.size:
            where = "before the tree began" if index < 0 else "not in the tree yet"
            raise ValidationError(
                f"event {event.id} (position {event.position}) is {where}: the tree covers "
                f"positions {state.base + 1}..{state.base + state.size}"
            )
        return index

    def inclusion_proof(
        self, event: UUID | str | RecordedEvent, *, size: int | None = None
    ) -> InclusionProof:
        """Prove that ``event`` (an id, or a stored event) is a leaf of the tree of
        ``size`` leaves (default: the whole tree). The proof's ``leaf_hash`` is the one
        stored; whoever holds the event recomputes it from the event's canonical bytes
        (``eventvault.integrity.chain.event_leaf_hash``) and compares."""
        if not isinstance(event, RecordedEvent):
            found = self._store.get(event)
            if found is None:
                raise EventNotFoundError(f"no event with id {event} in this store")
            event = found
        return self.inclusion_proofs([event], size=size)[0]

    def inclusion_proofs(
        self, events: Sequence[RecordedEvent], *, size: int | None = None
    ) -> list[InclusionProof]:
        """:meth:`inclusion_proof` of each of ``events`` (stored events), against one
        tree size, reading every stored hash they need in **one** ``read_hashes``
        call (a bundle of 1,000 events: one round trip to a database, not 5,000)."""
        tree = self._tree()
        state = tree.tree_state()
        size = state.size if size is None else _size(size, state.size, "tree size")
        indexes = []
        for event in events:
            index = event.position - 1 - state.base
            if not 0 <= index < state.size:
                self.leaf_index(event)  # (raises, saying where the tree is)
            if index >= size:
                raise ValidationError(
                    f"event {event.id} is leaf {index}, not in the tree of size {size} "
                    f"(it was appended after the tree had {size} leaves)"
                )
            indexes.append(index)
        # Which stored hashes the proofs read depends on the sizes only: ask once
        # with placeholders, fetch them all, then build the proofs from memory.
        wanted = _Recorder()
        tree_hash(wanted, size)
        for index in indexes:
            wanted.read_hashes([stored_hash_index(0, index)])
            inclusion_proof(wanted, index, size)
        fetched = _Prefetched(tree, wanted.indexes)
        root = tree_hash(fetched, size)
        return [
            InclusionProof(
                index,
                size,
                fetched.read_hashes([stored_hash_index(0, index)])[0],
                tuple(inclusion_proof(fetched, index, size)),
                root,
            )
            for index in indexes
        ]

    def consistency_proof(self, first: int, second: int | None = None) -> ConsistencyProof:
        """Prove that the tree of ``second`` leaves (default: all) extends the tree of
        ``first``: nothing in the first ``first`` leaves was removed or changed."""
        tree = self._tree()
        current = tree.tree_state().size
        second = current if second is None else _size(second, current, "second tree size")
        first = _size(first, second, "first tree size")
        proof = consistency_proof(tree, first, second) if first else []
        return ConsistencyProof(
            first, second, tree_hash(tree, first), tree_hash(tree, second), tuple(proof)
        )

    def checkpoint(self, signer: NoteSigner, *, size: int | None = None, save: bool = False) -> str:
        """A C2SP ``tlog-checkpoint`` of the tree (default: all of it) in a signed note.

        Its origin is the signer's key name (C2SP: a log's key is named after its
        origin). ``save``: also keep it in the store (served at
        ``GET /v1/log/checkpoint``; see :meth:`latest_checkpoint`)."""
        tree = self._tree()
        current = tree.tree_state().size
        size = current if size is None else _size(size, current, "tree size")
        note = sign_checkpoint(Checkpoint(signer.name, size, tree_hash(tree, size)), [signer])
        if save:
            tree.save_checkpoint(size, note)
        return note

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint kept in the store (its signature unchecked: open it
        with :func:`eventvault.tlog.open_checkpoint` and the key you trust)."""
        return self._tree().latest_checkpoint()


class _Recorder:
    """A hash reader that only notes which stored hashes are asked for."""

    def __init__(self) -> None:
        self.indexes: set[int] = set()

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        self.indexes.update(indexes)
        return [_PLACEHOLDER] * len(indexes)


class _Prefetched:
    """The stored hashes at ``indexes``, read in one call, served from memory."""

    def __init__(self, tree: Proving, indexes: set[int]) -> None:
        ordered = sorted(indexes)
        self._hashes = dict(zip(ordered, tree.read_hashes(ordered), strict=True))

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return [self._hashes[i] for i in indexes]


_PLACEHOLDER = bytes(32)


def _size(size: int, limit: int, name: str) -> int:
    if type(size) is not int or not 0 <= size <= limit:
        raise ValidationError(f"{name} must be an integer from 0 to {limit}, got {size!r}")
    return size


guard_public_methods(AuditLog)
