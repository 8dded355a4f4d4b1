"""Retention plans, removal runs and receipts: what every backend shares.

How a policy becomes removals
-----------------------------
Events fall into *groups*: each rule with a window is one, the global window is
another (see :attr:`Policy.groups`). Within a group, an event goes when it is older
than the window's ``max_age`` or not among its newest ``max_count``. Positions and
``recorded_at`` both only grow, so the events that go are always a *prefix* of the
group in position order: a plan is one **cut position** per group ("events of this
group at or before the cut go"). Applying a plan later is therefore still safe —
an event only gets older, and appends only push old events further out of a count.

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
:class:`Bridges`); any other hole still breaks the chain (that is tampering).

Backends remove runs **newest first**, each step atomic. Whatever instant a crash
hits, a run is then either whole, gone, or cut down to its older part — and every
one of those states verifies, because the run's recorded end hash is exactly what
the next surviving event chains to.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from .model import NewEvent, RecordedEvent
from .retention import RECEIPT_TYPE, Policy

__all__ = [
    "RECEIPT_STREAM",
    "Bridges",
    "EventHead",
    "GroupEvents",
    "GroupPlan",
    "RetentionPlan",
    "RetentionReport",
    "Run",
    "RunCollector",
    "RunIndex",
    "plan_groups",
    "receipts_for",
]

#: The stream receipts are appended to.
RECEIPT_STREAM = "eventvault.retention"
#: Room a receipt keeps for everything but its runs.
_RECEIPT_OVERHEAD = 32 * 1024
#: Generous size of one encoded run (``[first, last, count, "64 hex"]``).
_RUN_BYTES = 128
_US = timedelta(microseconds=1)


class GroupPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What one group of the policy loses."""

    rule: str
    """``retention.rules[i]``, or ``retention`` for the global window."""
    description: str
    cut: int | None
    """Events of this group at or before this position go (None: none go)."""
    count: int
    first_position: int | None = None
    last_position: int | None = None
    oldest: datetime | None = None
    newest: datetime | None = None
    bytes: int | None = None
    """Bytes freed (None where the backend cannot tell)."""


class RetentionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """A dry run: what applying the policy at ``now`` removes, group by group."""

    store_id: str
    backend: str
    now: datetime
    head: int
    limit: int
    """The highest position this backend may remove now (file: end of the sealed segments)."""
    policy: list[str]
    groups: list[GroupPlan]

    @property
    def count(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def bytes(self) -> int | None:
        sizes = [g.bytes for g in self.groups if g.count]
        return None if any(b is None for b in sizes) else sum(b or 0 for b in sizes)

    def removes(self, policy: Policy) -> Removes:
        """A test "does this stored event go?" for this plan under ``policy``."""
        return Removes(policy, self)


class Removes:
    """Whether a stored event goes under a plan (memoised by type and stream)."""

    def __init__(self, policy: Policy, plan: RetentionPlan) -> None:
        by_name = {name: gid for gid, name, _ in policy.groups}
        self.cuts = {by_name[g.rule]: g.cut for g in plan.groups if g.cut is not None and g.count}
        self.max_cut = max(self.cuts.values(), default=0)
        self._policy = policy
        self._memo: dict[tuple[str, str], int | None] = {}

    def cut_for(self, type: str, stream: str) -> int | None:
        key = (type, stream)
        try:
            gid = self._memo[key]
        except KeyError:
            gid = self._memo[key] = self._policy.group_of(type, stream)
        return None if gid is None else self.cuts.get(gid)

    def __call__(self, ev: EventHead) -> bool:
        cut = self.cut_for(ev.type, ev.stream)
        return cut is not None and ev.position <= cut


class EventHead(Protocol):
    """What applying retention needs of every stored event it walks past."""

    @property
    def position(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def stream_revision(self) -> int: ...
    @property
    def hash(self) -> str: ...


class Run(msgspec.Struct, frozen=True, array_like=True):
    """Stored events ``first..last`` (every stored one in between), all removed.

    ``before``: the stored event just before the run when it was removed (0: none).
    """

    first: int
    last: int
    count: int
    last_hash: str
    before: int


class RunIndex:
    """``position in runs`` in O(log runs) (runs are disjoint and sorted)."""

    def __init__(self, runs: Sequence[Run]) -> None:
        ordered = sorted(runs, key=lambda r: r.first)
        self._firsts = [r.first for r in ordered]
        self._lasts = [r.last for r in ordered]

    def __call__(self, position: int) -> bool:
        i = bisect.bisect_right(self._firsts, position) - 1
        return i >= 0 and position <= self._lasts[i]


class RetentionReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of applying a plan."""

    plan: RetentionPlan
    removed: int
    runs: int
    receipt_positions: list[int]
    seconds: float


@dataclass(slots=True)
class GroupEvents:
    """One group's stored events in position order (parallel sequences)."""

    positions: Sequence[int]
    times_us: Sequence[int]
    sizes: Sequence[int] | None = None


def plan_groups(
    policy: Policy,
    groups: dict[int, GroupEvents],
    *,
    now_us: int,
    limit: int,
    to_time: Any,
) -> list[GroupPlan]:
    """Cut each group: older than ``max_age``, or beyond its newest ``max_count``.

    ``groups`` holds every stored event of each group (the newest too: counts need
    them); nothing above ``limit`` is removed.
    """
    out = []
    for gid, name, window in policy.groups:
        ev = groups.get(gid) or GroupEvents((), ())
        n = len(ev.positions)
        i = 0
        if window.max_age is not None:
            cutoff = now_us - window.max_age // _US
            i = bisect.bisect_left(ev.times_us, cutoff)
        if window.max_count is not None and n > window.max_count:
            i = max(i, n - window.max_count)
        i = min(i, bisect.bisect_right(ev.positions, limit))
        describe = policy.describe_group(gid)
        if i == 0:
            out.append(GroupPlan(rule=name, description=describe, cut=None, count=0, bytes=0))
            continue
        out.append(
            GroupPlan(
                rule=name,
                description=describe,
                cut=ev.positions[i - 1],
                count=i,
                first_position=ev.positions[0],
                last_position=ev.positions[i - 1],
                oldest=to_time(ev.times_us[0]),
                newest=to_time(ev.times_us[i - 1]),
                bytes=sum(ev.sizes[:i]) if ev.sizes is not None else None,
            )
        )
    return out


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

    def add(self, ev: EventHead, goes: bool) -> None:
        if goes:
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
        self.runs.append(Run(self._first, self._last, self._count, self._hash, self._kept))
        self._first = None


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
    per = max(1, (max_event_bytes - _RECEIPT_OVERHEAD) // _RUN_BYTES)
    chunks = [runs[i : i + per] for i in range(0, len(runs), per)] or [[]]
    last_run = max(runs, key=lambda r: r.last) if runs else None
    summary: dict[str, Any] = {
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


class Bridges:
    """The runs receipts recorded, for bridging holes in the chain.

    Each run ``[first..last]`` removed from after the stored event ``before``
    accounts for every position in ``(before, last]``: its own events, and the ones
    between ``before`` and ``first`` that earlier runs had removed already. Runs
    whose ``[before, last]`` overlap form one *component* ``[low, high]``: every
    original position in ``(low, high]`` is accounted for.

    A hole between survivors ``q`` and ``s`` is bridged by the largest recorded run
    end ``r`` with ``q < r < s`` — which is ``s``'s original predecessor, so ``s``
    chains to ``r``'s recorded hash — provided ``r``'s component reaches back to
    ``q`` (``low <= q``). A survivor deleted next to a removed run fails that test:
    it is a hole nobody recorded. (``apply_retention`` checks the chain of what it
    removes first, so no earlier damage can be laundered into a recorded run.)
    """

    def __init__(self) -> None:
        self._hashes: dict[int, str] = {}  # run end -> hash of the event there
        self._spans: list[tuple[int, int]] = []  # (before, last) of every run
        self._ends: list[int] | None = None
        self._lows: list[int] = []
        self._highs: list[int] = []
        self.receipts = 0

    def add_receipt(self, receipt: RecordedEvent) -> None:
        self.receipts += 1
        runs = receipt.data.get("runs")
        if not isinstance(runs, list):
            return
        for run in runs:
            if (
                isinstance(run, list)
                and len(run) >= 5
                and all(type(run[k]) is int for k in (0, 1, 4))
                and isinstance(run[3], str)
                and 0 <= run[4] < run[0] <= run[1] < receipt.position  # it speaks of the past
            ):
                self._hashes[run[1]] = run[3]
                self._spans.append((run[4], run[1]))
        self._ends = None

    def add_all(self, receipts: Iterable[RecordedEvent]) -> Bridges:
        for rec in receipts:
            self.add_receipt(rec)
        return self

    def __len__(self) -> int:
        return len(self._hashes)

    def _build(self) -> list[int]:
        self._ends = sorted(self._hashes)
        lows: list[int] = []
        highs: list[int] = []
        for low, high in sorted(self._spans):
            if highs and low <= highs[-1]:
                highs[-1] = max(highs[-1], high)
            else:
                lows.append(low)
                highs.append(high)
        self._lows, self._highs = lows, highs
        return self._ends

    def between(self, q: int, s: int) -> tuple[int, str] | None:
        """The run end bridging a hole between survivors ``q`` and ``s``, if any."""
        if not self._hashes:
            return None
        ends = self._ends if self._ends is not None else self._build()
        i = bisect.bisect_left(ends, s) - 1
        if i < 0 or ends[i] <= q:
            return None
        r = ends[i]
        k = bisect.bisect_right(self._lows, r) - 1  # the component holding r
        if k < 0 or self._lows[k] > q or self._highs[k] < r:
            return None
        return r, self._hashes[r]
