"""Runs on every backend: ``store.runs``, ``store.run`` (the causal tree, with
dangling and cyclic causation reported, never raised) and ``store.diff``."""

from __future__ import annotations

import uuid

import pytest

from ..errors import RunNotFoundError, StoreClosedError, ValidationError
from ..model import Query
from ..store import EventStore
from ._base import ContractBase, ev

__all__ = ["RunsContract"]


def _run(store: EventStore, cid: str, types: list[str], actor: str = "agent:1") -> list[str]:
    """Append a chain (each event caused by the previous one); their ids."""
    ids = [uuid.uuid4() for _ in types]
    batch = [
        ev(t, id=i, correlation_id=cid, actor=actor, causation_id=str(ids[n - 1]) if n else None)
        for n, (t, i) in enumerate(zip(types, ids, strict=True))
    ]
    store.append(batch)
    return [str(i) for i in ids]


class RunsContract(ContractBase):
    def test_runs_are_listed_newest_first_and_paged(self, store: EventStore) -> None:
        for n in range(5):
            _run(store, f"run-{n}", ["job.started", "job.succeeded" if n % 2 else "job.failed"])
        page = store.runs(limit=2)
        assert [r.correlation_id for r in page.runs] == ["run-4", "run-3"]
        assert [r.outcome for r in page.runs] == ["failed", "succeeded"]
        assert page.runs[0].events == 2
        assert page.next_cursor is not None
        rest = store.runs(limit=10, cursor=page.next_cursor)
        assert [r.correlation_id for r in rest.runs] == ["run-2", "run-1", "run-0"]
        assert rest.next_cursor is None
        only = store.runs(Query(types=["job.succeeded"]))
        assert [r.correlation_id for r in only.runs] == ["run-3", "run-1"]
        with pytest.raises(ValidationError):
            store.runs(limit=0)

    def test_a_run_has_its_causal_tree_and_lanes(self, store: EventStore) -> None:
        ids = _run(store, "r", ["a.started", "a.step", "a.done"])
        store.append(ev("b.note", correlation_id="r", actor="agent:2", causation_id=ids[0]))
        trace = store.run("r")
        assert trace is not None
        assert trace.summary.events == 4
        (root,) = trace.roots
        assert trace.nodes[root].label == "a.started"
        assert [trace.nodes[c].label for c in trace.nodes[root].children] == ["a.step", "b.note"]
        assert [lane.actor for lane in trace.lanes] == ["agent:1", "agent:2"]
        assert trace.problems == []
        assert store.run("no-such-run") is None

    def test_dangling_and_external_causes_become_labelled_virtual_roots(
        self, store: EventStore
    ) -> None:
        gone = str(uuid.uuid4())  # an event id the store does not hold
        store.append(
            [
                ev("x.started", correlation_id="d", causation_id="cmd:deploy"),
                ev("x.orphan", correlation_id="d", causation_id=gone),
            ]
        )
        trace = store.run("d")
        assert trace is not None
        virtual = {n.causation_id: n.virtual for n in trace.nodes if n.kind == "virtual"}
        assert virtual == {"cmd:deploy": "external", gone: "missing"}
        assert [(p.kind, p.causation_id) for p in trace.problems] == [("dangling", gone)]

    def test_causation_cycles_are_reported_and_cut(self, store: EventStore) -> None:
        a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        store.append(
            [
                ev("c.one", id=a, correlation_id="cyc", causation_id=str(c)),
                ev("c.two", id=b, correlation_id="cyc", causation_id=str(a)),
                ev("c.three", id=c, correlation_id="cyc", causation_id=str(b)),
                ev("c.self", correlation_id="cyc2", id=(s := uuid.uuid4()), causation_id=str(s)),
            ]
        )
        trace = store.run("cyc")
        assert trace is not None
        assert sorted(n.label for n in trace.nodes) == ["c.one", "c.three", "c.two"]  # each once
        assert [p.kind for p in trace.problems] == ["cycle"]
        assert sorted(trace.problems[0].events) == sorted(map(str, (a, b, c)))
        assert sum(n.cycle_cut for n in trace.nodes) == 1
        selfish = store.run("cyc2")
        assert selfish is not None
        assert [p.kind for p in selfish.problems] == ["cycle"]
        assert len(selfish.nodes) == 1

    def test_a_run_over_the_bound_is_truncated(self, store: EventStore) -> None:
        _run(store, "long", [f"s.step{i}" for i in range(12)])
        trace = store.run("long", max_events=5)
        assert trace is not None
        assert trace.truncated
        assert len(trace.events) == 5

    def test_two_runs_diff(self, store: EventStore) -> None:
        _run(store, "good", ["t.started", "t.built", "t.tested", "t.succeeded"])
        _run(store, "bad", ["t.started", "t.built", "t.failed"])
        diff = store.diff("good", "bad")
        kinds = [s.kind for s in diff.steps]
        assert kinds.count("same") == 2
        assert {s.type for s in diff.steps if s.kind == "only_a"} == {"t.tested", "t.succeeded"}
        assert [s.type for s in diff.steps if s.kind == "only_b"] == ["t.failed"]
        with pytest.raises(RunNotFoundError, match="no run 'nope'"):
            store.diff("good", "nope")

    def test_runs_on_a_closed_store_raise_closed(self, store: EventStore) -> None:
        store.close()
        with pytest.raises(StoreClosedError):
            store.runs()
        with pytest.raises(StoreClosedError):
            store.run("r")
