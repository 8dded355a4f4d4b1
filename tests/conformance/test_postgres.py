"""The conformance kit on PostgreSQL: a fresh schema per store, dropped afterwards."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

from eventvault import EventStore
from eventvault.testing import (
    ImportContract,
    ProvingContract,
    Reopen,
    RetentionContract,
    StatefulContract,
    StoreContract,
    StoreFactory,
    Tamper,
)

from .backends import open_postgres


def tamper_postgres(store: EventStore, position: int) -> EventStore:
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


def reopen_postgres(store: EventStore) -> EventStore:
    from eventvault.backends.postgres.store import PostgresEventStore

    assert isinstance(store, PostgresEventStore)
    store.close()
    return open_postgres(store.dsn, store.schema)


class TestPostgres(
    StoreContract, ImportContract, RetentionContract, StatefulContract, ProvingContract
):
    stateful_settings = settings(
        max_examples=10,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )

    @pytest.fixture
    def make_store(self, postgres_stores: StoreFactory) -> StoreFactory:
        return postgres_stores

    @pytest.fixture
    def reopen_store(self) -> Reopen:
        return reopen_postgres

    @pytest.fixture
    def tamper(self) -> Tamper:
        return tamper_postgres
