"""Fixtures the per-backend conformance modules share (fixtures only: how each
backend is opened is in :mod:`.backends`, how it is tampered with in its module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from eventvault import EventStore
from eventvault.testing import StoreFactory

from .backends import drop_postgres, fresh_paths, new_schema, open_postgres
from .served import ServedStores


@pytest.fixture
def postgres_stores(postgres_dsn: str) -> Iterator[StoreFactory]:
    """Opens a PostgreSQL store in a new schema on each call; drops every schema at
    the end (after the kit has closed the stores)."""
    made: list[str] = []

    def make() -> EventStore:
        made.append(new_schema())
        return open_postgres(postgres_dsn, made[-1])

    yield make
    for schema in made:
        drop_postgres(postgres_dsn, schema)


@pytest.fixture
def http_file_stores(tmp_path: Path) -> Iterator[ServedStores]:
    """http clients, each of its own server in front of a fresh file store."""
    fleet = ServedStores(fresh_paths(tmp_path))
    yield fleet
    fleet.stop_all()


@pytest.fixture
def http_postgres_stores(postgres_stores: StoreFactory) -> Iterator[ServedStores]:
    """http clients, each of its own server in front of a fresh PostgreSQL schema
    (the servers stop before the schemas are dropped)."""
    fleet = ServedStores(postgres_stores)
    yield fleet
    fleet.stop_all()
