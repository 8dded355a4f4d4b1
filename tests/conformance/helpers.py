"""Small builders shared by the conformance tests."""

from __future__ import annotations

import itertools
from typing import Any

from eventvault import EventStore, NewEvent, Query, RecordedEvent


def ev(type: str = "task.completed", **kw: Any) -> NewEvent:
    kw.setdefault("data", {"v": "aaaa"})
    return NewEvent(type=type, **kw)


def mixed(n: int) -> list[NewEvent]:
    """``n`` events over 3 types, 3 actors, 4 correlation ids, 3 causation ids (or
    none) and 2 streams."""
    types = ["task.started", "task.completed", "build.finished"]
    return [
        ev(
            types[i % 3],
            actor=f"agent:{i % 3}" if i % 5 else None,
            correlation_id=f"run-{i % 4}",
            causation_id=f"cause-{i % 3}" if i % 4 else None,
            stream=f"loop-{i % 2}",
            data={"v": "aaaa", "i": i},
        )
        for i in range(n)
    ]


def count(store: EventStore) -> int:
    """How many events the store holds (positions need not be 1, 2, 3...)."""
    return sum(1 for _ in store.iter(Query(limit=1000)))


def assert_increasing(events: list[RecordedEvent], n: int) -> None:
    """``n`` events with strictly increasing positions (not necessarily contiguous)."""
    positions = [e.position for e in events]
    assert len(positions) == n
    assert all(a < b for a, b in itertools.pairwise(positions)), positions
    assert positions[0] >= 1
