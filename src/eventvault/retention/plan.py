"""Retention plans: which events a policy removes, group by group (every backend's).

How a policy becomes removals
-----------------------------
Events fall into *groups*: each rule with a window is one, the global window is
another (see :attr:`Policy.groups`). Within a group, an event goes when it is older
than the window's ``max_age`` or not among its newest ``max_count``. Positions and
``recorded_at`` both only grow, so the events that go are always a *prefix* of the
group in position order: a plan is one **cut position** per group ("events of this
group at or before the cut go"). Applying a plan later is therefore still safe —
an event only gets older, and appends only push old events further out of a count.

The runs a plan removes and the receipts that record them: :mod:`.receipts`; how
``verify`` bridges the holes they leave: :mod:`eventvault.integrity.bridges`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from .policy import Policy

__all__ = [
    "EventHead",
    "GroupEvents",
    "GroupPlan",
    "Removes",
    "RetentionPlan",
    "RetentionReport",
    "plan_groups",
]

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
