"""Reading: every filter alone and combined, time ranges, cursors both ways."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from ..backends.memory import MemoryEventStore
from ..errors import ValidationError
from ..model import Query, RecordedEvent
from ..store import EventStore
from ._base import ContractBase, Stores, ev, mixed

__all__ = ["ReadContract"]

Filled = tuple[EventStore, list[RecordedEvent]]


def read_all(store: EventStore, query: Query) -> list[RecordedEvent]:
    return list(store.iter(query))


FILTERS: dict[str, tuple[Query, Callable[[RecordedEvent], bool]]] = {
    "type": (Query(types=["task.started"]), lambda e: e.type == "task.started"),
    "types-or": (
        Query(types=["task.started", "build.finished"]),
        lambda e: e.type in ("task.started", "build.finished"),
    ),
    "type-wildcard": (Query(types=["task.*"]), lambda e: e.type.startswith("task.")),
    "all-wildcard": (Query(types=["*"]), lambda e: True),
    "actor": (Query(actors=["agent:1"]), lambda e: e.actor == "agent:1"),
    "correlation": (Query(correlation_ids=["run-2"]), lambda e: e.correlation_id == "run-2"),
    "correlations-or": (
        Query(correlation_ids=["run-2", "run-3"]),
        lambda e: e.correlation_id in ("run-2", "run-3"),
    ),
    "stream": (Query(streams=["loop-1"]), lambda e: e.stream == "loop-1"),
    "causation": (Query(causation_ids=["cause-1"]), lambda e: e.causation_id == "cause-1"),
    "causations-or": (
        Query(causation_ids=["cause-0", "cause-2"], limit=7),
        lambda e: e.causation_id in ("cause-0", "cause-2"),
    ),
    "causation-and-correlation": (
        Query(causation_ids=["cause-2"], correlation_ids=["run-1", "run-2"], types=["task.*"]),
        lambda e: (
            e.causation_id == "cause-2"
            and e.correlation_id in ("run-1", "run-2")
            and e.type.startswith("task.")
        ),
    ),
    "after-before": (Query(after=10, before=50), lambda e: 10 < e.position < 50),
    "combined": (
        Query(
            types=["task.*"],
            actors=["agent:2"],
            correlation_ids=["run-1", "run-3"],
            streams=["loop-1"],
            after=5,
        ),
        lambda e: (
            e.type.startswith("task.")
            and e.actor == "agent:2"
            and e.correlation_id in ("run-1", "run-3")
            and e.stream == "loop-1"
            and e.position > 5
        ),
    ),
    "unknown-value": (Query(actors=["nobody"]), lambda e: False),
}


def _fields(q: Query) -> dict[str, Any]:
    return {f: getattr(q, f) for f in q.__struct_fields__}


class ReadContract(ContractBase):
    @pytest.fixture
    def filled(self, store: EventStore) -> Filled:
        recs: list[RecordedEvent] = []
        batch = mixed(120)
        for i in range(0, 120, 10):
            recs.extend(store.append(batch[i : i + 10]).events)
        return store, recs

    @pytest.mark.parametrize("name", sorted(FILTERS))
    def test_filter(self, filled: Filled, name: str) -> None:
        store, recs = filled
        query, predicate = FILTERS[name]
        expected = [e for e in recs if predicate(e)]
        assert read_all(store, query) == expected
        reverse = Query(**{**_fields(query), "reverse": True})
        assert read_all(store, reverse) == expected[::-1]

    def test_time_range_maps_to_positions(self, store: EventStore) -> None:
        early = store.append([ev() for _ in range(5)]).events
        time.sleep(0.01)
        middle = store.append([ev() for _ in range(5)]).events
        time.sleep(0.01)
        store.append([ev() for _ in range(5)])
        got = read_all(
            store,
            Query(
                since=middle[0].recorded_at,
                until=middle[-1].recorded_at + timedelta(microseconds=1),
            ),
        )
        assert got == middle
        assert read_all(store, Query(until=early[0].recorded_at)) == []
        assert read_all(store, Query(since=early[0].recorded_at))[:5] == early

    def test_type_filter_with_time_window(self, filled: Filled) -> None:
        store, recs = filled
        since = recs[30].recorded_at
        got = read_all(store, Query(types=["build.*"], since=since))
        assert got == [e for e in recs if e.type.startswith("build.") and e.recorded_at >= since]

    def test_pages_cover_everything_once_forward(
        self,
        filled: Filled,
    ) -> None:
        store, recs = filled
        seen: list[RecordedEvent] = []
        page = store.read(Query(limit=7))
        while True:
            seen.extend(page.events)
            if page.next_cursor is None:
                break
            page = store.read(Query(limit=7), cursor=page.next_cursor)
        assert seen == recs

    def test_pages_backward(self, filled: Filled) -> None:
        store, recs = filled
        q = Query(limit=9, reverse=True, correlation_ids=["run-1"])
        page = store.read(q)
        seen = list(page.events)
        while page.next_cursor:
            page = store.read(q, cursor=page.next_cursor)
            seen.extend(page.events)
        assert seen == [e for e in reversed(recs) if e.correlation_id == "run-1"]

    def test_paging_is_stable_under_concurrent_appends(self, store: EventStore) -> None:
        first = store.append([ev() for _ in range(10)]).events
        page = store.read(Query(limit=4))
        later = store.append([ev() for _ in range(6)]).events
        seen = list(page.events)
        while page.next_cursor:
            page = store.read(Query(limit=4), cursor=page.next_cursor)
            seen.extend(page.events)
        assert seen == first + later

    def test_last_page_has_no_cursor(self, store: EventStore) -> None:
        store.append([ev() for _ in range(3)])
        assert store.read(Query(limit=3)).next_cursor is None
        assert store.read(Query(limit=2)).next_cursor is not None
        assert store.read(Query(limit=1, after=store.head())).events == []

    def test_cursor_from_other_query_is_rejected(self, filled: Filled) -> None:
        store, _ = filled
        cursor = store.read(Query(limit=2, types=["task.*"])).next_cursor
        assert cursor is not None
        with pytest.raises(ValidationError, match="different query"):
            store.read(Query(limit=2, types=["build.*"]), cursor=cursor)

    def test_a_cursor_continues_in_either_direction(self, filled: Filled) -> None:
        """A forward page's cursor, used with reverse, goes back from where that page
        stopped (and a reverse cursor forward): a reader can turn around mid-way."""
        store, _ = filled
        q = Query(limit=3, types=["task.*"])
        everything = [e.position for e in store.iter(Query(types=["task.*"], limit=1000))]
        page = store.read(q)
        assert page.next_cursor is not None
        stop = page.events[-1].position
        back = store.read(
            msgspec.structs.replace(q, reverse=True, limit=1000), cursor=page.next_cursor
        )
        assert [e.position for e in back.events] == [p for p in reversed(everything) if p < stop]
        rpage = store.read(msgspec.structs.replace(q, reverse=True))
        assert rpage.next_cursor is not None
        rstop = rpage.events[-1].position
        fwd = store.read(msgspec.structs.replace(q, limit=1000), cursor=rpage.next_cursor)
        assert [e.position for e in fwd.events] == [p for p in everything if p > rstop]

    @pytest.mark.parametrize("cursor", ["", "garbage!", "eyJ2IjoxfQ", "W10", "W1s"])
    def test_malformed_cursor_is_rejected(self, store: EventStore, cursor: str) -> None:
        with pytest.raises(ValidationError, match="cursor"):
            store.read(Query(), cursor=cursor)

    def test_cursor_from_another_store_is_rejected(self, stores: Stores) -> None:
        a = stores.new()
        a.append([ev() for _ in range(3)])
        cursor = a.read(Query(limit=1)).next_cursor
        with MemoryEventStore() as b, pytest.raises(ValidationError, match="another store"):
            b.read(Query(limit=1), cursor=cursor)
