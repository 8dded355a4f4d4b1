"""Runs on every backend: ``store.runs``, ``store.run`` (the causal tree, with
dangling and cyclic causation reported, never raised) and ``store.diff``."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import datetime, timedelta

import pytest

from ..config import RetentionConfig
from ..copy import copy_store
from ..errors import NotSupportedError, RunNotFoundError, StoreClosedError, ValidationError
from ..model import Query
from ..retention import resolve_policy
from ..runs import RunIndex, ScanRunIndex, list_runs
from ..runs.outcomes import DEFAULT_OUTCOMES
from ..spi import Importing
from ..store import EventStore
from ._base import ContractBase, Stores, can_retain, ev

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


def _interleaved(store: EventStore, n: int, seed: int, prefix: str = "r") -> list[str]:
    """``n`` appends of 1–3 events to a few dozen interleaved runs (some events
    without a run, without an actor, on another stream); the run names."""
    rnd = random.Random(seed)
    names = [f"{prefix}{k}" for k in range(24)]
    for _ in range(n):
        store.append(
            [
                ev(
                    rnd.choice(["job.step", "job.started", "job.failed", "job.succeeded"]),
                    correlation_id=rnd.choice([*names, None]),
                    actor=rnd.choice([None, "agent:a", "agent:b", "agent:c"]),
                    stream=rnd.choice(["s-1", "s-2", "s-3"]),
                )
                for _ in range(rnd.randrange(1, 4))
            ]
        )
    return names


def _assert_index_is_the_scan(
    store: EventStore, head: int, names: list[str], *, whole: bool = True
) -> None:
    """The store's run index (if any) answers what the scan answers, as of ``head``:
    every page boundary, every summary (and, if ``whole``, the whole listing now)."""
    backend = store.backend
    index: RunIndex = backend if isinstance(backend, RunIndex) else ScanRunIndex(store)
    scan = ScanRunIndex(store)
    for query in (Query(), Query(types=["job.failed"])):
        for before in (None, head + 1, head, head - 1, head // 2, head // 3, 2, 1):
            want = scan.newest_runs(query, head=head, before=before, limit=7)
            got = index.newest_runs(query, head=head, before=before, limit=7)
            assert got is None or got == want, (query, head, before)
    ids = [*names, "no-such-run"]
    want_summaries = scan.run_summaries(ids, head=head, outcomes=DEFAULT_OUTCOMES)
    assert index.run_summaries(ids, head=head, outcomes=DEFAULT_OUTCOMES) == want_summaries
    if not whole:
        return
    # And the whole listing, page by page, as the scan pages it.
    page = list_runs(store, limit=5)
    listed = list(page.runs)
    while page.next_cursor is not None:
        page = list_runs(store, limit=5, cursor=page.next_cursor)
        listed += page.runs
    keys = scan.newest_runs(Query(), head=store.head(), before=None, limit=1000)
    scanned = scan.run_summaries(
        [k.correlation_id for k in keys], head=store.head(), outcomes=DEFAULT_OUTCOMES
    )
    assert listed == [scanned[k.correlation_id] for k in keys]


class RunsContract(ContractBase):
    def test_the_run_index_answers_what_the_scan_answers(
        self, store: EventStore, stores: Stores
    ) -> None:
        names = _interleaved(store, 120, seed=5)
        head = store.head()
        for h in (head, head - 5, head // 2, 3):
            _assert_index_is_the_scan(store, h, names)
        reopened = stores.reopen(store)  # (an index rebuilt, or read back, at open)
        _assert_index_is_the_scan(reopened, reopened.head(), names)

    def test_the_run_index_is_as_of_the_listings_head(self, store: EventStore) -> None:
        """Events appended after the first page (to listed runs and new ones) neither
        list a run nor change a summary on later pages."""
        names = _interleaved(store, 60, seed=6)
        first = store.runs(limit=4)
        head = store.head()
        _interleaved(store, 40, seed=7)  # the same runs and more of them
        store.append([ev("job.late", correlation_id="late-run", actor="agent:z")])
        _assert_index_is_the_scan(store, head, [*names, "late-run"])
        assert first.next_cursor is not None
        rest = store.runs(limit=1000, cursor=first.next_cursor)
        scan = ScanRunIndex(store)
        keys = scan.newest_runs(Query(), head=head, before=None, limit=1000)[4:]
        want = scan.run_summaries(
            [k.correlation_id for k in keys], head=head, outcomes=DEFAULT_OUTCOMES
        )
        assert rest.runs == [want[k.correlation_id] for k in keys]
        assert all(r.last_position <= head for r in rest.runs)

    def test_the_run_index_while_another_thread_appends(self, store: EventStore) -> None:
        """Appends racing the listing (to listed runs and new ones) change nothing as
        of the listing's head."""
        names = _interleaved(store, 40, seed=11)
        stop = threading.Event()
        failed: list[BaseException] = []

        def appender() -> None:
            k = 0
            try:
                # Bounded: a scanning backend's listing reads every event, so an
                # appender that never stops could outrun it (EventStoreDB did).
                while not stop.is_set() and k < 200:
                    k += 1
                    store.append(
                        [
                            ev("job.step", correlation_id=names[k % 24]),
                            ev("job.step", correlation_id=f"new-{k % 7}"),
                        ]
                    )
            except BaseException as exc:  # pragma: no cover - reported below
                failed.append(exc)

        thread = threading.Thread(target=appender)
        thread.start()
        try:
            for _ in range(5):
                _assert_index_is_the_scan(
                    store, store.head(), [*names, *(f"new-{k}" for k in range(7))], whole=False
                )
        finally:
            stop.set()
            thread.join()
        assert not failed

    def test_the_run_index_after_retention(self, store: EventStore) -> None:
        """Removed events count nowhere; a run whose events are all gone is not listed."""
        if not can_retain(store):
            pytest.skip(f"the {store.backend_name} backend does not apply retention")
        store.append([ev("job.started", correlation_id="old-run", actor="agent:old")] * 1)
        store.append([ev("job.step", correlation_id="old-run", stream="old") for _ in range(3)])
        names = _interleaved(store, 80, seed=8)
        policy = resolve_policy(RetentionConfig(max_count=60))
        try:
            report = store.apply_retention(
                policy=policy, now=datetime.now().astimezone() + timedelta(days=1)
            )
        except NotSupportedError as exc:
            pytest.skip(str(exc))
        if not report.removed:
            pytest.skip("this backend removed nothing (e.g. only whole sealed segments)")
        assert "old-run" not in {r.correlation_id for r in store.runs(limit=1000).runs}
        _assert_index_is_the_scan(store, store.head(), [*names, "old-run"])
        names += _interleaved(store, 20, seed=9)
        _assert_index_is_the_scan(store, store.head(), [*names, "old-run"])

    def test_the_run_index_of_a_copy(self, store: EventStore, stores: Stores) -> None:
        names = _interleaved(store, 60, seed=10)
        copy = stores.new()
        if not isinstance(copy.backend, Importing):
            pytest.skip(f"the {copy.backend_name} backend does not take copied records")
        copy_store(store, copy, verify=False)
        _assert_index_is_the_scan(copy, copy.head(), names)
        assert copy.runs(limit=1000).runs == store.runs(limit=1000).runs

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
