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
    ProvingContract,
    RetentionContract,
    StoreContract,
    StoreFactory,
    Tamper,
)
from eventvault.testing._base import mixed


def tamper_memory(store: EventStore, position: int) -> EventStore:
    assert isinstance(store, MemoryEventStore)
    i = store.backend._positions.index(position)
    old = store.backend._events[i]
    store.backend._events[i] = msgspec.structs.replace(old, data={**old.data, "v": "tampered"})
    return store


class TestMemory(StoreContract, ImportContract, RetentionContract, ProvingContract):
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
    from eventvault.backends.memory import MemoryBackend
    from eventvault.spi import Backend
    from eventvault.store import EventStore

    class Bare(Backend):  # the memory backend's core, without Importing
        name = "bare"

        def __init__(self) -> None:
            self.inner = MemoryBackend()

        @property
        def store_id(self) -> str:
            return self.inner.store_id

        def commit(self, batch, expected):  # type: ignore[no-untyped-def]
            return self.inner.commit(batch, expected)

        def read(self, query, limit):  # type: ignore[no-untyped-def]
            return self.inner.read(query, limit)

        def get(self, event_id):  # type: ignore[no-untyped-def]
            return self.inner.get(event_id)

        def head(self) -> int:
            return self.inner.head()

        def stats(self):  # type: ignore[no-untyped-def]
            return self.inner.stats()

        def wait(self, head: int, timeout: float) -> None:
            self.inner.wait(head, timeout)

    with pytest.raises(NotSupportedError, match="the bare backend cannot take copied events"):
        copy_store(_source(3), EventStore(Bare()))


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
