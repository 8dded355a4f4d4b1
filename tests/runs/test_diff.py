"""Diffing two runs: alignment by (actor, type), data changes, reorderings, timing."""

from __future__ import annotations

import itertools
import json
import random
import time
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventvault import RecordedEvent
from eventvault.errors import ValidationError
from eventvault.runs import RunDiff, build_trace, diff_runs
from eventvault.runs.align import lcs_pairs
from eventvault.runs.jsondiff import json_changes

from .helpers import rec


def run(*types: str, name: str = "a", step_ms: int = 10) -> list[RecordedEvent]:
    return [rec(k + 1, t, ms=k * step_ms, run=name) for k, t in enumerate(types)]


def kinds(d: RunDiff) -> list[tuple[str, str]]:
    return [(s.kind, s.type) for s in d.steps]


def test_identical_runs() -> None:
    d = diff_runs(run("x", "y", "z"), run("x", "y", "z", name="b"))
    assert d.identical
    assert kinds(d) == [("same", "x"), ("same", "y"), ("same", "z")]
    assert (d.a, d.b) == ("a", "b")


def test_an_inserted_step_does_not_shift_the_rest() -> None:
    d = diff_runs(run("x", "y", "z", "w"), run("x", "retry", "y", "z", "w"))
    assert kinds(d) == [
        ("same", "x"),
        ("only_b", "retry"),
        ("same", "y"),
        ("same", "z"),
        ("same", "w"),
    ]
    assert (d.same, d.only_b, d.only_a) == (4, 1, 0)
    assert not d.identical


def test_a_deleted_step() -> None:
    d = diff_runs(run("x", "y", "z"), run("x", "z"))
    assert kinds(d) == [("same", "x"), ("only_a", "y"), ("same", "z")]


def test_the_actor_is_part_of_the_key() -> None:
    a = [rec(1, "tool.called", actor="agent:a")]
    b = [rec(1, "tool.called", actor="agent:b")]
    assert kinds(diff_runs(a, b)) == [("only_a", "tool.called"), ("only_b", "tool.called")]


def test_a_reordering_is_reported_as_moved() -> None:
    d = diff_runs(run("x", "y", "z"), run("x", "z", "y"))
    assert d.moved == 1
    assert d.same == 2
    (moved,) = (s for s in d.steps if s.kind == "moved")
    assert moved.a is not None
    assert moved.b is not None
    assert d.a_events == d.b_events == 3


def test_changed_data_field_by_field() -> None:
    a = [rec(1, "t", data={"k": 1, "gone": True, "deep": {"x": [1, 2, 3]}, "a/b~c": "v"})]
    b = [rec(1, "t", data={"k": 2, "new": None, "deep": {"x": [1, 5]}, "a/b~c": "w"})]
    d = diff_runs(a, b)
    (step,) = d.steps
    assert step.kind == "changed"
    got = {(c.path, c.kind, c.a, c.b) for c in step.changes}
    assert got == {
        ("/k", "changed", 1, 2),
        ("/gone", "removed", True, None),
        ("/new", "added", None, None),
        ("/deep/x/1", "changed", 2, 5),
        ("/deep/x/2", "removed", 3, None),
        ("/a~1b~0c", "changed", "v", "w"),  # RFC 6901 escaping of / and ~
    }


def test_json_values_compare_as_json() -> None:
    assert json_changes({"n": 1}, {"n": 1.0}) == ([], False)
    ((change,), _) = json_changes({"n": 1}, {"n": True})
    assert change.kind == "changed"
    ((change,), _) = json_changes({"n": {"a": 1}}, {"n": [1]})
    assert (change.path, change.kind) == ("/n", "changed")


def test_field_changes_are_bounded() -> None:
    a = [rec(1, data={f"k{i}": i for i in range(500)})]
    b = [rec(1, data={})]
    (step,) = diff_runs(a, b, max_changes=10).steps
    assert len(step.changes) == 10
    assert step.changes_truncated


def test_timing_flags_step_times_beyond_the_threshold() -> None:
    a = [rec(1, "x", ms=0), rec(2, "y", ms=100), rec(3, "z", ms=200)]
    b = [rec(1, "x", ms=0), rec(2, "y", ms=2100), rec(3, "z", ms=2200)]
    d = diff_runs(a, b, timing_threshold=timedelta(seconds=1))
    y, z = d.steps[1], d.steps[2]
    assert y.slower
    assert y.timing_delta_us == 2_000_000
    assert (y.a_step_us, y.b_step_us) == (100_000, 2_100_000)
    # z started late too, but its own step took as long as in A: not flagged.
    assert not (z.slower)
    assert not (z.faster)
    assert z.b_offset_us == 2_200_000
    assert d.timing == 1
    assert (d.a_duration_us, d.b_duration_us) == (200_000, 2_200_000)
    faster = diff_runs(b, a, timing_threshold=timedelta(seconds=1))
    assert faster.steps[1].faster
    assert diff_runs(a, b, timing_threshold=timedelta(seconds=3)).timing == 0


