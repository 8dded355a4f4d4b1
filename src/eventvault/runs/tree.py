"""A run's causal tree, durations and actor lanes, built from its events in memory.

An event's parent is the event of the run whose id equals its ``causation_id``.
Every step is iterative and linear in the run's size (no recursion, so a chain of
100,000 events is as safe as a flat run), and nothing in the data can make it
loop: each event has at most one parent, so the parent links form a *functional
graph* — every weakly connected part holds at most one cycle, and cutting one link
of each cycle leaves a forest.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from uuid import UUID

from ..errors import ValidationError
from ..model import RecordedEvent
from ..timeutil import to_us
from .model import Lane, RunSummary, RunTrace, TraceNode, TraceProblem, VirtualKind
from .outcomes import DEFAULT_OUTCOMES, Outcomes, outcome_of

__all__ = ["MAX_LOOKUPS", "build_trace", "summarise"]

#: Causation ids outside the run looked up in the store, at most (each is a ``get``).
MAX_LOOKUPS = 256

Lookup = Callable[[UUID], RecordedEvent | None]


def summarise(
    correlation_id: str, events: Sequence[RecordedEvent], outcomes: Outcomes = DEFAULT_OUTCOMES
) -> RunSummary:
    """The summary of a run from its events (position order, at least one)."""
    first, last = events[0], events[-1]
    actors = dict.fromkeys(e.actor for e in events if e.actor is not None)
    streams = dict.fromkeys(e.stream for e in events)
    return RunSummary(
        correlation_id=correlation_id,
        events=len(events),
        first_position=first.position,
        last_position=last.position,
        first_recorded_at=first.recorded_at,
        last_recorded_at=last.recorded_at,
        duration_us=to_us(last.recorded_at) - to_us(first.recorded_at),
        actors=tuple(actors),
        streams=tuple(streams),
        first_type=first.type,
        last_type=last.type,
        outcome=outcome_of(last.type, outcomes),
    )


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


class _Virtual:
    """A causation id that is no event of the run, and what it turned out to be."""

    __slots__ = ("children", "kind", "label")

    def __init__(self, kind: VirtualKind, label: str) -> None:
        self.kind: VirtualKind = kind
        self.label = label
        self.children: list[int] = []


def _classify(cause: str, run: str, lookup: Lookup | None, budget: list[int]) -> _Virtual:
    key = _uuid(cause)
    if key is None:
        return _Virtual("external", f"external cause {cause}")
    if lookup is None or budget[0] <= 0:
        return _Virtual("unchecked", f"cause {cause} (not looked up)")
    budget[0] -= 1
    found = lookup(key)
    if found is None:
        return _Virtual("missing", f"missing event {cause}")
    if found.correlation_id == run:  # the run was truncated before its cause
        where = "this run, beyond the events loaded"
    else:
        where = f"run {found.correlation_id}" if found.correlation_id else "no run"
    return _Virtual("outside", f"{found.type} at position {found.position} ({where})")


def _find_cycles(parent: list[int | None]) -> list[list[int]]:
    """Every cycle of the parent links, each as its members in link order."""
    n = len(parent)
    state = bytearray(n)  # 0 new, 1 on the current path, 2 done
    cycles: list[list[int]] = []
    for start in range(n):
        if state[start]:
            continue
        path: list[int] = []
        node: int | None = start
        while node is not None and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = parent[node]
        if node is not None and state[node] == 1:  # the walk came back to itself
            cycles.append(path[path.index(node) :])
        for member in path:
            state[member] = 2
    return cycles


def build_trace(
    correlation_id: str,
    events: Sequence[RecordedEvent],
    *,
    lookup: Lookup | None = None,
    max_events: int,
    truncated: bool = False,
    outcomes: Outcomes = DEFAULT_OUTCOMES,
) -> RunTrace:
    """The trace of a run from its events (position order, at least one).

    ``lookup`` resolves causation ids that are not events of the run (normally
    ``store.get``; at most :data:`MAX_LOOKUPS` calls), to tell events of other runs
    from dangling references.
    """
    n = len(events)
    if not n:
        raise ValidationError("a run has at least one event; got none")
    by_text = {str(e.id): i for i, e in enumerate(events)}
    by_int = {e.id.int: i for i, e in enumerate(events)}
    parent: list[int | None] = [None] * n
    virtuals: dict[str, _Virtual] = {}
    virtual_of: list[str | None] = [None] * n
    budget = [MAX_LOOKUPS]
    for i, e in enumerate(events):
        cause = e.causation_id
        if cause is None:
            continue
        j = by_text.get(cause)
        if j is None:  # the same id spelt otherwise (upper case, no dashes, urn:uuid:)?
            key = _uuid(cause)
            j = by_int.get(key.int) if key is not None else None
        if j is not None:
            parent[i] = j
            continue
        if cause not in virtuals:
            virtuals[cause] = _classify(cause, correlation_id, lookup, budget)
        virtuals[cause].children.append(i)
        virtual_of[i] = cause

    problems: list[TraceProblem] = []
    cut = [False] * n
    for ring in _find_cycles(parent):
        # Cut at the earliest member: it becomes a root, the rest hang below it.
        first = min(range(len(ring)), key=lambda k: events[ring[k]].position)
        ordered = ring[first:] + ring[:first]
        head = ordered[0]
        parent[head] = None
        cut[head] = True
        size = "itself" if len(ordered) == 1 else f"a cycle of {len(ordered)} events"
        problems.append(
            TraceProblem(
                kind="cycle",
                events=tuple(str(events[k].id) for k in ordered),
                message=f"event {events[head].id} ({events[head].type}) is caused by {size}; "
                "the tree cuts the cycle there",
            )
        )
    for cause, v in virtuals.items():
        if v.kind == "missing":
            problems.append(
                TraceProblem(
                    kind="dangling",
                    events=tuple(str(events[k].id) for k in v.children),
                    causation_id=cause,
                    message=f"{len(v.children)} event(s) name {cause} as their cause, "
                    "but the store holds no event with that id",
                )
            )

    children: list[list[int]] = [[] for _ in range(n)]
    roots: list[int] = []  # events >= 0; virtual node k as -(k + 1)
    for i in range(n):
        p = parent[i]
        if p is not None:
            children[p].append(i)
        elif virtual_of[i] is None:
            roots.append(i)
    virtual_list = list(virtuals.items())
    roots.extend(-(k + 1) for k in range(len(virtual_list)))

    def first_index(r: int) -> int:  # events are in position order: index order is time order
        return r if r >= 0 else virtual_list[-r - 1][1].children[0]

    roots.sort(key=first_index)
    return _assemble(
        correlation_id, events, roots, children, virtual_list, cut, problems,
        max_events=max_events, truncated=truncated, outcomes=outcomes,
    )  # fmt: skip


def _assemble(
    correlation_id: str,
    events: Sequence[RecordedEvent],
    roots: list[int],
    children: list[list[int]],
    virtual_list: list[tuple[str, _Virtual]],
    cut: list[bool],
    problems: list[TraceProblem],
    *,
    max_events: int,
    truncated: bool,
    outcomes: Outcomes,
) -> RunTrace:
    """Number the nodes depth first and work out offsets, durations and lanes."""
    t0 = to_us(events[0].recorded_at)
    offsets = [to_us(e.recorded_at) - t0 for e in events]

    def kids(r: int) -> list[int]:
        return children[r] if r >= 0 else virtual_list[-r - 1][1].children

    # Pre-order with an explicit stack: (ref, parent node id, depth).
    order: list[tuple[int, int | None, int]] = []
    stack: list[tuple[int, int | None, int]] = [(r, None, 0) for r in reversed(roots)]
    node_of_ref: dict[int, int] = {}
    while stack:
        ref, par, depth = stack.pop()
        node_of_ref[ref] = len(order)
        order.append((ref, par, depth))
        me = len(order) - 1
        stack.extend((c, me, depth + 1) for c in reversed(kids(ref)))

    count = len(order)
    start = [offsets[r] if r >= 0 else offsets[kids(r)[0]] for r, _, _ in order]
    end = list(start)
    child_ids: list[list[int]] = [[] for _ in range(count)]
    for node in range(count - 1, -1, -1):  # children come after parents: fold upwards
        par = order[node][1]
        if par is not None:
            end[par] = max(end[par], end[node])
            child_ids[par].append(node)
    next_sibling: list[int | None] = [None] * count
    for sibs in child_ids:
        sibs.reverse()
        for a, b in itertools.pairwise(sibs):
            next_sibling[a] = b
    root_ids = [node_of_ref[r] for r in roots]
    for a, b in itertools.pairwise(root_ids):
        next_sibling[a] = b

    nodes: list[TraceNode] = []
    for node, (ref, par, depth) in enumerate(order):
        sib = next_sibling[node]
        virtual = None if ref >= 0 else virtual_list[-ref - 1]
        nodes.append(
            TraceNode(
                id=node,
                kind="event" if virtual is None else "virtual",
                event=ref if virtual is None else None,
                label=events[ref].type if virtual is None else virtual[1].label,
                causation_id=None if virtual is None else virtual[0],
                virtual=None if virtual is None else virtual[1].kind,
                parent=par,
                children=tuple(child_ids[node]),
                depth=depth,
                offset_us=start[node],
                to_next_sibling_us=None if sib is None else start[sib] - start[node],
                to_last_descendant_us=end[node] - start[node],
                cycle_cut=virtual is None and cut[ref],
            )
        )

    lanes: dict[str | None, list[int]] = {}
    for i, e in enumerate(events):
        lanes.setdefault(e.actor, []).append(i)
    return RunTrace(
        correlation_id=correlation_id,
        summary=summarise(correlation_id, events, outcomes),
        events=list(events),
        nodes=nodes,
        roots=tuple(root_ids),
        lanes=[
            Lane(
                actor=actor,
                events=tuple(idx),
                first_offset_us=offsets[idx[0]],
                last_offset_us=offsets[idx[-1]],
            )
            for actor, idx in lanes.items()
        ],
        problems=problems,
        truncated=truncated,
        max_events=max_events,
    )
