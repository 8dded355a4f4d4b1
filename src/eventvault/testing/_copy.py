"""copy_store into and out of a backend (the other side is the memory reference).

Copying *out of* a store needs only reading: every backend's (:class:`CopyOutContract`,
part of the core contract). Copying *into* one needs the import capability
(:class:`ImportContract`): a backend without it says so and stays untouched.
"""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

from ..backends.memory import MemoryEventStore
from ..copy import CopyError, CopyReport, compare_stores, copy_store
from ..errors import DuplicateEventError, NotSupportedError, ValidationError
from ..model import NewEvent, Query
from ..store import EventStore
from ._base import ContractBase, Stores, count, import_records, mixed

__all__ = ["CopyOutContract", "ImportContract"]


def _source(n: int = 300, like: EventStore | None = None) -> MemoryEventStore:
    """The memory reference, in the hash format of ``like`` (the store under test):
    a copy keeps its source's hashes only between stores of one format."""
    src = MemoryEventStore(hash_format=like.hash_format if like is not None else 2)
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


class CopyOutContract(ContractBase):
    """Copies out of the store, and what a store that cannot import says."""

    def test_a_destination_without_import_says_so_and_stays_untouched(
        self, store: EventStore
    ) -> None:
        if isinstance(self, ImportContract):
            return  # it can: ImportContract checks how
        with pytest.raises(NotSupportedError, match="cannot take copied events"):
            copy_store(_source(10, like=store), store)
        assert count(store) == 0
        store.append(NewEvent(type="was.here"))
        before = _everything(store)
        with pytest.raises(NotSupportedError, match="cannot take copied events"):
            import_records(store, list(_source(3).iter()))
        assert _everything(store) == before

    def test_copy_out_of(self, store: EventStore) -> None:
        events = mixed(120)
        for i in range(0, 120, 40):
            store.append(events[i : i + 40])
        dst = MemoryEventStore(hash_format=store.hash_format)
        report = copy_store(store, dst)
        assert report.comparison is not None
        assert report.comparison.ok
        assert _everything(dst) == _everything(store)
        assert dst.verify().head_hash == store.verify().head_hash

    def test_refuses_a_destination_that_is_not_a_copy(self, store: EventStore) -> None:
        store.append(NewEvent(type="other.thing", data={"v": 1}))
        before = _everything(store)
        with pytest.raises(CopyError, match="not a copy of this source"):
            copy_store(_source(10, like=store), store)
        assert _everything(store) == before

    def test_same_store_is_refused(self, stores: Stores) -> None:
        store = stores.new()
        with pytest.raises(ValidationError, match="same store"):
            copy_store(store, store)


class ImportContract(ContractBase):
    """For a backend that takes copied records (``eventvault copy`` into it)."""

    def test_copy_into_keeps_everything_but_positions(self, store: EventStore) -> None:
        src = _source(like=store)
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

    def test_resume_continues_after_what_is_there_and_never_duplicates(
        self, store: EventStore
    ) -> None:
        src = _source(200, like=store)
        first = list(src.iter(Query(limit=1000)))[:77]
        import_records(store, first)  # what an interrupted copy leaves
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
        import_records(store, first[-5:])
        everything = list(src.iter(Query(limit=1000)))
        again_all = import_records(store, everything)
        assert [e.id for e in again_all] == [e.id for e in everything]
        assert count(store) == 200

    def test_an_id_with_other_content_is_refused_untouched(self, store: EventStore) -> None:
        src = _source(10, like=store)
        rec = next(iter(src.iter(Query(limit=1))))
        forged = msgspec.structs.replace(rec, data={"v": "other"})
        import_records(store, [rec])
        with pytest.raises(DuplicateEventError):
            import_records(store, [forged])
        assert count(store) == 1

    def test_slice_is_chained_afresh_and_verifies(self, store: EventStore) -> None:
        src = _source(300, like=store)
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
        src.append(
            [NewEvent(type="task.late", stream="loop-1"), NewEvent(type="other", stream="x")]
        )
        again = copy_store(src, store, query)
        assert again.copied == 1
        assert again.comparison is not None
        assert again.comparison.ok

    def test_follow_copies_what_arrives_meanwhile(self, store: EventStore) -> None:
        src = _source(50, like=store)
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

    def test_compare_names_the_first_difference(self, store: EventStore) -> None:
        src = _source(30, like=store)
        copy_store(src, store, verify=False)
        src.append(NewEvent(type="only.here"))
        cmp = compare_stores(src, store)
        assert not cmp.ok
        assert cmp.events == 30
        assert cmp.difference is not None
        assert "ends after 30 events" in cmp.difference
