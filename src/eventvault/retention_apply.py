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
from typing import TYPE_CHECKING

from .chain import GENESIS, record_hash
from .errors import CorruptionError
from .model import ExpectedRevision, Query
from .retention import RECEIPT_TYPE, Policy
from .retention_plan import (
    Bridges,
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
    bridges = Bridges().add_all(store.iter(Query(types=[RECEIPT_TYPE], limit=1000)))
    prev_position, prev_hash = 0, GENESIS.hex()
    links: list[tuple[EventHead, str]] = []  # (event that goes, hash it chains to)
    for ev in store._walk_heads(removes.max_cut + 1):
        goes = removes(ev)
        if goes:
            hole = bridges.between(prev_position, ev.position)
            links.append((ev, hole[1] if hole is not None else prev_hash))
            if len(links) >= _LINK_BATCH:
                _check_links(store, links)
        collector.add(ev, goes)
        prev_position, prev_hash = ev.position, ev.hash
        if progress is not None and collector.removed % 20000 == 0 and collector.removed:
            progress(collector.removed // 2, total)
    _check_links(store, links)
    runs = collector.finish()
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


def _check_links(store: EventStore, links: list[tuple[EventHead, str]]) -> None:
    """Never launder damage: an event only goes once its own link in the chain checks
    out (survivors are left to ``verify``). Empties ``links``."""
    whole = store._whole([head for head, _ in links])
    for ev, (_, prev) in zip(whole, links, strict=True):
        if record_hash(bytes.fromhex(prev), ev).hex() != ev.hash:
            raise CorruptionError(
                f"refusing to apply retention: the chain is broken at position "
                f"{ev.position}, which the plan would remove; run 'eventvault verify' and "
                "investigate first"
            )
    links.clear()
