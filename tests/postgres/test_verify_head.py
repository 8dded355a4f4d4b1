"""``verify`` checks the head row against the newest stored event (issue 15, item
11): a superuser who disables the append-only trigger and deletes the newest rows
leaves a chain that still verifies as a prefix — the head row says where it ended."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema


@pytest.fixture
def store(postgres_dsn: str) -> Iterator[PostgresEventStore]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    s = PostgresEventStore(postgres_dsn, schema=schema)
    yield s
    s.close()
    drop_schema(postgres_dsn, schema)


def superuser_deletes(store: PostgresEventStore, where: str) -> None:
    table = sql.Identifier(store.schema, "events")
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER events_append_only").format(table))
        conn.execute(sql.SQL("DELETE FROM {} WHERE ").format(table) + sql.SQL(where))  # type: ignore[arg-type]
        conn.execute(sql.SQL("ALTER TABLE {} ENABLE TRIGGER events_append_only").format(table))


def test_deleting_the_newest_rows_fails_verify(store: PostgresEventStore) -> None:
    store.append([NewEvent(type="t", data={"i": i}) for i in range(10)])
    assert store.verify().ok
    superuser_deletes(store, "position > 7")
    result = store.verify()
    assert not result.ok
    assert result.first_bad_position == 8
    assert result.checked == 7
    assert result.reason is not None
    assert "head says the newest event is position 10" in result.reason
    assert "up to position 7" in result.reason


def test_deleting_every_row_fails_verify(store: PostgresEventStore) -> None:
    store.append([NewEvent(type="t") for _ in range(3)])
    superuser_deletes(store, "true")
    result = store.verify()
    assert not result.ok
    assert result.reason is not None
    assert "holds no events" in result.reason


def test_the_cli_exits_non_zero(store: PostgresEventStore, tmp_path: Path) -> None:
    store.append([NewEvent(type="t") for _ in range(5)])
    superuser_deletes(store, "position = 5")
    config = tmp_path / "pg.toml"
    config.write_text(
        f'[store]\nbackend = "postgres"\n[store.postgres]\ndsn = "{store.dsn}"\n'
        f'schema = "{store.schema}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "eventvault.cli", "--config", str(config), "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "removed behind the store's back" in proc.stdout + proc.stderr


def test_an_intact_store_and_one_after_retention_verify(store: PostgresEventStore) -> None:
    from eventvault.config import RetentionConfig, RetentionRule
    from eventvault.retention import resolve_policy

    store.append([NewEvent(type="r.x") for _ in range(10)])
    policy = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["r.*"], max_count=2)]))
    assert policy is not None
    assert store.apply_retention(policy=policy).removed == 8
    assert store.verify().ok
