"""The kit's one seam: the fixtures a subclass gives, and the builders tests share.

A subclass gives ``make_store`` (required) and may override ``tamper`` and
``reopen_store``; everything else — ``store``, ``stores`` — is derived here, and
every store a test opens through them is closed when the test ends (before the
subclass's own fixture tears down what it set up: a schema, a server).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..model import Import, NewEvent, Query, RecordedEvent
from ..spi import Retaining
from ..store import EventStore

__all__ = [
    "ContractBase",
    "Reopen",
    "StoreFactory",
    "Stores",
    "Tamper",
    "all_events",
    "assert_increasing",
    "can_retain",
    "count",
    "ev",
    "import_records",
    "mixed",
    "need_tamper",
]

#: Opens a fresh, empty store; each call a new one.
StoreFactory = Callable[[], EventStore]
#: Alters the stored event at ``position`` in place (behind the store's back) and
#: returns the store to go on with: the same object, or one reopened to see it.
Tamper = Callable[[EventStore, int], EventStore]
#: Closes a store and opens the same one again (what it stored must be there).
Reopen = Callable[[EventStore], EventStore]


def _same(store: EventStore) -> EventStore:
    return store


class Stores:
    """The stores one test opens (fresh, or reopened); :meth:`close_all` at its end."""

    def __init__(self, make: StoreFactory, reopen: Reopen) -> None:
        self._make = make
        self._reopen = reopen
        self._opened: list[EventStore] = []

    def new(self) -> EventStore:
        """A fresh, empty store."""
        return self.keep(self._make())

    def reopen(self, store: EventStore) -> EventStore:
        """``store`` closed and opened again (the same object if it cannot be)."""
        return self.keep(self._reopen(store))

    def keep(self, store: EventStore) -> EventStore:
        """Close ``store`` with the others when the test ends."""
        self._opened.append(store)
        return store

    def close_all(self) -> None:
        for store in reversed(self._opened):
            store.close()  # closing twice is fine (part of the contract)
        self._opened.clear()


class ContractBase:
    """The fixtures every contract class shares. Not a test class itself."""

    @pytest.fixture
    def tamper(self) -> Tamper | None:
        """Override to let the tamper-evidence tests run (see :data:`Tamper`)."""
        return None

    @pytest.fixture
    def reopen_store(self) -> Reopen:
        """Override for a durable store (see :data:`Reopen`). The default keeps the
        same object: nothing of an in-process store outlives it."""
        return _same

    @pytest.fixture
    def stores(self, make_store: StoreFactory, reopen_store: Reopen) -> Iterator[Stores]:
        opened = Stores(make_store, reopen_store)
        yield opened
        opened.close_all()

    @pytest.fixture
    def store(self, stores: Stores) -> EventStore:
        """A fresh, empty store for the test."""
        return stores.new()


def need_tamper(tamper: Tamper | None) -> Tamper:
    """The tamper hook, or a visible skip when the test class gives none."""
    if tamper is None:
        pytest.skip("no `tamper` fixture on this test class: tamper evidence is not checked")
    return tamper


def import_records(store: EventStore, records: list[RecordedEvent]) -> list[RecordedEvent]:
    """Write copied records into ``store`` (its import capability), as ``copy`` does."""
    return store.import_records(Import(records))


def can_retain(store: EventStore) -> bool:
    """Whether ``store`` applies retention (else it refuses with NotSupportedError)."""
    return isinstance(store.backend, Retaining)


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


def all_events(store: EventStore) -> list[RecordedEvent]:
    return list(store.iter(Query(limit=1000)))


def assert_increasing(events: list[RecordedEvent], n: int) -> None:
    """``n`` events with strictly increasing positions (not necessarily contiguous)."""
    positions = [e.position for e in events]
    assert len(positions) == n
    assert all(a < b for a, b in itertools.pairwise(positions)), positions
    assert positions[0] >= 1
