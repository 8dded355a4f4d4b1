"""Applying a retention plan: the walk, the link checks, the receipts, the removal.

The order is what makes it safe (see :mod:`eventvault.retention.receipts`):

1. walk the stored events up to the highest cut, collecting the runs that go and
   checking each removed event's own chain link (damage is never laundered);
2. append the receipt(s) naming every run — the intent, durable before anything
   is removed;
3. let the backend remove the runs, newest first, each step atomic.

An apply that was interrupted leaves runs its receipts claimed still (partly)
stored. The next apply finishes those first, under the receipts that claimed
them, and only then claims new runs: so no event is ever claimed by two receipts
(the receipts' counts add up to what was removed), and however often applies are
interrupted, the oldest claims are finished before newer ones are started.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from ..errors import CorruptionError
from ..integrity.bridges import GENESIS_HEX, Bridges, BridgeWalker
from ..integrity.chain import GENESIS, LEAF, bridge, record_hash
from ..model import ExpectedRevision, Query, RecordedEvent
from ..spi import require_retaining
from .plan import EventHead, RetentionPlan, RetentionReport
from .policy import RECEIPT_TYPE, Policy
from .receipts import Run, RunCollector, RunIndex, receipts_for

if TYPE_CHECKING:
    from ..store import EventStore, ProgressCallback

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
    return _apply(store, plan, policy, progress, started=started, finish=True)


def _apply(
    store: EventStore,
    plan: RetentionPlan,
    policy: Policy,
    progress: ProgressCallback | None,
    *,
    started: float,
    finish: bool,
) -> RetentionReport:
    retaining = require_retaining(store.backend)
    removes = plan.removes(policy)
    collector = RunCollector()
    total = plan.count
    stored_receipts = list(store.iter(Query(types=[RECEIPT_TYPE], limit=1000)))
    walker = Bridges(store.store_id).add_all(stored_receipts).walker()
    claims = _claims(store, stored_receipts) if finish else []
    claimed = RunIndex(_merged([run for _, run in claims])) if claims else None
    pending: list[EventHead] = []  # stored events earlier receipts claimed
    prev_position, prev_hash = 0, GENESIS_HEX
    links: list[_Link] = []
    chained_to: dict[int, str] = {}  # first position of each run -> the hash it chains to
    high = max([removes.max_cut, *(run.last for _, run in claims)])
    for ev in retaining.walk_heads(high + 1):
        if claimed is not None and claimed(ev.position):
            pending.append(ev)
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
    if pending:
        # Finish what earlier receipts claimed first, under those receipts; then plan
        # the rest afresh (what was just walked still held the claimed events).
        finished = _finish_claims(store, claims, pending, progress, total)
        rest = _apply(store, plan, policy, progress, started=started, finish=False)
        return msgspec.structs.replace(
            rest, removed=rest.removed + finished, seconds=time.monotonic() - started
        )
    _check_links(store, links, walker, chained_to)
    runs = [msgspec.structs.replace(r, before_hash=chained_to[r.first]) for r in collector.finish()]
    if not runs:  # someone else removed them meanwhile
        return RetentionReport(plan=plan, removed=0, runs=0, receipt_positions=[], seconds=0.0)
    last = store.backend.read(Query(reverse=True, limit=1), 1)
    receipts = receipts_for(
        plan,
        runs,
        removed=collector.removed,
        max_event_bytes=store.max_event_bytes,
        head_hash=last[0].hash if last else None,
    )
    # A removal that is bound to fail (e.g. a missing privilege) must fail before a
    # receipt announces it — or every scheduled run would append another one.
    retaining.check_can_remove()
    # Intent first: once the receipts are durable, any prefix of the removal
    # leaves a store that verifies.
    written = store.backend.commit(receipts, ExpectedRevision.ANY)

    def removal_progress(done: int, _total: int | None) -> None:
        if progress is not None:
            progress(total // 2 + done // 2, total)

    retaining.remove_runs(runs, collector.tails, written, removal_progress)
    if progress is not None:
        progress(total, total)
    return RetentionReport(
        plan=plan,
        removed=collector.removed,
        runs=len(runs),
        receipt_positions=[r.position for r in written],
        seconds=time.monotonic() - started,
    )


def _claims(store: EventStore, receipts: list[RecordedEvent]) -> list[tuple[RecordedEvent, Run]]:
    """Every run this store's receipts claimed, with its receipt. (Receipts a copy
    brought from another store name that store's positions: not ours to finish.)"""
    out: list[tuple[RecordedEvent, Run]] = []
    for receipt in receipts:
        if receipt.data.get("store") != store.store_id:
            continue
        raw_runs: Any = receipt.data.get("runs")
        for raw in raw_runs if isinstance(raw_runs, list) else ():
            try:
                run = msgspec.convert(raw, Run)
            except msgspec.ValidationError:
                continue
            if 0 < run.first <= run.last < receipt.position:
                out.append((receipt, run))
    return out


