"""The causal tree of a run: parents, virtual causes, cycles, durations, lanes."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventvault import RecordedEvent
from eventvault.errors import ValidationError
from eventvault.runs import RunTrace, build_trace
from eventvault.runs.render import MAX_INDENT, render_timeline, render_tree
from eventvault.runs.tree import MAX_LOOKUPS

from .helpers import rec, uid


def trace(events: list[RecordedEvent], **kw: object) -> RunTrace:
    return build_trace("run-1", events, max_events=100_000, **kw)  # type: ignore[arg-type]


def shape(t: RunTrace) -> list[tuple[int, str]]:
    """(depth, label) per node, depth first: the tree as a person reads it."""
    return [(n.depth, n.label) for n in t.nodes]


def event_nodes(t: RunTrace) -> list[int]:
    return sorted(n.event for n in t.nodes if n.event is not None)


def test_parents_follow_causation_ids_and_siblings_keep_position_order() -> None:
    t = trace(
        [
            rec(1, "run.started"),
            rec(2, "plan.made", cause=1),
            rec(3, "tool.called", cause=1),
            rec(4, "tool.result", cause=3),
            rec(5, "plan.revised", cause=2),
        ]
    )
    assert shape(t) == [
        (0, "run.started"),
        (1, "plan.made"),
        (2, "plan.revised"),
        (1, "tool.called"),
        (2, "tool.result"),
    ]
    assert t.roots == (0,)
    assert t.nodes[0].children == (1, 3)
    assert [n.parent for n in t.nodes] == [None, 0, 1, 0, 3]
    assert not t.problems


def test_durations_to_next_sibling_and_to_last_descendant() -> None:
    t = trace(
        [
            rec(1, "root", ms=0),
            rec(2, "a", cause=1, ms=100),
            rec(3, "a.child", cause=2, ms=450),
            rec(4, "b", cause=1, ms=300),
            rec(5, "late", cause=1, ms=1000),
        ]
    )
    by_label = {n.label: n for n in t.nodes}
    assert by_label["root"].to_last_descendant_us == 1_000_000
    assert by_label["root"].to_next_sibling_us is None
    # "a" spans to its child at 450 ms although its next sibling starts at 300 ms.
    assert by_label["a"].offset_us == 100_000
    assert by_label["a"].to_last_descendant_us == 350_000
    assert by_label["a"].to_next_sibling_us == 200_000
    assert by_label["b"].to_next_sibling_us == 700_000
    assert by_label["late"].to_next_sibling_us is None
    assert by_label["a.child"].to_last_descendant_us == 0


def test_lanes_group_events_by_actor_in_order_of_first_appearance() -> None:
    t = trace(
        [
            rec(1, actor="ci", ms=0),
            rec(2, actor="agent:coder", ms=10),
            rec(3, actor=None, ms=20),
            rec(4, actor="ci", ms=30),
        ]
    )
    assert [(lane.actor, lane.events) for lane in t.lanes] == [
        ("ci", (0, 3)),
        ("agent:coder", (1,)),
        (None, (2,)),
    ]
    assert (t.lanes[0].first_offset_us, t.lanes[0].last_offset_us) == (0, 30_000)
    assert t.summary.actors == ("ci", "agent:coder")


def test_causes_that_are_no_event_of_the_run_become_labelled_virtual_roots() -> None:
    elsewhere = rec(50, "deploy.requested", run="run-0")
    looked_up: list[object] = []

    def lookup(key: object) -> RecordedEvent | None:
        looked_up.append(key)
        return elsewhere if key == uid(50) else None

    t = trace(
        [
            rec(1, "a", cause="cmd-42"),
            rec(2, "b", cause="cmd-42"),
            rec(3, "c", cause=50),
            rec(4, "d", cause=99),
        ],
        lookup=lookup,
    )
    virtual = {n.causation_id: n for n in t.nodes if n.kind == "virtual"}
    assert virtual["cmd-42"].virtual == "external"
    assert virtual["cmd-42"].label == "external cause cmd-42"
    assert [t.nodes[c].label for c in virtual["cmd-42"].children] == ["a", "b"]
    assert virtual[str(uid(50))].virtual == "outside"
    assert "deploy.requested" in virtual[str(uid(50))].label
    assert "run run-0" in virtual[str(uid(50))].label
    assert virtual[str(uid(99))].virtual == "missing"
    assert all(n.parent is None for n in virtual.values())
    # Only ids that look like event ids are looked up, each once.
    assert looked_up == [uid(50), uid(99)]
    (problem,) = t.problems
    assert problem.kind == "dangling"
    assert problem.causation_id == str(uid(99))
    assert problem.events == (str(uid(4)),)


def test_a_cause_beyond_a_truncated_run_says_so() -> None:
    later = rec(9, "plan.made")
    t = trace([rec(1, "step", cause=9)], lookup=lambda key: later if key == uid(9) else None)
    (virtual,) = (n for n in t.nodes if n.kind == "virtual")
    assert virtual.virtual == "outside"
    assert "this run, beyond the events loaded" in virtual.label
    with pytest.raises(ValidationError, match="at least one event"):
        trace([])


def test_lookups_are_bounded() -> None:
    calls = 0

    def lookup(key: object) -> None:
        nonlocal calls
        calls += 1

    events = [rec(i, cause=10_000 + i) for i in range(1, MAX_LOOKUPS + 11)]
    t = trace(events, lookup=lookup)
    assert calls == MAX_LOOKUPS
    kinds = [n.virtual for n in t.nodes if n.kind == "virtual"]
    assert kinds.count("missing") == MAX_LOOKUPS
    assert kinds.count("unchecked") == 10


def test_a_cause_spelt_in_capitals_or_without_dashes_is_the_same_event() -> None:
    t = trace([rec(1), rec(2, cause=str(uid(1)).upper()), rec(3, cause=uid(1).hex)])
    assert shape(t) == [(0, "step.done"), (1, "step.done"), (1, "step.done")]


def test_an_event_that_causes_itself_is_reported_and_shown_once() -> None:
    t = trace([rec(1, "a"), rec(2, "loop", cause=2), rec(3, "b", cause=2)])
    assert event_nodes(t) == [0, 1, 2]
    (problem,) = t.problems
    assert problem.kind == "cycle"
    assert problem.events == (str(uid(2)),)
    assert "itself" in problem.message
    loop = next(n for n in t.nodes if n.label == "loop")
    assert loop.cycle_cut
    assert loop.parent is None
    assert [t.nodes[c].label for c in loop.children] == ["b"]


def test_a_long_cycle_is_cut_at_its_earliest_event() -> None:
    n = 1000
    # Event k is caused by event k + 1, and the last by the first: one ring of 1,000.
    events = [rec(k, f"t{k}", cause=k % n + 1) for k in range(1, n + 1)]
    t = trace(events)
    assert event_nodes(t) == list(range(n))
    (problem,) = t.problems
    assert problem.kind == "cycle"
    assert len(problem.events) == n
    assert problem.events[0] == str(uid(1))  # the earliest position is where it is cut
    assert t.nodes[0].label == "t1"
    assert t.nodes[0].cycle_cut
    assert max(node.depth for node in t.nodes) == n - 1


def test_two_cycles_and_a_tail_hanging_off_one_of_them() -> None:
    events = [
        rec(1, "x", cause=2),
        rec(2, "y", cause=1),  # x <-> y
        rec(3, "tail", cause=2),  # hangs off the ring
        rec(4, "p", cause=5),
        rec(5, "q", cause=4),  # p <-> q
        rec(6, "free"),
    ]
    t = trace(events)
    assert event_nodes(t) == list(range(6))
    assert sorted(p.events for p in t.problems) == [
        (str(uid(1)), str(uid(2))),
        (str(uid(4)), str(uid(5))),
    ]
    assert shape(t) == [(0, "x"), (1, "y"), (2, "tail"), (0, "p"), (1, "q"), (0, "free")]


def test_a_chain_of_10000_events_needs_no_recursion() -> None:
    n = 10_000
    assert n > sys.getrecursionlimit()
    t = trace([rec(k, cause=k - 1 if k > 1 else None) for k in range(1, n + 1)])
    assert [node.depth for node in t.nodes] == list(range(n))
    assert t.nodes[0].to_last_descendant_us == (n - 1) * 1000
    lines = [line.plain for line in render_tree(t)]
    assert len(lines) == n + 1  # a header, then one line per event
    # Indentation stops growing, so the output stays linear in the run's size.
    assert max(map(len, lines)) < 3 * MAX_INDENT + 120
    assert f"[depth {n - 1}]" in lines[-1]
    assert sum(1 for _ in render_timeline(t)) == n + 2


def test_a_parent_recorded_after_its_child_still_adopts_it() -> None:
    t = trace([rec(1, "child", cause=2), rec(2, "parent")])
    assert shape(t) == [(0, "parent"), (1, "child")]
    assert t.nodes[0].offset_us == 1000
    assert t.nodes[0].to_last_descendant_us == 0  # its child came first: never negative


def test_summary_and_outcome() -> None:
    t = trace([rec(1, "run.started", ms=0), rec(2, "run.failed", ms=2500)])
    s = t.summary
    assert (s.events, s.first_type, s.last_type, s.outcome) == (
        2,
        "run.started",
        "run.failed",
        "failed",
    )
    assert s.duration_us == 2_500_000
    custom = trace([rec(1, "run.started"), rec(2, "run.ok")], outcomes=(("*.ok", "green"),))
    assert custom.summary.outcome == "green"


causes = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=59),  # an event of the run (maybe itself), or none
    st.sampled_from(["cmd-1", "cmd-2", str(uid(9999))]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(causes, min_size=1, max_size=60))
def test_every_event_is_in_the_tree_exactly_once(spec: list[int | str | None]) -> None:
    n = len(spec)
    events = [
        rec(k + 1, f"t{k}", cause=(c % n) + 1 if isinstance(c, int) else c, ms=(k * 7) % 13)
        for k, c in enumerate(spec)
    ]
    events.sort(key=lambda e: e.position)
    t = trace(events)
    assert event_nodes(t) == list(range(n))
    for node in t.nodes:
        assert node.id == t.nodes.index(node)
        for child in node.children:
            assert t.nodes[child].parent == node.id
            assert t.nodes[child].depth == node.depth + 1
            assert child > node.id  # depth first: parents come first
        if node.parent is None:
            assert node.id in t.roots
        assert node.to_last_descendant_us >= 0
    cut = sum(n.cycle_cut for n in t.nodes)
    assert cut == sum(p.kind == "cycle" for p in t.problems)
