"""How the project's own backends are opened for tests: one opener per backend.

The conformance modules (``test_<backend>.py``) build their ``make_store`` fixture
from these; :data:`FACTORIES` puts them in one place for tests that run a check on
every backend alike (``tests/runs``). A :class:`Place` is where one test's store
lives (a temporary directory, a fresh PostgreSQL schema, a stand-in server).
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eventvault import EventStore, MemoryEventStore
from eventvault.backends.file import FileEventStore


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def open_file(path: Path) -> FileEventStore:
    # Small segments, so the suite crosses sealed segments and their indexes too.
    return FileEventStore(path, segment_max_bytes=8192)


def fresh_paths(tmp_path: Path) -> Callable[[], EventStore]:
    """A new directory under ``tmp_path`` on each call."""
    n = itertools.count()
    return lambda: open_file(tmp_path / f"store-{next(n)}")


def open_postgres(dsn: str, schema: str) -> EventStore:
    from eventvault.backends.postgres.store import PostgresEventStore

    store = PostgresEventStore(dsn, schema=schema, pool_max=12)
    store.retention_batch = 7  # so retention crosses several transactions
    return store


def drop_postgres(dsn: str, schema: str) -> None:
    from eventvault.backends.postgres.store import drop_schema

    drop_schema(dsn, schema)


def real_eventstoredb() -> str | None:
    """``EVENTVAULT_TEST_EVENTSTOREDB_URI``: a real server to test against instead of
    the stand-in (each store then writes its own log stream)."""
    return os.environ.get("EVENTVAULT_TEST_EVENTSTOREDB_URI") or None


def open_eventstoredb(uri: str, log_stream: str = "eventvault") -> EventStore:
    from eventvault.backends.eventstoredb.store import EventStoreDBEventStore

    return EventStoreDBEventStore(uri, log_stream=log_stream)


def standin_uri(port: int) -> str:
    return f"kurrentdb://127.0.0.1:{port}?tls=false"


def open_http(url: str) -> EventStore:
    from eventvault.backends.http import HttpEventStore

    return HttpEventStore(url, retries=2, timeout=30)


class Place:
    """Where a test's store lives: a temporary directory, or a fresh PG schema."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest | None) -> None:
        self.tmp_path = tmp_path
        self._request = request
        self.schema = new_schema()
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
    return open_file(place.tmp_path / "store")


def _postgres(place: Place) -> EventStore:
    return open_postgres(place.dsn, place.schema)


def _eventstoredb(place: Place) -> EventStore:
    real = real_eventstoredb()
    if real:
        return open_eventstoredb(real, log_stream=f"eventvault-{place.schema}")
    if place.standin is None:
        from ..eventstoredb.standin import serve

        place.standin = serve()
    return open_eventstoredb(standin_uri(place.standin[2]))


def _http(backing: Callable[[Place], EventStore]) -> Callable[[Place], EventStore]:
    """The http backend in front of a real server (uvicorn, in a thread) serving a
    fresh ``backing`` store; each call is a new client of the same server."""

    def make(place: Place) -> EventStore:
        from .served import Served

        if place.served is None:
            place.served = Served(backing(place))
        return open_http(place.served.url)

    return make


#: backend name -> how to open its store in a place (each call: the same store again)
FACTORIES: dict[str, Callable[[Place], EventStore]] = {
    "memory": _memory,
    "file": _file,
    "postgres": _postgres,
    "eventstoredb": _eventstoredb,
    "http-file": _http(_file),
    "http-postgres": _http(_postgres),
}


def _cleanup_postgres(place: Place) -> None:
    drop_postgres(place.dsn, place.schema)


def _cleanup_eventstoredb(place: Place) -> None:
    if place.standin is not None:
        place.standin[0].stop(None)


def _cleanup_http(place: Place) -> None:
    if place.served is not None:
        place.served.stop()


def _cleanup_http_postgres(place: Place) -> None:
    _cleanup_http(place)
    _cleanup_postgres(place)


#: backend name -> what to remove once a place's stores are closed
CLEANUP: dict[str, Callable[[Place], None]] = {
    "postgres": _cleanup_postgres,
    "eventstoredb": _cleanup_eventstoredb,
    "http-file": _cleanup_http,
    "http-postgres": _cleanup_http_postgres,
}
