"""The conformance kit on the memory backend (the reference every other one is
compared with), and what only the memory store promises."""

from __future__ import annotations

import msgspec
import pytest

from eventvault import EventStore, MemoryEventStore, NewEvent
from eventvault.copy import copy_store
from eventvault.errors import NotSupportedError
from eventvault.testing import (
    ImportContract,
    RetentionContract,
    StoreContract,
    StoreFactory,
    Tamper,
)
from eventvault.testing._base import mixed


def tamper_memory(store: EventStore, position: int) -> EventStore:
    assert isinstance(store, MemoryEventStore)
    i = store._positions.index(position)
    old = store._events[i]
    store._events[i] = msgspec.structs.replace(old, data={**old.data, "v": "tampered"})
    return store


class TestMemory(StoreContract, ImportContract, RetentionContract):
    retention_in_one_step = True  # one list assignment: nothing is ever half done

    @pytest.fixture
    def make_store(self) -> StoreFactory:
        return MemoryEventStore

    @pytest.fixture
    def tamper(self) -> Tamper:
        return tamper_memory


def _source(n: int) -> MemoryEventStore:
    src = MemoryEventStore()
    src.append(mixed(n))
    return src


def test_memory_store_without_import_support_says_so() -> None:
    from eventvault.store import EventStore

    class Bare(MemoryEventStore):
        _import = EventStore._import

    with pytest.raises(NotSupportedError, match="cannot take copied events"):
        copy_store(_source(3), Bare())


def test_memory_store_does_not_change_under_its_caller() -> None:
    store = MemoryEventStore()
    payload = {"k": [1, 2]}
    event = NewEvent(type="t", data=payload)
    store.append(event)
    payload["k"].append(3)
    event.data["k"].append(4)
    for rec in store.read().events:
        rec.data["k"].append(5)
    retried = store.append(NewEvent(type="t", data={"k": [1, 2]}, id=event.id))
    retried.events[0].data["k"].append(6)
    assert store.read().events[0].data == {"k": [1, 2]}
    assert store.verify().ok
