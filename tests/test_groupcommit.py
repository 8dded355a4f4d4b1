"""Group commit owns outcome completeness: every request of a group ends with its
records or with an error of its own, whatever the leader's commit function did."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest

from eventvault import EventStore, MemoryEventStore, NewEvent
from eventvault.errors import EventVaultError, StoreClosedError, StoreError, StoreUnavailableError
from eventvault.groupcommit import GroupCommit, Request
from eventvault.model import ExpectedRevision, RecordedEvent

ANY = ExpectedRevision.ANY


def _group_of(n: int, commit: Callable[[list[Request]], None]) -> list[object]:
    """Submit ``n`` requests from ``n`` threads while the first commit is held open,
    so the other ``n - 1`` queue up and are committed together by one leader.
    Returns each thread's outcome (its records or the exception it got)."""
    gate = threading.Event()
    entered = threading.Event()
    calls = 0

    def gated(group: list[Request]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first, lone leader: hold it until everyone queued
            entered.set()
            gate.wait(10)
        commit(group)

    gc = GroupCommit(gated)
    outcomes: list[object] = [None] * n

    def run(i: int) -> None:
        try:
            outcomes[i] = gc.submit([NewEvent(type="t", data={"i": i})], ANY)
        except BaseException as exc:
            outcomes[i] = exc

    first = threading.Thread(target=run, args=(0,))
    first.start()
    assert entered.wait(10)
    others = [threading.Thread(target=run, args=(i,)) for i in range(1, n)]
    for t in others:
        t.start()
    # Wait until every other thread has queued its request behind the leader.
    for _ in range(1000):
        with gc._cv:
            if len(gc._pending) == n - 1:
                break
        threading.Event().wait(0.005)
    gate.set()
    for t in [first, *others]:
        t.join(10)
    return outcomes


@pytest.mark.parametrize(
    "raised",
    [TypeError("encoder bug"), MemoryError(), OSError(5, "EIO"), KeyError("x"), AssertionError()],
    ids=["TypeError", "MemoryError", "OSError", "KeyError", "AssertionError"],
)
def test_a_raising_leader_gives_every_request_a_typed_error(raised: Exception) -> None:
    def commit(group: list[Request]) -> None:
        raise raised

    outcomes = _group_of(6, commit)
    for outcome in outcomes:
        assert isinstance(outcome, EventVaultError), outcome
        assert outcome.__cause__ is raised
    # An OSError is the store being unavailable; anything else is a store error.
    if isinstance(raised, OSError | MemoryError):
        assert all(isinstance(o, StoreUnavailableError) for o in outcomes)
    assert all(isinstance(o, StoreError) for o in outcomes)


def test_a_leader_that_raises_after_settling_does_not_acknowledge() -> None:
    """Results set before the commit raised were never proven written: error them."""

    def commit(group: list[Request]) -> None:
        for req in group:
            req.results = [_fake_record()]
        raise RuntimeError("write failed after stamping")

    outcomes = _group_of(4, commit)
    assert all(isinstance(o, StoreError) for o in outcomes), outcomes


def test_a_commit_that_forgets_a_request_gives_it_an_error() -> None:
    """A commit function that returns without deciding a request (a bug) must not
    let that request return an empty result: a non-empty batch never does."""

    def commit(group: list[Request]) -> None:
        group[0].results = [_fake_record()]  # decides only the first request

    outcomes = _group_of(5, commit)
    decided = [o for o in outcomes if isinstance(o, list)]
    errors = [o for o in outcomes if isinstance(o, EventVaultError)]
    assert all(o for o in decided), "a non-empty batch returned no records"
    assert len(errors) >= 3
    assert all(isinstance(e, StoreError) for e in errors)


def test_a_request_keeps_its_own_error_when_the_leader_raises() -> None:
    own = StoreUnavailableError("disk full")

    def commit(group: list[Request]) -> None:
        group[-1].error = own
        raise ValueError("then a bug")

    outcomes = _group_of(3, commit)
    assert own in outcomes
    assert all(isinstance(o, StoreError) for o in outcomes)


def test_keyboard_interrupt_in_the_leader_still_fails_the_followers() -> None:
    """A BaseException that is not an Exception stays the leader's own (it is the
    thread's interrupt), but the followers it took must not hang or succeed."""

    def commit(group: list[Request]) -> None:
        if len(group) > 1:
            raise KeyboardInterrupt

    outcomes = _group_of(4, commit)
    interrupted = [o for o in outcomes if isinstance(o, KeyboardInterrupt)]
    followers = [o for o in outcomes if not isinstance(o, KeyboardInterrupt)]
    assert len(interrupted) == 1  # the leader's own
    assert len(followers) == 3
    assert all(isinstance(o, StoreError) for o in followers)
    assert sum("interrupted" in str(o) for o in followers) == 2


def test_the_store_stays_usable_after_a_raising_commit() -> None:
    gc = GroupCommit(lambda group: (_ for _ in ()).throw(TypeError("boom")))
    with pytest.raises(StoreError, match="TypeError"):
        gc.submit([NewEvent(type="t")], ANY)
    with pytest.raises(StoreError):  # not wedged: the next call runs the commit again
        gc.submit([NewEvent(type="t")], ANY)


def test_memory_store_appends_from_many_threads_all_acknowledged() -> None:
    store = MemoryEventStore()
    results: list[int] = []
    lock = threading.Lock()

    def writer(k: int) -> None:
        for i in range(50):
            res = store.append(NewEvent(type="t", stream=f"s{k}", data={"i": i}))
            with lock:
                results.append(res.events[0].position)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(1, 401))
    assert store.verify().ok


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_backends_never_acknowledge_what_a_raising_leader_did_not_write(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 item 5 on real stores: an encoder bug inside the leader's commit."""
    store: EventStore
    if backend == "file":
        from eventvault.backends.file import FileEventStore
        from eventvault.backends.file import writing as module

        store = FileEventStore(tmp_path / "s")
        target = "encode_batch"
    else:
        from eventvault.backends.postgres import writing as module  # type: ignore[no-redef]
        from eventvault.backends.postgres.store import PostgresEventStore, drop_schema

        dsn = request.getfixturevalue("postgres_dsn")
        schema = f"t_{uuid4().hex[:12]}"
        store = PostgresEventStore(dsn, schema=schema)
        request.addfinalizer(lambda: drop_schema(dsn, schema))
        target = "_row"
    with store:
        store.append(NewEvent(type="before"))
        monkeypatch.setattr(module, target, _raises_type_error)
        outcomes: list[object] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def writer(k: int) -> None:
            start.wait()
            for i in range(5):
                try:
                    out: object = store.append(NewEvent(type="t", data={"k": k, "i": i}))
                except BaseException as exc:
                    out = exc
                with lock:
                    outcomes.append(out)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(outcomes) == 40
        for out in outcomes:
            assert isinstance(out, EventVaultError), f"acknowledged but not written: {out!r}"
        monkeypatch.undo()
        assert store.head() == 1
        assert store.append(NewEvent(type="after")).events[0].position == 2
        assert store.verify().ok


def _raises_type_error(*args: object, **kwargs: object) -> object:
    raise TypeError("an encoder bug")


def _fake_record() -> RecordedEvent:
    from datetime import UTC, datetime
    from uuid import uuid4

    now = datetime.now(UTC)
    return RecordedEvent(
        position=1,
        stream_revision=0,
        recorded_at=now,
        id=uuid4(),
        type="t",
        stream="default",
        occurred_at=now,
        hash="00",
    )


def test_what_queues_during_a_commit_is_the_next_group() -> None:
    """Followers wait for their request, not a lock: the next leader takes every
    request that queued meanwhile, in one commit."""
    sizes: list[list[int]] = []

    def commit(group: list[Request]) -> None:
        sizes.append([req.batch[0].data["i"] for req in group])
        for req in group:
            req.results = [_fake_record()]

    outcomes = _group_of(6, commit)
    assert all(isinstance(o, list) and len(o) == 1 for o in outcomes), outcomes
    assert sizes[0] == [0]  # the lone first leader
    assert len(sizes) == 2, sizes  # ...then everyone else, together
    assert sorted(sizes[1]) == [1, 2, 3, 4, 5]


def test_one_failing_request_does_not_fail_its_neighbours() -> None:
    """The commit function decides per request: an error set on one request is that
    request's alone; the others get their records."""
    own = StoreUnavailableError("this batch only")

    def commit(group: list[Request]) -> None:
        for req in group:
            if req.batch[0].data["i"] == 3:
                req.error = own
            else:
                req.results = [_fake_record()]

    outcomes = _group_of(5, commit)
    assert outcomes[3] is own
    assert all(isinstance(o, list) and len(o) == 1 for i, o in enumerate(outcomes) if i != 3)


def test_every_request_gets_an_error_object_of_its_own() -> None:
    """One exception object raised in several threads would collect their tracebacks
    into each other: each request gets a copy, same type and message and cause."""
    raised = StoreUnavailableError("disk full")
    raised.__cause__ = OSError(28, "ENOSPC")

    def commit(group: list[Request]) -> None:
        raise raised

    outcomes = _group_of(5, commit)
    assert all(type(o) is StoreUnavailableError for o in outcomes), outcomes
    assert len({id(o) for o in outcomes}) == 5
    assert all(str(o) == "disk full" and o.__cause__ is raised.__cause__ for o in outcomes)  # type: ignore[union-attr]


def test_drain_waits_for_the_running_commit_then_refuses_new_requests() -> None:
    gate = threading.Event()
    entered = threading.Event()

    def commit(group: list[Request]) -> None:
        entered.set()
        gate.wait(10)
        for req in group:
            req.results = [_fake_record()]

    gc = GroupCommit(commit)
    got: list[list[RecordedEvent]] = []
    writer = threading.Thread(target=lambda: got.append(gc.submit([NewEvent(type="t")], ANY)))
    writer.start()
    assert entered.wait(10)
    drained = threading.Event()
    drainer = threading.Thread(target=lambda: (gc.drain(), drained.set()))
    drainer.start()
    assert not drained.wait(0.2), "drain returned while a commit was running"
    with pytest.raises(StoreClosedError):  # refused already, before the commit ends
        gc.submit([NewEvent(type="t")], ANY)
    gate.set()
    assert drained.wait(10)
    writer.join(10)
    drainer.join(10)
    assert len(got) == 1
    assert len(got[0]) == 1
