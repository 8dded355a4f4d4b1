"""``store.verify()``: one walk over every stored event, checking everything it can.

What each check finds, and what it cannot:

* **The hash chain** (:func:`~eventvault.integrity.chain.verify_chain`): a changed
  byte anywhere, named by position; holes nothing accounts for. Not a rewrite that
  recomputed every later hash (the algorithm is public, nothing is secret).
* **The kept head** (:func:`check_kept_head`): the newest events cut away when the
  backend keeps its head apart from the events (the file store's commit markers,
  PostgreSQL's ``head`` row) — unless whoever cut them also rewrote the head.
* **The Merkle tree** (:class:`~eventvault.integrity.treecheck.TreeCheck`, on a
  :class:`~eventvault.spi.Proving` backend): every stored tree hash regenerated from
  the events, so a changed event is found even when its chain was recomputed —
  unless the tree was recomputed too; leaves whose events are gone from the end.
* **Signed checkpoints** (``checkpoints=``): the regenerated root at each
  checkpoint's size must be the one the checkpoint's key signed, and the current
  tree must extend it (a consistency proof). This is the check no one without the
  signing key can defeat: removed, changed, inserted events and a replaced (forked)
  store all give another root at a size a verifier saw signed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import msgspec

from ..errors import CorruptionError
from ..model import Query, RecordedEvent, VerifyResult
from ..retention import RECEIPT_TYPE
from ..spi import ProgressCallback, Proving, require_proving
from ..tlog.checkpoint import Checkpoint
from .bridges import Bridges
from .chain import GENESIS, WalkFailure, verify_chain
from .treecheck import TreeCheck

if TYPE_CHECKING:
    from ..store import EventStore

__all__ = ["check_kept_head", "verify_store"]


def verify_store(
    store: EventStore,
    *,
    progress: ProgressCallback | None = None,
    checkpoints: Sequence[Checkpoint] = (),
) -> VerifyResult:
    """See :meth:`eventvault.EventStore.verify` and the module docstring."""
    backend = store.backend
    if checkpoints:
        require_proving(backend)
    # The head the backend keeps, read first: the walk must reach it (appends
    # that commit meanwhile only add events after it).
    kept = backend.head_state()
    tree = TreeCheck(backend, checkpoints) if isinstance(backend, Proving) else None
    bridges = Bridges(store.store_id).add_all(store.iter(Query(types=[RECEIPT_TYPE], limit=1000)))
    total = store.stats().events  # (not the head: positions may have gaps)
    hashes = store.hash_format
    last: list[RecordedEvent] = []  # the newest event walked
    at_head: list[str] = []  # the hash of the event at the kept head's position

    def walk(before: int | None = None) -> Iterator[RecordedEvent]:
        newest = None
        for done, ev in enumerate(store.iter(Query(before=before, limit=5000)), 1):
            yield ev
            newest = ev
            if kept is not None and ev.position == kept[0]:
                at_head.append(ev.hash)
            if progress is not None and done % 5000 == 0:
                progress(done, total)
        if newest is not None:
            last.append(newest)

    def chain(before: int | None = None, with_tree: bool = True) -> VerifyResult:
        return verify_chain(
            walk(before),
            start=GENESIS,
            bridges=bridges.walker(),
            receipts=bridges.receipts,
            contiguous=store.contiguous_positions,
            on_event=tree.event if tree is not None and with_tree else None,
            hashes=hashes,
        )

    try:
        result = chain()
    except CorruptionError as exc:
        # A backend (or a server in front of one) refused to return a record it
        # cannot show intact, naming its position: that is where the chain
        # breaks. Verify what comes before it, then report it as the first bad.
        bad = getattr(exc, "position", None)
        if type(bad) is not int:
            raise
        last.clear()
        prefix = chain(before=bad, with_tree=False)
        if not prefix.ok:
            return prefix
        return VerifyResult(
            ok=False,
            checked=prefix.checked,
            head_hash=None,
            first_bad_position=bad,
            reason=str(exc),
            checkpoint_position=prefix.checkpoint_position,
            bridged=prefix.bridged,
            receipts=prefix.receipts,
            last_good_hash=prefix.head_hash,
        )
    if result.ok and kept is not None:
        result = check_kept_head(result, kept, at_head, last[0] if last else None)
    if result.ok and tree is not None:
        result = _finish_tree(result, tree, last[0] if last else None)
    if progress is not None:
        progress(result.checked, total)
    return result


def _finish_tree(
    result: VerifyResult, tree: TreeCheck, newest: RecordedEvent | None
) -> VerifyResult:
    try:
        tree.finish(newest.position if newest is not None else None)
    except WalkFailure as exc:
        return msgspec.structs.replace(
            result,
            ok=False,
            head_hash=None,
            first_bad_position=exc.position,
            reason=exc.reason,
            tree_size=tree.size,
            checkpoints_checked=tree.checkpoints_checked,
        )
    return msgspec.structs.replace(
        result,
        tree_size=tree.size,
        tree_root=tree.root().hex(),
        checkpoints_checked=tree.checkpoints_checked,
    )


def check_kept_head(
    result: VerifyResult,
    kept: tuple[int, str | None],
    at_head: list[str],
    newest: RecordedEvent | None,
) -> VerifyResult:
    """A chain that verifies may still have lost its *newest* events (a tail cut
    leaves a valid prefix). The head a backend keeps apart says where the log
    ends: the event it names must be stored, with the hash it names — or have been
    removed by retention with later events chained across the hole."""
    position, digest = kept
    if position == 0:
        return result
    if at_head:
        if at_head[0] == digest:
            return result
        reason = (
            f"the store's head names event {position} with hash {digest}, but the "
            f"stored event {position} has hash {at_head[0]}"
        )
    elif newest is not None and newest.position > position:
        return result  # removed by retention; the walk chained past it through a receipt
    else:
        shown = "no events" if newest is None else f"events up to position {newest.position}"
        reason = (
            f"the store's head says the newest event is position {position}, but it holds "
            f"{shown}: the newest events were removed behind the store's back (restore "
            "them from a backup or a copy)"
        )
    return msgspec.structs.replace(
        result,
        ok=False,
        first_bad_position=(newest.position + 1) if newest is not None else 1,
        reason=reason,
    )