def _finish_claims(
    store: EventStore,
    claims: list[tuple[RecordedEvent, Run]],
    pending: list[EventHead],
    progress: ProgressCallback | None,
    total: int,
) -> int:
    """Remove the ``pending`` events (still stored, inside claimed runs) under the
    receipts that claimed them; return how many went."""
    positions = [ev.position for ev in pending]
    runs: list[Run] = []
    owners: dict[int, RecordedEvent] = {}
    for receipt, run in claims:  # oldest receipt first
        lo = bisect_left(positions, run.first)
        if lo < len(positions) and positions[lo] <= run.last and not _overlaps(runs, run):
            # (Receipts written before this rule may claim a run twice, overlapping:
            # such leftovers are claimed anew by the pass that follows.)
            runs.append(run)
            owners[receipt.position] = receipt
    if not runs:
        return 0
    inside = RunIndex(runs)
    going = [ev for ev in pending if inside(ev.position)]
    tails: dict[str, int] = {}
    for ev in going:
        if tails.get(ev.stream, -1) < ev.stream_revision:
            tails[ev.stream] = ev.stream_revision
    retaining = require_retaining(store.backend)
    retaining.check_can_remove()

    def finishing(done: int, _total: int | None) -> None:
        if progress is not None:
            progress(min(done, total), total)

    retaining.remove_runs(runs, tails, list(owners.values()), finishing)
    return len(going)


def _overlaps(runs: list[Run], run: Run) -> bool:
    return any(r.first <= run.last and run.first <= r.last for r in runs)


def _merged(runs: list[Run]) -> list[Run]:
    """Disjoint runs covering the same positions (for a :class:`RunIndex`)."""
    out: list[Run] = []
    for run in sorted(runs, key=lambda r: r.first):
        if out and run.first <= out[-1].last:
            if run.last > out[-1].last:
                out[-1] = msgspec.structs.replace(out[-1], last=run.last)
        else:
            out.append(run)
    return out


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
    whole = require_retaining(store.backend).whole([link.head for link in links])
    hashes = store.hash_format
    fresh: list[Bridges] = []

    def now() -> Bridges:
        """The receipts as they are now. Another apply (another process) may have
        removed a gap's events since ours were read; its receipts, durable before any
        removal, then record them."""
        if not fresh:
            receipts = store.iter(Query(types=[RECEIPT_TYPE], limit=1000))
            fresh.append(Bridges(store.store_id).add_all(receipts))
        return fresh[0]

    for ev, link in zip(whole, links, strict=True):
        q = link.prev_position
        gap = ev.position > q + 1
        to: str | None = link.prev_hash
        if hashes == LEAF:
            # A leaf hash vouches for its event alone; the gap before it must be one
            # receipts record, or removing the event would make the gap look recorded.
            if record_hash(GENESIS, ev, LEAF).hex() != ev.hash or (
                gap and not walker.covers(q, ev.position) and not now().covers(q, ev.position)
            ):
                to = None
        elif record_hash(bytes.fromhex(link.prev_hash), ev, hashes).hex() != ev.hash:
            across = bridge(walker, q, ev, link.mark)
            if across is None and gap:
                across = bridge(now().walker(), q, ev)
            to = across[2] if across is not None else None
        if to is None:
            raise CorruptionError(
                f"refusing to apply retention: the store's hashes are broken at position "
                f"{ev.position}, which the plan would remove; run 'eventvault verify' and "
                "investigate first"
            )
        if link.starts_run:
            chained_to[ev.position] = to
    links.clear()
