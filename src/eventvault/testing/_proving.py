"""The Merkle tree, the same on every :class:`~eventvault.spi.Proving` backend.

Roots and proofs are checked against :mod:`eventvault.testing._rfc9162`, a direct
transcription of RFC 9162 §2.1's recursive definitions over the events' leaf hashes
(recomputed here from the events' fields) — code that shares nothing with the tree
the backends keep or with :mod:`eventvault.tlog`'s iterative verifiers.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import ClassVar

import pytest

from ..copy import copy_store
from ..errors import EventNotFoundError, NotSupportedError, ValidationError
from ..integrity.chain import event_leaf_hash
from ..model import NewEvent, Query, RecordedEvent
from ..spi import Proving
from ..store import EventStore
from ..tlog import EMPTY_ROOT, Checkpoint, NoteSigner, open_checkpoint
from ._base import ContractBase, Stores, can_retain, ev, mixed
from ._rfc9162 import mth, path, proof

__all__ = ["ProvingContract"]


def _events(store: EventStore) -> list[RecordedEvent]:
    return list(store.iter(Query(limit=1000)))


def _leaves(store: EventStore) -> list[bytes]:
    return [event_leaf_hash(e) for e in _events(store)]


class ProvingContract(ContractBase):
    """For a backend that keeps the Merkle tree (``store.log``)."""

    #: Sizes whose proofs are compared exhaustively (RFC 9162's edge cases among them).
    sizes: ClassVar[tuple[int, ...]] = (1, 2, 3, 4, 5, 7, 8, 9, 16, 17)

    def _proving(self, store: EventStore) -> Proving:
        assert isinstance(store.backend, Proving), f"{store.backend.name} is not Proving"
        return store.backend

    def test_an_empty_store_has_the_empty_tree(self, store: EventStore) -> None:
        self._proving(store)
        assert store.log.state().size == 0
        assert store.log.root() == EMPTY_ROOT == mth([])
        result = store.verify()
        assert result.ok
        assert result.tree_size == 0

    def test_every_append_is_a_leaf_in_order(self, store: EventStore) -> None:
        store.append(ev("a"))
        store.append([ev("b"), ev("c"), ev("d")])
        store.append(mixed(13))
        leaves = _leaves(store)
        assert store.log.state().size == len(leaves) == 17 == store.head()
        assert store.log.root() == mth(leaves)
        for size in self.sizes:
            assert store.log.root(size) == mth(leaves[:size]), size
        result = store.verify()
        assert result.ok, result.reason
        assert result.tree_size == 17
        assert result.tree_root == mth(leaves).hex()

    def test_a_retried_batch_adds_no_leaf(self, store: EventStore) -> None:
        batch = [ev("a"), ev("b")]
        store.append(batch)
        store.append(batch)  # idempotent retry: stored already
        assert store.log.state().size == 2

    def test_inclusion_proofs_are_the_rfc_audit_paths(self, store: EventStore) -> None:
        store.append(mixed(17))
        events = _events(store)
        leaves = [event_leaf_hash(e) for e in events]
        for size in self.sizes:
            for i in range(size):
                p = store.log.inclusion_proof(events[i].id, size=size)
                assert (p.leaf_index, p.tree_size) == (i, size)
                assert p.leaf_hash == leaves[i]
                assert list(p.audit_path) == path(i, leaves[:size]), (i, size)
                assert p.root_hash == mth(leaves[:size])
                p.verify(root_hash=mth(leaves[:size]), leaf_hash=leaves[i])
        whole = store.log.inclusion_proof(str(events[5].id))  # ids as text too
        assert whole.tree_size == 17

    def test_consistency_proofs_are_the_rfc_proofs(self, store: EventStore) -> None:
        store.append(mixed(17))
        leaves = _leaves(store)
        for second in self.sizes:
            for first in range(1, second + 1):
                c = store.log.consistency_proof(first, second)
                assert list(c.proof) == proof(first, leaves[:second]), (first, second)
                assert c.first_root == mth(leaves[:first])
                assert c.second_root == mth(leaves[:second])
                c.verify()

    def test_bad_proof_requests_are_refused_clearly(self, store: EventStore) -> None:
        store.append(mixed(3))
        events = _events(store)
        with pytest.raises(EventNotFoundError):
            store.log.inclusion_proof("00000000-0000-4000-8000-000000000000")
        with pytest.raises(ValidationError, match="tree size"):
            store.log.inclusion_proof(events[0].id, size=4)
        with pytest.raises(ValidationError, match="not in the tree of size 1"):
            store.log.inclusion_proof(events[2].id, size=1)
        with pytest.raises(ValidationError):
            store.log.consistency_proof(2, 9)
        with pytest.raises(ValidationError):
            store.log.consistency_proof(3, 2)
        with pytest.raises(ValidationError):
            store.log.root(-1)

    def test_concurrent_appends_keep_tree_and_positions_in_step(self, store: EventStore) -> None:
        def work(k: int) -> None:
            for i in range(20):
                store.append([ev("w", data={"k": k, "i": i}), ev("w", data={"k": k})])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        leaves = _leaves(store)
        assert store.log.state().size == len(leaves) == 160
        assert store.log.root() == mth(leaves)
        assert store.verify().ok

    def test_checkpoints_sign_the_root_and_verify_checks_them(self, store: EventStore) -> None:
        signer = NoteSigner.generate("eventvault.test/contract")
        store.append(mixed(5))
        note = store.log.checkpoint(signer, save=True)
        store.append(mixed(6))
        cp = open_checkpoint(note, [signer.verifier()], origin=signer.name)
        assert (cp.size, cp.root_hash) == (5, mth(_leaves(store)[:5]))
        assert store.log.latest_checkpoint() == note
        result = store.verify(checkpoints=[cp])
        assert result.ok, result.reason
        assert result.checkpoints_checked == 1
        forged = Checkpoint(signer.name, 5, bytes(32))
        bad = store.verify(checkpoints=[forged])
        assert not bad.ok
        assert "rewritten" in (bad.reason or "")
        ahead = Checkpoint(signer.name, 12, mth(_leaves(store)))
        bad = store.verify(checkpoints=[ahead])
        assert not bad.ok
        assert "removed" in (bad.reason or "")

    def test_the_tree_survives_reopening(self, stores: Stores) -> None:
        store = stores.new()
        store.append(mixed(9))
        root = store.log.root()
        again = stores.reopen(store)
        assert again.log.state().size == 9
        assert again.log.root() == root
        again.append(ev("more"))
        assert again.log.root() == mth(_leaves(again))
        assert again.verify().ok

    def test_a_copy_has_the_same_root(self, stores: Stores) -> None:
        src = stores.new()
        src.append(mixed(11))
        dst = stores.new()
        try:
            copy_store(src, dst)
        except NotSupportedError:
            pytest.skip("this backend takes no copied events")
        assert dst.log.root() == src.log.root()

    def test_retention_keeps_every_leaf(self, store: EventStore) -> None:
        if not can_retain(store):
            pytest.skip("this backend applies no retention")
        from ..config import RetentionConfig, RetentionRule
        from ..retention import resolve_policy

        old = [NewEvent(type="noise.tick", data={"i": i}) for i in range(30)]
        store.append(old)
        store.append([ev("keep.me", data={"i": i}) for i in range(5)])
        before = _leaves(store)
        root = store.log.root()
        policy = resolve_policy(
            RetentionConfig(rules=[RetentionRule(types=["noise.*"], max_count=3)])
        )
        assert policy is not None
        store.apply_retention(
            policy=policy, now=_events(store)[-1].recorded_at + timedelta(seconds=1)
        )
        kept = _events(store)
        assert len(kept) < 35
        state = store.log.state()
        assert state.size >= 35  # leaves stay; receipts add more
        assert store.log.root(35) == root == mth(before)
        for e in kept:
            p = store.log.inclusion_proof(e.id)
            p.verify(leaf_hash=event_leaf_hash(e))
        result = store.verify()
        assert result.ok, result.reason
        assert result.tree_size == state.size

    def test_a_checkpoint_of_the_empty_tree_verifies_on_any_store(self, store: EventStore) -> None:
        self._proving(store)
        signer = NoteSigner.generate("eventvault.test/contract")
        empty = open_checkpoint(store.log.checkpoint(signer), [signer.verifier()])
        store.append(mixed(5000))  # (more than one block of the tree check)
        result = store.verify(checkpoints=[empty])
        assert result.ok, result.reason
        assert result.checkpoints_checked == 1
        forged = Checkpoint(signer.name, 0, bytes(32))
        bad = store.verify(checkpoints=[forged])
        assert not bad.ok
        assert "empty tree" in (bad.reason or "")

    def test_many_inclusion_proofs_at_once_are_the_same_proofs(self, store: EventStore) -> None:
        store.append(mixed(17))
        events = _events(store)
        leaves = [event_leaf_hash(e) for e in events]
        for size in (1, 7, 16, 17):
            batch = store.log.inclusion_proofs(events[:size], size=size)
            assert batch == [store.log.inclusion_proof(e, size=size) for e in events[:size]]
            for i, p in enumerate(batch):
                assert list(p.audit_path) == path(i, leaves[:size])
        assert store.log.inclusion_proofs([]) == []
        with pytest.raises(ValidationError, match="not in the tree of size 3"):
            store.log.inclusion_proofs(events[:5], size=3)
