"""Appending: round trip, atomic batches, expected revisions, idempotency, bad input."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest

from ..errors import (
    DuplicateEventError,
    StoreClosedError,
    ValidationError,
    WrongExpectedRevisionError,
)
from ..model import ANY, NO_STREAM, STREAM_EXISTS, NewEvent, Query
from ..store import EventStore
from ._base import ContractBase, Stores, all_events, assert_increasing, count, ev

__all__ = ["AppendContract"]


class AppendContract(ContractBase):
    def test_round_trip_keeps_every_field(self, store: EventStore) -> None:
        when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        new = NewEvent(
            type="task.completed",
            data={"task": "T1", "n": [1, 2.5, None, True]},
            stream="loop-42",
            actor="agent:coder",
            correlation_id="run-7",
            causation_id="cmd-1",
            source="urn:ci",
            occurred_at=when,
            metadata={"k": "v"},
        )
        rec = store.append(new).events[0]
        (got,) = store.read().events
        assert got == rec
        assert (got.id, got.type, got.stream, got.actor, got.correlation_id) == (
            new.id,
            "task.completed",
            "loop-42",
            "agent:coder",
            "run-7",
        )
        assert (got.causation_id, got.source, got.occurred_at) == ("cmd-1", "urn:ci", when)
        assert got.data == {"task": "T1", "n": [1, 2.5, None, True]}
        assert got.metadata == {"k": "v"}
        assert got.position == store.head()
        assert got.stream_revision == 0
        assert len(got.hash) == 64

    def test_large_batch_round_trips(self, store: EventStore) -> None:
        """Large enough to take a backend's bulk path (PostgreSQL: COPY)."""
        batch = [
            ev(stream=f"s{i % 7}", data={"v": "aaaa", "i": i}, actor="a" if i % 2 else None)
            for i in range(700)
        ]
        res = store.append(batch)
        assert_increasing(res.events, 700)
        got = list(store.iter(Query(limit=250)))
        assert got == res.events
        assert [e.data["i"] for e in got] == list(range(700))
        assert store.verify().ok

    def test_single_event_and_list_are_both_accepted(self, store: EventStore) -> None:
        store.append(ev())
        store.append([ev(), ev()])
        assert_increasing(all_events(store), 3)

    def test_positions_increase_and_recorded_at_never_goes_back(self, store: EventStore) -> None:
        for _ in range(5):
            store.append([ev() for _ in range(7)])
        events = all_events(store)
        assert_increasing(events, 35)
        assert all(a.recorded_at <= b.recorded_at for a, b in itertools.pairwise(events))

    def test_stream_revisions_count_per_stream(self, store: EventStore) -> None:
        store.append([ev(stream="a"), ev(stream="b"), ev(stream="a")])
        store.append(ev(stream="a"))
        revs = [(e.stream, e.stream_revision) for e in all_events(store)]
        assert revs == [("a", 0), ("b", 0), ("a", 1), ("a", 2)]

    def test_batch_with_one_bad_event_writes_nothing(self, store: EventStore) -> None:
        store.append(ev())
        big = ev(data={"v": "x" * (store.max_event_bytes + 1)})
        with pytest.raises(ValidationError, match="limit"):
            store.append([ev(), big, ev()])
        assert count(store) == 1
        assert len(all_events(store)) == 1

    def test_empty_batch_is_rejected(self, store: EventStore) -> None:
        with pytest.raises(ValidationError):
            store.append([])

    def test_non_event_in_batch_is_rejected(self, store: EventStore) -> None:
        with pytest.raises(ValidationError, match="not a NewEvent"):
            store.append([ev(), {"type": "x"}])  # type: ignore[list-item]
        assert store.head() == 0

    def test_expected_revision_matches(self, store: EventStore) -> None:
        store.append(ev(stream="s"), expected_revision=NO_STREAM)
        res = store.append([ev(stream="s"), ev(stream="s")], expected_revision=0)
        assert res.last_revision == 2
        store.append(ev(stream="s"), expected_revision=STREAM_EXISTS)
        store.append(ev(stream="s"), expected_revision=ANY)
        assert count(store) == 5

    def test_wrong_expected_revision_writes_nothing(self, store: EventStore) -> None:
        store.append(ev(stream="s"))
        with pytest.raises(WrongExpectedRevisionError) as info:
            store.append(ev(stream="s"), expected_revision=5)
        assert info.value.actual == 0
        with pytest.raises(WrongExpectedRevisionError):
            store.append(ev(stream="s"), expected_revision=NO_STREAM)
        with pytest.raises(WrongExpectedRevisionError):
            store.append(ev(stream="new"), expected_revision=STREAM_EXISTS)
        with pytest.raises(WrongExpectedRevisionError):
            store.append(ev(stream="new"), expected_revision=0)
        assert count(store) == 1

    def test_expected_revision_needs_one_stream(self, store: EventStore) -> None:
        with pytest.raises(ValidationError, match="one stream"):
            store.append([ev(stream="a"), ev(stream="b")], expected_revision=NO_STREAM)

    @pytest.mark.parametrize("bad", [-1, "3", 1.0, True])
    def test_expected_revision_must_be_a_revision(self, store: EventStore, bad: object) -> None:
        with pytest.raises(ValidationError):
            store.append(ev(), expected_revision=bad)  # type: ignore[arg-type]

    def test_racing_writers_exactly_one_wins(self, store: EventStore) -> None:
        store.append(ev(stream="race"))
        n = 8
        barrier = threading.Barrier(n)
        outcomes: list[str] = []

        def writer() -> None:
            barrier.wait()
            try:
                store.append(ev(stream="race"), expected_revision=0)
                outcomes.append("won")
            except WrongExpectedRevisionError:
                outcomes.append("lost")

        threads = [threading.Thread(target=writer) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["lost"] * (n - 1) + ["won"]
        assert count(store) == 2

    def test_same_id_same_content_is_idempotent(self, store: EventStore) -> None:
        e = ev()
        first = store.append(e).events[0]
        again = store.append(e).events[0]
        assert again == first
        assert count(store) == 1

    def test_retry_of_a_batch_with_expected_revision_succeeds(self, store: EventStore) -> None:
        batch = [ev(stream="s"), ev(stream="s")]
        first = store.append(batch, expected_revision=NO_STREAM)
        again = store.append(batch, expected_revision=NO_STREAM)
        assert again.events == first.events
        assert count(store) == 2

    def test_partly_stored_batch_writes_only_new_events(self, store: EventStore) -> None:
        a, b = ev(), ev()
        stored = store.append(a).events[0]
        res = store.append([a, b])
        assert res.events[0] == stored
        assert res.events[1].position > stored.position
        assert count(store) == 2

    def test_same_id_other_content_is_rejected(self, store: EventStore) -> None:
        e = ev()
        store.append(e)
        other = NewEvent(type=e.type, id=e.id, data={"v": "different"})
        with pytest.raises(DuplicateEventError, match="already stored"):
            store.append([ev(), other])
        assert count(store) == 1

    def test_duplicate_id_inside_batch_is_rejected(self, store: EventStore) -> None:
        e = ev()
        with pytest.raises(ValidationError, match="twice"):
            store.append([e, e])
        assert store.head() == 0

    def test_get_by_id(self, store: EventStore) -> None:
        recs = store.append([ev() for _ in range(20)]).events
        assert store.get(recs[7].id) == recs[7]
        assert store.get(str(recs[3].id)) == recs[3]
        assert store.get("01234567-89ab-7def-8123-456789abcdef") is None
        with pytest.raises(ValidationError):
            store.get("not-a-uuid")

    def test_recorded_at_is_the_store_clock(self, store: EventStore) -> None:
        past = datetime(2020, 1, 1, tzinfo=UTC)
        before = datetime.now(UTC)
        rec = store.append(ev(occurred_at=past)).events[0]
        assert rec.occurred_at == past
        assert before - timedelta(seconds=1) <= rec.recorded_at <= datetime.now(UTC)

    def test_closed_store_refuses_work(self, stores: Stores) -> None:
        store = stores.new()
        store.close()
        store.close()
        with pytest.raises(StoreClosedError):
            store.append(ev())
        with pytest.raises(StoreClosedError):
            store.read()

    def test_stats_count_events(self, store: EventStore) -> None:
        assert store.stats().events == 0
        store.append([ev() for _ in range(12)])
        st = store.stats()
        events = all_events(store)
        assert (st.events, st.head_position, st.first_position) == (
            12,
            events[-1].position,
            events[0].position,
        )
        assert st.oldest_recorded_at is not None
        assert st.newest_recorded_at is not None
        assert st.oldest_recorded_at <= st.newest_recorded_at

    def test_a_retry_that_leaves_occurred_at_to_the_store_is_idempotent(
        self, store: EventStore
    ) -> None:
        """An HTTP client re-sending the same body (same id, no occurred_at) gets the stored
        event back, not a conflict: its default time is not a time of its own."""
        import uuid as _uuid

        event_id = _uuid.uuid4()
        first = store.append(NewEvent(id=event_id, type="task.done", data={"v": 1}))
        again = store.append(NewEvent(id=event_id, type="task.done", data={"v": 1}))
        assert again.events == first.events
        with pytest.raises(DuplicateEventError):
            store.append(NewEvent(id=event_id, type="task.done", data={"v": 2}))

    def test_the_result_says_how_many_events_were_written(self, store: EventStore) -> None:
        """What a retry did not write is not counted as written (metrics rely on it)."""
        a, b, c = ev(), ev(), ev()
        assert store.append([a, b]).written == 2
        again = store.append([a, b])
        assert (again.written, again.retried) == (0, 2)
        partly = store.append([a, c])
        assert (partly.written, partly.retried) == (1, 1)
        assert count(store) == 3
