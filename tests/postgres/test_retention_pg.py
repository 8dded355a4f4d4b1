"""Retention on PostgreSQL: the database itself only lets receipted runs go."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent, Query
from eventvault.backends.postgres.schema import _V1
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig
from eventvault.retention import RECEIPT_TYPE, resolve_policy

from .roles import app_role

POLICY = resolve_policy(RetentionConfig(max_count=3))


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


def call(dsn: str, schema: str, *args: object) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT {}.retention_delete(%s, %s, %s, %s, %s)").format(
                sql.Identifier(schema)
            ),
            args,
        ).fetchone()
        return row[0] if row else None


def test_retention_delete_refuses_what_no_receipt_names(postgres_dsn: str, schema: str) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        store.append([NewEvent(type="t.x", stream="s") for _ in range(10)])
        report = store.apply_retention(policy=POLICY)
        assert report.removed == 7
        (receipt,) = report.receipt_positions
        (rec,) = list(store.iter(Query(types=[RECEIPT_TYPE])))
        first, last = rec.data["runs"][0][:2]
        assert (first, last) == (1, 7)
        cases = [
            (receipt, [1], [7], [8], [8], "does not name"),  # a survivor, outside the run
            (receipt, [1], [8], [1], [8], "does not name"),  # a run the receipt lacks
            (receipt, [1], [7], [0], [7], "does not name"),  # below the run
            (9, [1], [7], [1], [7], "not a retention receipt"),  # not a receipt
        ]
        for pos, f, la, lo, hi, message in cases:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
                call(postgres_dsn, schema, pos, f, la, lo, hi)
        # Replaying the receipt's own run is harmless: those events are gone already.
        assert call(postgres_dsn, schema, receipt, [1], [7], [1], [7]) == 0
        assert store.stats().events == 4  # 3 kept + the receipt
        assert store.verify().ok


def test_receipts_cannot_be_deleted_even_inside_a_run(postgres_dsn: str, schema: str) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        store.append([NewEvent(type="t.x") for _ in range(5)])
        store.apply_retention(policy=POLICY)
        with psycopg.connect(postgres_dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("SET LOCAL eventvault.retention = 'on'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(
                    sql.SQL("DELETE FROM {}.events WHERE type = %s").format(sql.Identifier(schema)),
                    (RECEIPT_TYPE,),
                )


def test_a_v1_schema_is_migrated_and_keeps_its_events(postgres_dsn: str, schema: str) -> None:
    """A store made before retention existed gains stream_tails and the function."""
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        store.append([NewEvent(type="t.x", stream="s") for _ in range(4)])
    ident = sql.Identifier(schema)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        # Roll the schema back to what version 1 created.
        conn.execute(sql.SQL("DROP FUNCTION {}.retention_delete").format(ident))
        conn.execute(sql.SQL("DROP TABLE {}.stream_tails").format(ident))
        conn.execute(sql.SQL(_V1).format(schema=ident))
        conn.execute(sql.SQL("DELETE FROM {}.schema_version WHERE version > 1").format(ident))
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        assert store.stats().events == 4
        store.apply_retention(policy=POLICY)
        assert store.append(NewEvent(type="t.x", stream="s")).events[0].stream_revision == 4
        assert store.verify().ok


def test_a_role_without_execute_is_told_before_any_receipt(postgres_dsn: str, schema: str) -> None:
    """Least privilege without the retention grant: apply refuses up front, clearly,
    and appends no receipt (a scheduled run would otherwise add one every time)."""
    from eventvault import NotSupportedError

    with (
        app_role(postgres_dsn, schema, retention=False) as app_dsn,
        PostgresEventStore(app_dsn, schema=schema, create_schema=False) as app,
    ):
        app.append([NewEvent(type="t.x") for _ in range(5)])
        with pytest.raises(NotSupportedError, match="EXECUTE on"):
            app.apply_retention(policy=POLICY)
        assert list(app.iter(Query(types=[RECEIPT_TYPE]))) == []
        assert app.stats().events == 5
