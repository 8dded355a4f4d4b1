"""Removal runs and the receipts that record them (every backend's).

Receipts and the chain across holes
-----------------------------------
Removing events leaves holes in the hash chain. Before removing anything, apply
checks the chain link of every event it will remove (so no earlier damage is
laundered into a recorded hole), then appends a receipt
(``eventvault.retention.applied``) listing the *runs* it will remove — maximal
sequences of stored events, each with the hash of its last event and the stored
event just before it. ``verify`` bridges a hole before a surviving event ``s``
only with the hash recorded for a run end between the previous survivor and
``s``, and only if recorded runs account for the whole hole (see
:class:`eventvault.integrity.bridges.Bridges`); any other hole still breaks the chain
(that is tampering).

Backends remove runs **newest first**, each step atomic. Whatever instant a crash
hits, a run is then either whole, gone, or cut down to its older part — and every
one of those states verifies, because the run's recorded end hash is exactly what
the next surviving event chains to.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..model import NewEvent
from .plan import EventHead, RetentionPlan
from .policy import RECEIPT_TYPE

__all__ = ["RECEIPT_STREAM", "Run", "RunCollector", "RunIndex", "receipts_for"]

#: The stream receipts are appended to.
RECEIPT_STREAM = "eventvault.retention"
#: Room a receipt keeps for everything but its runs.
_RECEIPT_OVERHEAD = 32 * 1024
#: Generous size of one encoded run (``[first, last, count, "64 hex"]``).
_RUN_BYTES = 200
_ROOT_BYTES = 70


class Run(msgspec.Struct, frozen=True, array_like=True):
    """Stored events ``first..last`` (every stored one in between), all removed.

    ``before``: the stored event just before the run when it was removed (0: none).
    ``before_hash``: the hash ``first`` chains to — that event's hash, or across an
    older hole the recorded hash of the event removed there. It makes the bridge
    position-free, so a copy that numbers positions differently still verifies.
    (Receipts written before it existed have five elements; see :class:`Bridges`.)
    ``roots``: hashes of events in the run that older runs start after — the older
    part of a run an interrupted apply left behind, removed now. The hole then
    reaches past this run's end, to those runs' ends.
    """

    first: int
    last: int
    count: int
    last_hash: str
    before: int
    before_hash: str = ""
    roots: list[str] = msgspec.field(default_factory=list)


class RunIndex:
    """``position in runs`` in O(log runs) (runs are disjoint and sorted)."""

    def __init__(self, runs: Sequence[Run]) -> None:
        ordered = sorted(runs, key=lambda r: r.first)
        self._firsts = [r.first for r in ordered]
        self._lasts = [r.last for r in ordered]

    def __call__(self, position: int) -> bool:
        i = bisect.bisect_right(self._firsts, position) - 1
        return i >= 0 and position <= self._lasts[i]


@dataclass(slots=True)
class RunCollector:
    """Builds the runs a plan removes from the stored events, in position order.

    Also keeps, per stream, the last revision removed (so revisions survive
    removal) and how many events and bytes go.
    """

    runs: list[Run] = field(default_factory=list)
    tails: dict[str, int] = field(default_factory=dict)
    removed: int = 0
    _kept: int = 0  # the last stored event that stays
    _first: int | None = None
    _last: int = 0
    _hash: str = ""
    _count: int = 0
    _roots: list[str] = field(default_factory=list)

    @property
    def starts_run(self) -> bool:
        """Whether the next event that goes starts a run (no run is open)."""
        return self._first is None

    def add(self, ev: EventHead, goes: bool, *, root: bool = False) -> None:
        """The next stored event, and whether it goes. ``root``: older runs start after
        it (see :attr:`Run.roots`)."""
        if goes:
            if root:
                self._roots.append(ev.hash)
            if self._first is None:
                self._first = ev.position
                self._count = 0
            self._last = ev.position
            self._hash = ev.hash
            self._count += 1
            self.removed += 1
            if self.tails.get(ev.stream, -1) < ev.stream_revision:
                self.tails[ev.stream] = ev.stream_revision
        else:
            if self._first is not None:
                self._close()
            self._kept = ev.position

    def finish(self) -> list[Run]:
        if self._first is not None:
            self._close()
        return self.runs

    def _close(self) -> None:
        assert self._first is not None
        self.runs.append(
            Run(self._first, self._last, self._count, self._hash, self._kept, roots=self._roots)
        )
        self._first = None
        self._roots = []


def receipts_for(
    plan: RetentionPlan,
    runs: list[Run],
    *,
    removed: int,
    max_event_bytes: int,
    head_hash: str | None,
) -> list[NewEvent]:
    """The receipt events for removing ``runs`` (one, or several when runs are many).

    Every part carries the plan summary; the runs are split between the parts.
    """
    budget = max_event_bytes - _RECEIPT_OVERHEAD
    chunks: list[list[Run]] = [[]]
    used = 0
    for run in runs:
        size = _RUN_BYTES + _ROOT_BYTES * len(run.roots)
        if chunks[-1] and used + size > budget:
            chunks.append([])
            used = 0
        chunks[-1].append(run)
        used += size
    last_run = max(runs, key=lambda r: r.last) if runs else None
    summary: dict[str, Any] = {
        "store": plan.store_id,
        "now": plan.now.isoformat().replace("+00:00", "Z"),
        "policy": plan.policy,
        "groups": [msgspec.to_builtins(g, builtin_types=()) for g in plan.groups if g.count],
        "removed": {
            "count": removed,
            "runs": len(runs),
            "first_position": min(r.first for r in runs) if runs else None,
            "last_position": last_run.last if last_run else None,
            "bytes": plan.bytes,
        },
        # The chain at the cut: the hash of the last event removed, and the head the
        # receipt follows.
        "checkpoint": {
            "position": last_run.last if last_run else None,
            "hash": last_run.last_hash if last_run else None,
        },
        "head": {"position": plan.head, "hash": head_hash},
    }
    out = []
    for k, chunk in enumerate(chunks, 1):
        data = dict(summary)
        data["part"] = k
        data["parts"] = len(chunks)
        data["runs"] = msgspec.to_builtins(chunk)
        out.append(
            NewEvent(
                type=RECEIPT_TYPE,
                stream=RECEIPT_STREAM,
                actor="eventvault",
                source="eventvault/retention",
                data=data,
            )
        )
    return out
