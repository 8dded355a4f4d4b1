"""The conformance kit on the EventStoreDB backend: a gRPC stand-in server per store
(tests/eventstoredb/standin.py), or a real server (``EVENTVAULT_TEST_EVENTSTOREDB_URI``,
each store then writing its own log stream). No retention yet
(docs/design/eventstoredb.md), so no ``RetentionContract``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from eventvault import EventStore
from eventvault.testing import ImportContract, Reopen, StoreContract, StoreFactory, Tamper

from .backends import new_schema, open_eventstoredb, real_eventstoredb, standin_uri


def tamper_eventstoredb(standins: dict[str, tuple[Any, Any]]) -> Tamper:
    """Change the stored payload inside the stand-in server, behind the client's back
    (``standins``: uri -> the stand-in (gRPC server, servicer) behind it)."""

    def tamper(store: EventStore, position: int) -> EventStore:
        from eventvault.backends.eventstoredb.store import EventStoreDBEventStore

        assert isinstance(store, EventStoreDBEventStore)
        if store.uri not in standins:
            pytest.skip("a real EventStoreDB server cannot be tampered with from here")
        log = standins[store.uri][1].log
        with log.lock:
            for i, rec in enumerate(log.records):
                if rec.position == position:
                    assert b'"v":"aaaa"' in rec.data, "tamper expects data {'v': 'aaaa'}"
                    data = rec.data.replace(b'"v":"aaaa"', b'"v":"aaab"')
                    log.records[i] = dataclasses.replace(rec, data=data)
                    return store
        raise AssertionError(f"position {position} not found")

    return tamper


def reopen_eventstoredb(store: EventStore) -> EventStore:
    """A new client of the same server and log stream."""
    from eventvault.backends.eventstoredb.store import EventStoreDBEventStore

    assert isinstance(store, EventStoreDBEventStore)
    store.close()
    return open_eventstoredb(store.uri, log_stream=store.log_stream)


class TestEventStoreDB(StoreContract, ImportContract):
    @pytest.fixture
    def standins(self) -> Iterator[dict[str, tuple[Any, Any]]]:
        """uri -> the stand-in (gRPC server, servicer) behind it; every server stopped
        at the end (after the kit has closed the clients)."""
        made: dict[str, tuple[Any, Any]] = {}
        yield made
        for server, _ in made.values():
            server.stop(None)

    @pytest.fixture
    def make_store(self, standins: dict[str, tuple[Any, Any]]) -> StoreFactory:
        from ..eventstoredb.standin import serve

        def make() -> EventStore:
            real = real_eventstoredb()
            if real:
                return open_eventstoredb(real, log_stream=f"eventvault-{new_schema()}")
            server, servicer, port = serve()
            uri = standin_uri(port)
            standins[uri] = (server, servicer)
            return open_eventstoredb(uri)

        return make

    @pytest.fixture
    def reopen_store(self) -> Reopen:
        return reopen_eventstoredb

    @pytest.fixture
    def tamper(self, standins: dict[str, tuple[Any, Any]]) -> Tamper:
        return tamper_eventstoredb(standins)
