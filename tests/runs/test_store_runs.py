"""Listing and loading runs on every backend, through the public read API."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from eventvault import EventStore, MemoryEventStore, NewEvent, Query
from eventvault.errors import ValidationError
from eventvault.runs import (
    RunKey,
    RunPage,
    RunSummary,
    ScanRunIndex,
    diff_runs,
    list_runs,
    load_run,
)
from eventvault.runs.outcomes import Outcomes


def append_run(
    store: EventStore, run: str, n: int, *, actor: str = "agent:a", last: str = "run.succeeded"
) -> list[NewEvent]:
    """A run of ``n`` events: a start, a chain of steps, and ``last``."""
    events: list[NewEvent] = []
    for k in range(n):
        type_ = "run.started" if k == 0 else last if k == n - 1 else "step.done"
        cause = str(events[-1].id) if events else f"cmd-{run}"
        events.append(
            NewEvent(
                type=type_, actor=actor, correlation_id=run, causation_id=cause,
                stream=f"stream-{run}", data={"k": k},
            )
        )  # fmt: skip
    store.append(events)
    return events


def all_runs(store: EventStore, query: Query | None = None, limit: int = 2) -> list[str]:
    out: list[str] = []
    cursor = None
    while True:
        page = list_runs(store, query, limit=limit, cursor=cursor)
        out.extend(r.correlation_id for r in page.runs)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def test_runs_are_listed_newest_first_with_whole_run_summaries(store: EventStore) -> None:
    append_run(store, "run-1", 3)
    append_run(store, "run-2", 4, actor="ci", last="deploy.failed")
    store.append(NewEvent(type="noise", data={}))  # no correlation id: in no run
    store.append(NewEvent(type="late.note", actor="user:bob", correlation_id="run-1"))
    page = list_runs(store)
    assert [r.correlation_id for r in page.runs] == ["run-1", "run-2"]
    assert page.next_cursor is None
    one, two = page.runs
    assert (one.events, one.first_type, one.last_type, one.outcome) == (
        4, "run.started", "late.note", None,
    )  # fmt: skip
    assert one.actors == ("agent:a", "user:bob")
    assert one.streams == ("stream-run-1", "default")
    assert one.duration_us == (one.last_recorded_at - one.first_recorded_at) // timedelta(
        microseconds=1
    )
    assert (two.events, two.outcome, two.actors) == (4, "failed", ("ci",))
    assert two.last_position < one.last_position
    assert RunSummary.__name__ in repr(one)
    assert b'"correlation_id":"run-1"' in page.to_json()


def test_pages_neither_repeat_nor_skip_while_others_append(store: EventStore) -> None:
    for k in range(7):
        append_run(store, f"run-{k}", 2)
    first = list_runs(store, limit=3)
    assert [r.correlation_id for r in first.runs] == ["run-6", "run-5", "run-4"]
    # Meanwhile: a new run, and more events for a listed and for an unlisted run.
    append_run(store, "run-new", 2)
    append_run(store, "run-5", 1)
    append_run(store, "run-1", 1)
    rest: list[str] = []
    cursor = first.next_cursor
    while cursor is not None:
        page = list_runs(store, limit=3, cursor=cursor)
        rest.extend(r.correlation_id for r in page.runs)
        cursor = page.next_cursor
    assert rest == ["run-3", "run-2", "run-1", "run-0"]
    # A fresh listing puts the new activity first.
    assert all_runs(store)[:3] == ["run-1", "run-5", "run-new"]


def test_interleaved_runs_are_ordered_by_their_last_event(store: EventStore) -> None:
    order = ["r0", "r1", "r2", "r0", "r3", "r1", "r4", "r0", "r2"]
    store.append([NewEvent(type="step.done", correlation_id=run) for run in order])
    assert all_runs(store, limit=2) == ["r2", "r0", "r4", "r1", "r3"]
    assert all_runs(store, limit=1) == ["r2", "r0", "r4", "r1", "r3"]
    counts = {r.correlation_id: r.events for r in list_runs(store).runs}
    assert counts == {"r0": 3, "r1": 2, "r2": 2, "r3": 1, "r4": 1}


def test_filters_select_runs_by_their_events(store: EventStore) -> None:
    append_run(store, "run-a", 3, actor="agent:a")
    append_run(store, "run-b", 3, actor="agent:b", last="run.failed")
    append_run(store, "run-c", 3, actor="agent:a", last="run.failed")
    assert all_runs(store, Query(actors=["agent:a"])) == ["run-c", "run-a"]
    assert all_runs(store, Query(types=["run.failed"])) == ["run-c", "run-b"]
    assert all_runs(store, Query(types=["run.*"], actors=["agent:b"])) == ["run-b"]
    assert all_runs(store, Query(correlation_ids=["run-a", "run-b"]), limit=1) == ["run-b", "run-a"]
    newest = store.read(Query(reverse=True, limit=1)).events[0]
    assert all_runs(store, Query(since=newest.recorded_at + timedelta(seconds=1))) == []
    assert all_runs(store, Query(until=newest.recorded_at + timedelta(seconds=1)))[0] == "run-c"
    # The summary covers the whole run, not only the events that matched.
    (page_run,) = list_runs(store, Query(types=["run.failed"]), limit=1).runs
    assert page_run.events == 3


def test_an_empty_store_has_no_runs(store: EventStore) -> None:
    assert list_runs(store) == RunPage(runs=[], next_cursor=None)
    store.append(NewEvent(type="no.run"))
    assert list_runs(store).runs == []


def test_cursors_are_checked(store: EventStore) -> None:
    for k in range(3):
        append_run(store, f"run-{k}", 1)
    cursor = list_runs(store, limit=1).next_cursor
    assert cursor is not None
    with pytest.raises(ValidationError, match="different listing"):
        list_runs(store, Query(actors=["x"]), limit=1, cursor=cursor)
    with pytest.raises(ValidationError, match="malformed"):
        list_runs(store, cursor="not a cursor!")
    with pytest.raises(ValidationError, match="malformed"):
        list_runs(store, cursor=base64.urlsafe_b64encode(b"[2,1,1,1,1]").decode())
    with MemoryEventStore() as other, pytest.raises(ValidationError, match="another store"):
        list_runs(other, limit=1, cursor=cursor)
    with pytest.raises(ValidationError, match="limit"):
        list_runs(store, limit=0)


def test_a_run_is_loaded_with_its_tree(store: EventStore) -> None:
    events = append_run(store, "run-1", 5)
    append_run(store, "run-2", 2)
    store.append(NewEvent(type="x.caused", correlation_id="run-1", causation_id=str(events[1].id)))
    trace = load_run(store, "run-1")
    assert trace is not None
    assert [e.id for e in trace.events[:5]] == [e.id for e in events]
    assert [(n.depth, n.label) for n in trace.nodes] == [
        (0, "external cause cmd-run-1"),
        (1, "run.started"),
        (2, "step.done"),
        (3, "step.done"),
        (4, "step.done"),
        (5, "run.succeeded"),
        (3, "x.caused"),
    ]
    assert not trace.truncated
    assert trace.summary.events == 6
    assert load_run(store, "no-such-run") is None


def test_causes_in_other_runs_and_dangling_ones_are_told_apart(store: EventStore) -> None:
    other = append_run(store, "run-0", 1)
    ghost = "0190aaaa-0000-7000-8000-000000000000"
    store.append(
        [
            NewEvent(type="a", correlation_id="run-1", causation_id=str(other[0].id)),
            NewEvent(type="b", correlation_id="run-1", causation_id=ghost),
        ]
    )
    trace = load_run(store, "run-1")
    assert trace is not None
    virtual = {n.causation_id: n.virtual for n in trace.nodes if n.kind == "virtual"}
    assert virtual == {str(other[0].id): "outside", ghost: "missing"}
    assert [p.kind for p in trace.problems] == ["dangling"]


def test_a_run_larger_than_the_bound_is_truncated(store: EventStore) -> None:
    append_run(store, "big", 12)
    trace = load_run(store, "big", max_events=5)
    assert trace is not None
    assert trace.truncated
    assert len(trace.events) == len(trace.nodes) - 1 == 5  # plus the command's virtual node
    with pytest.raises(ValidationError, match="max_events"):
        load_run(store, "big", max_events=0)
    with pytest.raises(ValidationError, match="correlation id"):
        load_run(store, "")


def test_two_stored_runs_diff(store: EventStore) -> None:
    append_run(store, "good", 6)
    append_run(store, "bad", 7, last="run.failed")
    good, bad = load_run(store, "good"), load_run(store, "bad")
    assert good is not None
    assert bad is not None
    d = diff_runs(good, bad)
    assert (d.a, d.b) == ("good", "bad")
    assert [s.kind for s in d.steps] == [
        "same",
        "same",
        "same",
        "same",
        "same",
        "only_a",
        "only_b",
        "only_b",
    ]  # fmt: skip  (within a gap A's left-overs come first, as "-" before "+")
    assert d.steps[1].a is not None
    assert d.steps[1].b is not None


def test_configured_outcomes(store: EventStore) -> None:
    append_run(store, "run-1", 2, last="job.ok")
    outcomes: Outcomes = (("*.ok", "passed"),)
    (run,) = list_runs(store, outcomes=outcomes).runs
    assert run.outcome == "passed"
    trace = load_run(store, "run-1", outcomes=outcomes)
    assert trace is not None
    assert trace.summary.outcome == "passed"


class IndexedStore(MemoryEventStore):
    """A backend with its own index of runs: list_runs must use it, not scan."""

    calls: list[str]

    def newest_runs(
        self, query: Query, *, head: int, before: int | None, limit: int
    ) -> list[RunKey]:
        self.calls.append("newest_runs")
        return ScanRunIndex(self).newest_runs(query, head=head, before=before, limit=limit)

    def run_summaries(
        self, correlation_ids: list[str], *, head: int, outcomes: Outcomes
    ) -> dict[str, RunSummary]:
        self.calls.append("run_summaries")
        return ScanRunIndex(self).run_summaries(correlation_ids, head=head, outcomes=outcomes)


def test_a_backend_with_a_run_index_plugs_in() -> None:
    with IndexedStore() as store:
        store.calls = []
        append_run(store, "run-1", 2)
        assert [r.correlation_id for r in list_runs(store).runs] == ["run-1"]
        assert store.calls == ["newest_runs", "run_summaries"]
