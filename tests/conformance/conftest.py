"""Backends the conformance suite runs against, and how to tamper with each.

Adding a backend means adding a factory (and a tamper function) here; every test
in this folder then runs against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from eventvault import EventStore, MemoryEventStore
from eventvault.backends.file import FileEventStore

StoreFactory = Callable[[], EventStore]


def _memory(tmp_path: Path) -> EventStore:
    return MemoryEventStore()


def _file(tmp_path: Path) -> EventStore:
    # Small segments, so the suite crosses sealed segments and their indexes too.
    return FileEventStore(tmp_path / "store", segment_max_bytes=8192)


FACTORIES: dict[str, Callable[[Path], EventStore]] = {"memory": _memory, "file": _file}


@pytest.fixture(params=sorted(FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path) -> Iterator[StoreFactory]:
    made: list[EventStore] = []

    def make() -> EventStore:
        store = FACTORIES[backend](tmp_path)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> EventStore:
    return make_store()


def _tamper_memory(store: EventStore, position: int) -> EventStore:
    assert isinstance(store, MemoryEventStore)
    i = store._positions.index(position)
    old = store._events[i]
    store._events[i] = msgspec.structs.replace(old, data={**old.data, "v": "tampered"})
    return store


def _tamper_file(store: EventStore, position: int) -> EventStore:
    """Change one byte of the event's payload on disk (same length), then reopen."""
    assert isinstance(store, FileEventStore)
    path = store.path
    store.close()
    for seg in sorted((path / "segments").iterdir()):
        lines = seg.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if line.startswith(b'{"position":%d,' % position):
                assert b'"v":"aaaa"' in line, "tamper expects data {'v': 'aaaa'}"
                lines[i] = line.replace(b'"v":"aaaa"', b'"v":"aaab"')
                seg.write_bytes(b"\n".join(lines))
                return FileEventStore(path, segment_max_bytes=8192)
    raise AssertionError(f"position {position} not found")


TAMPER: dict[str, Callable[[EventStore, int], EventStore]] = {
    "memory": _tamper_memory,
    "file": _tamper_file,
}


@pytest.fixture
def tamper(backend: str) -> Callable[[EventStore, int], EventStore]:
    return TAMPER[backend]