def test_bad_threshold_and_traces_as_input() -> None:
    with pytest.raises(ValidationError, match="timing_threshold"):
        diff_runs([], [], timing_threshold=timedelta(seconds=-1))
    a = build_trace("run-a", run("x"), max_events=10)
    d = diff_runs(a, [])
    assert (d.a, d.only_a, d.b_events) == ("run-a", 1, 0)


def _repetitive(n: int, seed: int) -> tuple[list[RecordedEvent], list[RecordedEvent]]:
    rnd = random.Random(seed)
    types = ["tool.called", "tool.result", "llm.request", "llm.response"]
    a = [rec(k, rnd.choice(types), actor=f"agent:{rnd.randrange(2)}") for k in range(n)]
    b = [rec(k, rnd.choice(types), actor=f"agent:{rnd.randrange(2)}") for k in range(n)]
    return a, b


def test_two_runs_of_1000_events_diff_quickly() -> None:
    """Target <= 200 ms; asserted with headroom for a busy machine (the benchmark
    script quotes the figure). Random keys from a small alphabet are the worst case
    for block matchers; one repeated key is the common real one."""
    a, b = _repetitive(1000, 1)
    same = [rec(k, "tool.called", data={"i": k}) for k in range(1000)]
    for left, right in ((a, b), (same, [*same[:500], rec(5000, "x"), *same[500:]])):
        t0 = time.perf_counter()
        d = diff_runs(left, right)
        took = time.perf_counter() - t0
        assert took < 1.0, f"{took * 1000:.0f} ms"
        assert d.same + d.changed + d.moved + d.only_a == 1000


def _dp_lcs(a: list[int], b: list[int]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b):
            cur = row[j + 1]
            row[j + 1] = prev + 1 if x == y else max(row[j + 1], row[j])
            prev = cur
    return row[-1]


keys = st.lists(st.integers(min_value=0, max_value=3), max_size=40)


@settings(max_examples=400, deadline=None)
@given(keys, keys)
def test_lcs_is_a_longest_common_subsequence(a: list[int], b: list[int]) -> None:
    pairs = lcs_pairs(a, b)
    assert len(pairs) == _dp_lcs(a, b)
    assert all(a[i] == b[j] for i, j in pairs)
    assert all(p < q and r < s for (p, r), (q, s) in itertools.pairwise(pairs))


@settings(max_examples=300, deadline=None)
@given(keys, keys, st.data())
def test_the_alignment_covers_every_event_exactly_once(
    a_keys: list[int], b_keys: list[int], data: st.DataObject
) -> None:
    actors = ["agent:a", "agent:b"]
    mk = data.draw(st.integers(min_value=0, max_value=2))
    a = [
        rec(k, f"t{x % 2}", actor=actors[x // 2], data={"v": (k * mk) % 3})
        for k, x in enumerate(a_keys)
    ]
    b = [rec(k, f"t{x % 2}", actor=actors[x // 2], data={"v": k % 3}) for k, x in enumerate(b_keys)]
    d = diff_runs(a, b)
    seen_a = sorted(s.a for s in d.steps if s.a is not None)
    seen_b = sorted(s.b for s in d.steps if s.b is not None)
    assert seen_a == list(range(len(a)))
    assert seen_b == list(range(len(b)))
    for s in d.steps:
        if s.a is not None and s.b is not None:
            assert (a[s.a].actor, a[s.a].type) == (b[s.b].actor, b[s.b].type)
            assert (s.kind == "changed") == (s.kind != "moved" and a[s.a].data != b[s.b].data)
    aligned = [(s.a, s.b) for s in d.steps if s.kind in ("same", "changed")]
    assert aligned == sorted(aligned)
    assert [s.b for s in d.steps if s.b is not None] == sorted(seen_b)  # B's order is kept
    assert d.same + d.changed == _dp_lcs(a_keys, b_keys)
    assert d.same + d.changed + d.moved + d.only_a == len(a)
    assert d.same + d.changed + d.moved + d.only_b == len(b)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values, json_values)
def test_json_changes_are_empty_exactly_when_the_values_are_equal(x: object, y: object) -> None:
    assert json_changes(x, x) == ([], False)
    changes, _ = json_changes(x, y, limit=10_000)

    def canonical(value: object) -> str:
        return json.dumps(value, sort_keys=True)  # true is not 1 in JSON

    assert (not changes) == (canonical(x) == canonical(y))
