"""copy_store into and out of every backend (the other side is the memory reference)."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from eventvault import EventStore, MemoryEventStore, NewEvent, Query
from eventvault.copy import CopyError, CopyReport, compare_stores, copy_store
from eventvault.errors import DuplicateEventError, NotSupportedError
from eventvault.model import Import

from .conftest import StoreFactory
from .helpers import count, mixed


def _source(n: int = 300) -> MemoryEventStore:
    src = MemoryEventStore()
    events = mixed(n)
    for i in range(0, n, 50):
        src.append(events[i : i + 50])
    return src


def _everything(store: EventStore) -> list[tuple[object, ...]]:
    """Each event without its position (which the destination numbers its own way)."""
    return [
        msgspec.structs.astuple(msgspec.structs.replace(e, position=0))
        for e in store.iter(Query(limit=1000))
    ]


#: Tests that write copied records into ``store`` (its ``_import``).
_INTO = {
    "test_copy_into_keeps_everything_but_positions",
    "test_resume_continues_after_what_is_there_and_never_duplicates",
    "test_an_id_with_other_content_is_refused_untouched",
    "test_slice_is_chained_afresh_and_verifies",
    "test_follow_copies_what_arrives_meanwhile",
    "test_compare_names_the_first_difference",
}


@pytest.fixture(autouse=True)
def _import_capable(request: pytest.FixtureRequest) -> None:
    """The http backend cannot take copied records (only the store behind the server
    may write hashes and times it did not make): it says so (the test below), and
    the tests that copy into a store skip, visibly, with the reason."""
    if request.node.originalname not in _INTO:
        return
    if request.getfixturevalue("backend").startswith("http-"):
        pytest.skip("http: a copy goes into the server's store on its host, not through it")


def test_a_destination_without_import_says_so_and_stays_untouched(store: EventStore) -> None:
    if store.backend_name != "http":
        return
    with pytest.raises(NotSupportedError, match="run `eventvault copy` on the server's host"):
        copy_store(_source(10), store)
    assert count(store) == 0
    store.append(NewEvent(type="was.here"))
    before = _everything(store)
    with pytest.raises(NotSupportedError, match="cannot take copied events"):
        store._import(Import(list(_source(3).iter())))
    assert _everything(store) == before


def test_copy_into_keeps_everything_but_positions(store: EventStore) -> None:
    src = _source()
    report = copy_store(src, store, batch=64)
    assert report.copied == 300
    assert report.resumed_after is None
    assert not report.rechained
    assert report.comparison is not None
    assert report.comparison.ok, report.comparison
    assert _everything(store) == _everything(src)
    result = store.verify()
    assert result.ok
    assert result.head_hash == src.verify().head_hash
    # Revisions carry on where the source left them.
    rec = store.append(NewEvent(type="x.y", stream="loop-0"), expected_revision=149)
    assert rec.events[0].stream_revision == 150
    assert store.verify().ok


def test_copy_out_of(store: EventStore) -> None:
    events = mixed(120)
    for i in range(0, 120, 40):
        store.append(events[i : i + 40])
    dst = MemoryEventStore()
    report = copy_store(store, dst)
    assert report.comparison is not None
    assert report.comparison.ok
    assert _everything(dst) == _everything(store)
    assert dst.verify().head_hash == store.verify().head_hash


def test_resume_continues_after_what_is_there_and_never_duplicates(store: EventStore) -> None:
    src = _source(200)
    first = list(src.iter(Query(limit=1000)))[:77]
    store._import(Import(first))  # what an interrupted copy leaves
    report = copy_store(src, store, batch=50)
    assert report.resumed_after == first[-1].position
    assert report.copied == 123
    assert count(store) == 200
    assert _everything(store) == _everything(src)
    # Again: nothing to do.
    again = copy_store(src, store)
    assert again.copied == 0
    assert again.comparison is not None
    assert again.comparison.ok
    # Re-sending an imported batch (an unknown commit outcome) writes nothing twice,
    # small or large (PostgreSQL takes large ones by COPY, trusting UNIQUE first).
    store._import(Import(first[-5:]))
    everything = list(src.iter(Query(limit=1000)))
    again_all = store._import(Import(everything))
    assert [e.id for e in again_all] == [e.id for e in everything]
    assert count(store) == 200


def test_refuses_a_destination_that_is_not_a_copy(store: EventStore) -> None:
    store.append(NewEvent(type="other.thing", data={"v": 1}))
    before = _everything(store)
    with pytest.raises(CopyError, match="not a copy of this source"):
        copy_store(_source(10), store)
    assert _everything(store) == before


def test_an_id_with_other_content_is_refused_untouched(store: EventStore) -> None:
    src = _source(10)
    rec = next(iter(src.iter(Query(limit=1))))
    forged = msgspec.structs.replace(rec, data={"v": "other"})
    store._import(Import([rec]))
    with pytest.raises(DuplicateEventError):
        store._import(Import([forged]))
    assert count(store) == 1


def test_slice_is_chained_afresh_and_verifies(store: EventStore) -> None:
    src = _source(300)
    query = Query(types=["task.*"], streams=["loop-1"])
    report = copy_store(src, store, query)
    assert report.rechained
    wanted = [e for e in src.iter(Query(limit=1000)) if query.matches(e)]
    got = list(store.iter(Query(limit=1000)))
    assert [e.id for e in got] == [e.id for e in wanted]
    assert [e.stream_revision for e in got] == [e.stream_revision for e in wanted]
    assert [e.recorded_at for e in got] == [e.recorded_at for e in wanted]
    assert store.verify().ok
    assert report.comparison is not None
    assert report.comparison.ok
    # And resuming a slice works the same way.
    src.append([NewEvent(type="task.late", stream="loop-1"), NewEvent(type="other", stream="x")])
    again = copy_store(src, store, query)
    assert again.copied == 1
    assert again.comparison is not None
    assert again.comparison.ok


def test_follow_copies_what_arrives_meanwhile(store: EventStore) -> None:
    src = _source(50)
    stop = threading.Event()
    out: list[CopyReport] = []
    t = threading.Thread(
        target=lambda: out.append(
            copy_store(src, store, follow=True, stop=stop, poll_interval=0.05, batch=20)
        )
    )
    t.start()
    for k in range(10):
        src.append([NewEvent(type="late.event", data={"k": k, "j": j}) for j in range(7)])
        time.sleep(0.02)
    deadline = time.monotonic() + 30
    while count(store) < 120 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    t.join(30)
    assert not t.is_alive()
    assert _everything(store) == _everything(src)
    assert compare_stores(src, store).ok


def test_compare_names_the_first_difference(store: EventStore) -> None:
    src = _source(30)
    copy_store(src, store, verify=False)
    src.append(NewEvent(type="only.here"))
    cmp = compare_stores(src, store)
    assert not cmp.ok
    assert cmp.events == 30
    assert cmp.difference is not None
    assert "ends after 30 events" in cmp.difference


def test_memory_store_without_import_support_says_so() -> None:
    from eventvault.store import EventStore

    class Bare(MemoryEventStore):
        _import = EventStore._import

    with pytest.raises(NotSupportedError, match="cannot take copied events"):
        copy_store(_source(3), Bare())


def test_same_store_is_refused(make_store: StoreFactory) -> None:
    store = make_store()
    from eventvault.errors import ValidationError

    with pytest.raises(ValidationError, match="same store"):
        copy_store(store, store)
