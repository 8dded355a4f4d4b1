"""Applying a retention plan: the walk, the link checks, the receipts, the removal.

The order is what makes it safe (see :mod:`eventvault.retention_plan`):

1. walk the stored events up to the highest cut, collecting the runs that go and
   checking each removed event's own chain link (damage is never laundered);
2. append the receipt(s) naming every run — the intent, durable before anything
   is removed;
3. let the backend remove the runs, newest first, each step atomic.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from .chain import bridge, record_hash
from .errors import CorruptionError
from .model import ExpectedRevision, Query
from .retention import RECEIPT_TYPE, Policy
from .retention_plan import (
    GENESIS_HEX,
    Bridges,
    BridgeWalker,
    EventHead,
    RetentionPlan,
    RetentionReport,
    RunCollector,
    receipts_for,
)

if TYPE_CHECKING:
    from .store import EventStore, ProgressCallback

__all__ = ["apply_plan"]

#: Removed events whose links are checked per round trip (backends fetch them whole).
_LINK_BATCH = 2000


def apply_plan(
    store: EventStore,
    plan: RetentionPlan,
    policy: Policy,
    progress: ProgressCallback | None,
    *,
    started: float,
) -> RetentionReport:
    """Carry out ``plan`` (already checked against ``store`` and ``policy``)."""
    removes = plan.removes(policy)
    collector = RunCollector()
    total = plan.count
    walker = (
        Bridges(store.store_id)
        .add_all(store.iter(Query(types=[RECEIPT_TYPE], limit=1000)))
        .walker()
    )
    prev_position, prev_hash = 0, GENESIS_HEX
    links: list[_Link] = []
    chained_to: dict[int, str] = {}  # first position of each run -> the hash it chains to
    for ev in store._walk_heads(removes.max_cut + 1):
        goes = removes(ev)
        if goes:
            links.append(_Link(ev, prev_hash, prev_position, walker.mark(), collector.starts_run))
            if len(links) >= _LINK_BATCH:
                _check_links(store, links, walker, chained_to)
        collector.add(ev, goes, root=goes and walker.is_root(ev.hash))
        walker.walked(ev.hash)
        prev_position, prev_hash = ev.position, ev.hash
        if progress is not None and collector.removed % 20000 == 0 and collector.removed:
            progress(collector.removed // 2, total)
    _check_links(store, links, walker, chained_to)
    runs = [msgspec.structs.replace(r, before_hash=chained_to[r.first]) for r in collector.finish()]
    if not runs:  # someone else removed them meanwhile
        return RetentionReport(plan=plan, removed=0, runs=0, receipt_positions=[], seconds=0.0)
    last = store._read(Query(reverse=True, limit=1), 1)
    receipts = receipts_for(
        plan,
        runs,
        removed=collector.removed,
        max_event_bytes=store.max_event_bytes,
        head_hash=last[0].hash if last else None,
    )
    # A removal that is bound to fail (e.g. a missing privilege) must fail before a
    # receipt announces it — or every scheduled run would append another one.
    store._check_can_remove()
    # Intent first: once the receipts are durable, any prefix of the removal
    # leaves a store that verifies.
    written = store._append(receipts, ExpectedRevision.ANY)

    def removal_progress(done: int, _total: int | None) -> None:
        if progress is not None:
            progress(total // 2 + done // 2, total)

    store._remove_runs(runs, collector.tails, written, removal_progress)
    if progress is not None:
        progress(total, total)
    return RetentionReport(
        plan=plan,
        removed=collector.removed,
        runs=len(runs),
        receipt_positions=[r.position for r in written],
        seconds=time.monotonic() - started,
    )


class _Link(NamedTuple):
    """A removed event and what its chain link may be."""

    head: EventHead
    prev_hash: str  # the stored event before it
    prev_position: int
    mark: int  # runs open at that point of the walk
    starts_run: bool


def _check_links(
    store: EventStore, links: list[_Link], walker: BridgeWalker, chained_to: dict[int, str]
) -> None:
    """Never launder damage: an event only goes once its own link in the chain checks
    out — to the stored event before it, or across a recorded hole (survivors are left
    to ``verify``). Records what each run's first event chains to. Empties ``links``."""
    whole = store._whole([link.head for link in links])
    for ev, link in zip(whole, links, strict=True):
        to: str | None = link.prev_hash
        if record_hash(bytes.fromhex(link.prev_hash), ev).hex() != ev.hash:
            across = bridge(walker, link.prev_position, ev, link.mark)
            to = across[2] if across is not None else None
        if to is None:
            raise CorruptionError(
                f"refusing to apply retention: the chain is broken at position "
                f"{ev.position}, which the plan would remove; run 'eventvault verify' and "
                "investigate first"
            )
        if link.starts_run:
            chained_to[ev.position] = to
    links.clear()
