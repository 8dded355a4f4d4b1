"""A PostgreSQL store's hash format: chosen when the schema is made, kept in the head
row, and fixed for good — the role that moves the head cannot change it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent, ValidationError
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.integrity.chain import CHAIN, GENESIS, LEAF, event_leaf_hash, record_hash

from .roles import app_role


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


def stored_format(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT hash_format FROM {}.head").format(sql.Identifier(schema))
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_new_schema_keeps_leaf_hashes(postgres_dsn: str, schema: str) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        assert store.hash_format == LEAF
        out = store.append([NewEvent(type="t", data={"i": i}) for i in range(5)]).events
        assert [e.hash for e in out] == [event_leaf_hash(e).hex() for e in out]
        assert store.verify().ok
    assert stored_format(postgres_dsn, schema) == LEAF


def test_a_chain_schema_on_request_and_a_mismatch_refused(postgres_dsn: str, schema: str) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema, hash_format=CHAIN) as store:
        out = store.append([NewEvent(type="t", data={"i": i}) for i in range(3)]).events
        prev = GENESIS
        for ev in out:
            prev = record_hash(prev, ev)
            assert ev.hash == prev.hex()
        assert store.verify().ok
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        assert store.hash_format == CHAIN  # reopening asks nothing: it is what it is
    with pytest.raises(ValidationError, match="keeps hash format 1, not 2"):
        PostgresEventStore(postgres_dsn, schema=schema, hash_format=LEAF)


def test_the_app_role_cannot_change_the_format(postgres_dsn: str, schema: str) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        store.append(NewEvent(type="t"))
    s = sql.Identifier(schema)
    with (
        app_role(postgres_dsn, schema, retention=False) as app,
        psycopg.connect(app, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="hash format is fixed"),
    ):
        conn.execute(sql.SQL("UPDATE {}.head SET hash_format = 1").format(s))
    # Nor the owner, short of switching the triggers off.
    with (
        psycopg.connect(postgres_dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="hash format is fixed"),
    ):
        conn.execute(sql.SQL("UPDATE {}.head SET hash_format = 1").format(s))
    assert stored_format(postgres_dsn, schema) == LEAF
