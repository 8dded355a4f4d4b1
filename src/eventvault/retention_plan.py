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
from collections.abc import Iterable, Iterator, Sequence
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
_RUN_BYTES = 200
_ROOT_BYTES = 70
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


class Bridges:
    """The runs receipts recorded, for bridging holes in the chain.

    **By hash** (runs with ``before_hash``). Each run is an edge ``before_hash ->
    last_hash``: the events after the one hashed ``before_hash``, up to the one
    hashed ``last_hash``, were all removed — recorded. Walking the stored events
    in order, every event ``w`` makes the runs reachable from ``hash(w)`` *open*;
    an event that does not chain to its stored predecessor is bridged only by an
    open ``last_hash`` it chains to. That is sound in any numbering: a path of runs
    from a stored ``w`` covers every original event between ``w`` and the
    bridged event, so any missing event there was recorded as removed. A survivor
    deleted next to a hole is never walked, so the runs that start after it never
    open, and the event after the hole fails. An interrupted removal (a run cut to
    its older part) still verifies: the run opened at the event before it.

    **By position** (runs of receipts this very store wrote, and five-element runs
    from receipts written before ``before_hash`` existed). Each run
    ``[first..last]`` removed from after the stored event ``before`` accounts for
    ``(before, last]``; runs whose ``[before, last]`` overlap form one *component*
    ``[low, high]``. A hole between survivors
    ``q`` and ``s`` is bridged by the largest run end ``r`` with ``q < r < s``,
    provided ``r``'s component reaches back to ``q`` (``low <= q``). Only valid in
    the numbering the receipts were written in; it also covers the rare states the
    hash rule cannot see (a run rooted inside the remnant of an interrupted older
    run, that remnant removed afterwards). Each rule alone guarantees every missing
    event between two stored ones was recorded, so a hole either bridges is sound.
    """

    def __init__(self, store_id: str | None = None) -> None:
        self._store_id = store_id
        self._edges: dict[str, list[str]] = {}  # before_hash -> last_hash of each run
        self._ends_at: dict[str, int] = {}  # last_hash -> recorded position of that event
        self._hashes: dict[int, str] = {}  # (by position) run end -> hash of the event there
        self._spans: list[tuple[int, int]] = []  # (by position) (before, last) of every run
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
            if not (
                isinstance(run, list)
                and len(run) >= 5
                and all(type(run[k]) is int for k in (0, 1, 4))
                and isinstance(run[3], str)
                and 0 <= run[4] < run[0] <= run[1]
            ):
                continue
            by_hash = len(run) >= 6 and isinstance(run[5], str) and bool(run[5])
            if by_hash:
                ends = self._edges.setdefault(run[5], [])
                ends.append(run[3])
                self._ends_at[run[3]] = run[1]
                if len(run) >= 7 and isinstance(run[6], list):
                    ends.extend(h for h in run[6] if isinstance(h, str))
            # Positions only mean something in the store that wrote them (not in a copy).
            native = not by_hash or receipt.data.get("store") == self._store_id
            if native and run[1] < receipt.position:  # (it speaks of the past)
                self._hashes[run[1]] = run[3]
                self._spans.append((run[4], run[1]))
        self._ends = None

    def add_all(self, receipts: Iterable[RecordedEvent]) -> Bridges:
        for rec in receipts:
            self.add_receipt(rec)
        return self

    def __len__(self) -> int:
        return len(self._hashes) + len(self._ends_at)

    def walker(self) -> BridgeWalker:
        """A fresh walk over the stored events, from the first."""
        return BridgeWalker(self)

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
        """(By position) the run end bridging a hole between survivors ``q`` and ``s``."""
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


class BridgeWalker:
    """One walk's open runs (see :class:`Bridges`): tell it every stored event's hash
    in order (:meth:`walked`); ask it what a broken link may chain to instead."""

    def __init__(self, bridges: Bridges) -> None:
        self._bridges = bridges
        self._open: list[str] = []  # last_hashes, in the order they opened
        self._seen: set[str] = set()
        self.walked(GENESIS_HEX)  # runs that removed the very first events

    def walked(self, event_hash: str) -> None:
        edges = self._bridges._edges
        if event_hash not in edges:
            return
        todo = [event_hash]
        while todo:  # everything reachable from this event's hash opens
            for end in edges.get(todo.pop(), ()):
                if end not in self._seen:
                    self._seen.add(end)
                    self._open.append(end)
                    todo.append(end)

    def is_root(self, event_hash: str) -> bool:
        """Whether recorded runs start right after the event with this hash."""
        return event_hash in self._bridges._edges

    def mark(self) -> int:
        """How many runs are open now (for :meth:`candidates` later)."""
        return len(self._open)

    def candidates(
        self, q: int, s: int, mark: int | None = None
    ) -> Iterator[tuple[str, int | None]]:
        """Hashes an event at ``s`` after the stored event at ``q`` may chain to across a
        hole, with the recorded position of the event removed there: the newest open
        runs first (the likeliest), then the by-position bridge. ``mark``: only the
        runs open at that time."""
        end = len(self._open) if mark is None else mark
        ends_at = self._bridges._ends_at
        for k in range(end - 1, -1, -1):
            h = self._open[k]
            yield h, ends_at.get(h)
        hole = self._bridges.between(q, s)
        if hole is not None:
            yield hole[1], hole[0]


GENESIS_HEX = "0" * 64
