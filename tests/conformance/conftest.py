"""Backends the conformance suite runs against, and how to tamper with each.

Adding a backend means adding a factory (and a tamper function) here; every test
in this folder then runs against it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventvault import EventStore, MemoryEventStore
from eventvault.backends.file import FileEventStore

StoreFactory = Callable[[], EventStore]


class Place:
    """Where a test's store lives: a temporary directory, or a fresh PG schema."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest | None) -> None:
        self.tmp_path = tmp_path
        self._request = request
        self.schema = f"t_{uuid.uuid4().hex[:12]}"
        self.standin: tuple[Any, Any, int] | None = None  # (gRPC server, servicer, port)
        self.served: Any = None  # (http-*) the server in front of the backing store

    @property
    def dsn(self) -> str:
        if self._request is None:  # outside a fixture: the session fixture exported it
            return os.environ["EVENTVAULT_TEST_POSTGRES_DSN"]
        return str(self._request.getfixturevalue("postgres_dsn"))


def _memory(place: Place) -> EventStore:
    return MemoryEventStore()


def _file(place: Place) -> EventStore:
    # Small segments, so the suite crosses sealed segments and their indexes too.
    return FileEventStore(place.tmp_path / "store", segment_max_bytes=8192)


def _postgres(place: Place) -> EventStore:
    from eventvault.backends.postgres.store import PostgresEventStore

    store = PostgresEventStore(place.dsn, schema=place.schema, pool_max=12)
    store.retention_batch = 7  # so retention crosses several transactions
    return store


def _cleanup_postgres(place: Place) -> None:
    from eventvault.backends.postgres.store import drop_schema

    drop_schema(place.dsn, place.schema)


#: uri -> the stand-in servicer behind it (for tampering)
_STANDINS: dict[str, Any] = {}


def _eventstoredb(place: Place) -> EventStore:
    """A stand-in server per test, or a real one: ``EVENTVAULT_TEST_EVENTSTOREDB_URI``
    (each test then writes its own log stream)."""
    from eventvault.backends.eventstoredb.store import EventStoreDBEventStore

    from ..eventstoredb.standin import serve

    real = os.environ.get("EVENTVAULT_TEST_EVENTSTOREDB_URI")
    if real:
        return EventStoreDBEventStore(real, log_stream=f"eventvault-{place.schema}")
    if place.standin is None:
        place.standin = serve()
    uri = f"kurrentdb://127.0.0.1:{place.standin[2]}?tls=false"
    _STANDINS[uri] = place.standin[1]
    return EventStoreDBEventStore(uri)


def _http(backing: Callable[[Place], EventStore]) -> Callable[[Place], EventStore]:
    """The http backend in front of a real server (uvicorn, in a thread) serving a
    fresh ``backing`` store; each call is a new client of the same server."""

    def make(place: Place) -> EventStore:
        from eventvault.backends.http import HttpEventStore

        from .served import Served

        if place.served is None:
            place.served = Served(backing(place))
        return HttpEventStore(place.served.url, retries=2, timeout=30)

    return make


FACTORIES: dict[str, Callable[[Place], EventStore]] = {
    "memory": _memory,
    "file": _file,
    "postgres": _postgres,
    "eventstoredb": _eventstoredb,
    "http-file": _http(_file),
    "http-postgres": _http(_postgres),
}


def _cleanup_eventstoredb(place: Place) -> None:
    if place.standin is not None:
        place.standin[0].stop(None)


def _cleanup_http(place: Place) -> None:
    if place.served is not None:
        place.served.stop()


def _cleanup_http_postgres(place: Place) -> None:
    _cleanup_http(place)
    _cleanup_postgres(place)


CLEANUP: dict[str, Callable[[Place], None]] = {
    "postgres": _cleanup_postgres,
    "eventstoredb": _cleanup_eventstoredb,
    "http-file": _cleanup_http,
    "http-postgres": _cleanup_http_postgres,
}


@pytest.fixture(params=sorted(FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def place(tmp_path: Path, request: pytest.FixtureRequest) -> Place:
    return Place(tmp_path, request)


@pytest.fixture
def make_store(backend: str, place: Place) -> Iterator[StoreFactory]:
    made: list[EventStore] = []

    def make() -> EventStore:
        store = FACTORIES[backend](place)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    if backend in CLEANUP:
        CLEANUP[backend](place)


@pytest.fixture
def store(make_store: StoreFactory) -> EventStore:
    return make_store()


def _tamper_memory(store: EventStore, position: int) -> EventStore:
    assert isinstance(store, MemoryEventStore)
    i = store.backend._positions.index(position)
    old = store.backend._events[i]
    store.backend._events[i] = msgspec.structs.replace(old, data={**old.data, "v": "tampered"})
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


def _tamper_postgres(store: EventStore, position: int) -> EventStore:
    """Only a superuser who disables the append-only trigger can change a row."""
    import psycopg
    from psycopg import sql

    from eventvault.backends.postgres.store import PostgresEventStore

    assert isinstance(store, PostgresEventStore)
    table = sql.Identifier(store.schema, "events")
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER events_append_only").format(table))
        conn.execute(
            sql.SQL(
                "UPDATE {} SET data = jsonb_set(data, '{{v}}', '\"tampered\"') WHERE position = %s"
            ).format(table),
            (position,),
        )
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER events_append_only").format(table))
    return store


def _tamper_eventstoredb(store: EventStore, position: int) -> EventStore:
    """Change the stored payload inside the stand-in server, behind the client's back."""
    import dataclasses

    from eventvault.backends.eventstoredb.store import EventStoreDBEventStore

    assert isinstance(store, EventStoreDBEventStore)
    if store.uri not in _STANDINS:
        pytest.skip("a real EventStoreDB server cannot be tampered with from here")
    log = _STANDINS[store.uri].log
    with log.lock:
        for i, rec in enumerate(log.records):
            if rec.position == position:
                assert b'"v":"aaaa"' in rec.data, "tamper expects data {'v': 'aaaa'}"
                data = rec.data.replace(b'"v":"aaaa"', b'"v":"aaab"')
                log.records[i] = dataclasses.replace(rec, data=data)
                return store
    raise AssertionError(f"position {position} not found")


def _tamper_behind(
    inner: Callable[[EventStore, int], EventStore], place: Place
) -> Callable[[EventStore, int], EventStore]:
    """Tamper with the store behind the server; the client stays the same."""

    def tamper(store: EventStore, position: int) -> EventStore:
        place.served.swap(inner(place.served.backing, position))
        return store

    return tamper


TAMPER: dict[str, Callable[[EventStore, int], EventStore]] = {
    "memory": _tamper_memory,
    "file": _tamper_file,
    "postgres": _tamper_postgres,
    "eventstoredb": _tamper_eventstoredb,
}


@pytest.fixture
def tamper(backend: str, place: Place) -> Callable[[EventStore, int], EventStore]:
    if backend.startswith("http-"):
        return _tamper_behind(TAMPER[backend.removeprefix("http-")], place)
    return TAMPER[backend]
