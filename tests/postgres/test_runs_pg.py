"""The PostgreSQL index of runs: the migration that fills it, the roles that read and
(never) write it, retention racing appends to the same runs."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent, Query
from eventvault.backends.postgres.runindex import V5_RUNS
from eventvault.backends.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig
from eventvault.retention import resolve_policy
from eventvault.runs import ScanRunIndex
from eventvault.runs.outcomes import DEFAULT_OUTCOMES

from .roles import app_role


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


def _append_runs(store: PostgresEventStore, n: int, tag: str = "") -> list[str]:
    names = [f"run{tag}-{k}" for k in range(7)]
    for i in range(n):
        store.append(
            [
                NewEvent(
                    type="job.failed" if i % 5 == 4 else "job.step",
                    correlation_id=names[(i + j) % 7] if (i + j) % 9 else None,
                    actor=f"agent:{(i * j) % 3}" if j else None,
                    stream=f"s-{i % 4}",
                )
                for j in range(3)
            ]
        )
    return names


def _table_is_the_scan(store: PostgresEventStore, names: list[str]) -> None:
    """Every run's row is the summary computed from its events; no other rows."""
    head = store.head()
    scan = ScanRunIndex(store).run_summaries(names, head=head, outcomes=DEFAULT_OUTCOMES)
    backend = store.backend
    assert backend.run_summaries(names, head=head, outcomes=DEFAULT_OUTCOMES) == scan
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        rows = conn.execute(
            sql.SQL("SELECT correlation_id, events FROM {}.runs ORDER BY 1").format(
                sql.Identifier(store.schema)
            )
        ).fetchall()
    assert dict(rows) == {cid: s.events for cid, s in sorted(scan.items())}
    keys = backend.newest_runs(Query(), head=head, before=None, limit=100)
    assert keys == ScanRunIndex(store).newest_runs(Query(), head=head, before=None, limit=100)


def _roll_back_to_v4(dsn: str, schema: str) -> None:
    s = sql.Identifier(schema)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TRIGGER runs_appended ON {}.events").format(s))
        conn.execute(sql.SQL("DROP TRIGGER runs_removed ON {}.events").format(s))
        conn.execute(sql.SQL("DROP FUNCTION {}.runs_appended, {}.runs_removed").format(s, s))
        conn.execute(sql.SQL("DROP TABLE {}.runs").format(s))
        conn.execute(sql.SQL("DELETE FROM {}.schema_version WHERE version >= 5").format(s))


def test_the_runs_table_is_migration_5(postgres_dsn: str, schema: str) -> None:
    assert MIGRATIONS.index(V5_RUNS) == 4  # (version 5; the Merkle tree is 6)
    assert SCHEMA_VERSION >= 5
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        names = _append_runs(store, 10)
        _table_is_the_scan(store, names)


def test_an_existing_store_gets_its_runs_on_upgrade(postgres_dsn: str, schema: str) -> None:
    """A v4 schema holding events: the upgrade fills the table from them; running the
    step again (as after an interrupted upgrade) gives the same table."""
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        names = _append_runs(store, 30)
    _roll_back_to_v4(postgres_dsn, schema)
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        _table_is_the_scan(store, names)
        names += _append_runs(store, 5, tag="new")
        _table_is_the_scan(store, names)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # only the version row
        conn.execute(
            sql.SQL("DELETE FROM {}.schema_version WHERE version = 5").format(
                sql.Identifier(schema)
            )
        )
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        _table_is_the_scan(store, names)


def test_the_app_role_lists_runs_but_cannot_write_them(postgres_dsn: str, schema: str) -> None:
    s = sql.Identifier(schema)
    with app_role(postgres_dsn, schema, retention=False) as app_dsn:
        with PostgresEventStore(app_dsn, schema=schema, create_schema=False) as app:
            names = _append_runs(app, 10)  # (the triggers write runs rows for it)
            assert app.backend._can_read_runs()
            _table_is_the_scan(app, names)
        with psycopg.connect(app_dsn, autocommit=True) as conn:
            for statement in (
                "INSERT INTO {}.runs SELECT * FROM {}.runs LIMIT 1",
                "UPDATE {}.runs SET events = 0",
                "DELETE FROM {}.runs",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql.SQL(statement).format(s, s))


def test_a_role_without_select_on_runs_still_lists_by_scanning(
    postgres_dsn: str, schema: str
) -> None:
    with app_role(postgres_dsn, schema, retention=False) as app_dsn:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            role = psycopg.conninfo.conninfo_to_dict(app_dsn)["user"]
            conn.execute(
                sql.SQL("REVOKE SELECT ON {}.runs FROM {}").format(
                    sql.Identifier(schema), sql.Identifier(str(role))
                )
            )
        with PostgresEventStore(app_dsn, schema=schema, create_schema=False) as app:
            names = _append_runs(app, 10)
            assert not app.backend._can_read_runs()
            assert app.backend.newest_runs(Query(), head=app.head(), before=None, limit=5) is None
            page = app.runs(limit=100)
            head = app.head()
            scan = ScanRunIndex(app)
            keys = scan.newest_runs(Query(), head=head, before=None, limit=100)
            want = scan.run_summaries(names, head=head, outcomes=DEFAULT_OUTCOMES)
            assert page.runs == [want[k.correlation_id] for k in keys]


def test_the_upgrade_grants_select_on_runs_to_existing_readers(
    postgres_dsn: str, schema: str
) -> None:
    """A role set up with the grants of before the index (no runs table yet) can read
    runs after the owner's upgrade."""
    with app_role(postgres_dsn, schema, retention=False) as app_dsn:
        _roll_back_to_v4(postgres_dsn, schema)
        PostgresEventStore(postgres_dsn, schema=schema).close()  # the owner upgrades
        with PostgresEventStore(app_dsn, schema=schema, create_schema=False) as app:
            names = _append_runs(app, 5)
            assert app.backend._can_read_runs()
            _table_is_the_scan(app, names)


def test_retention_racing_appends_to_the_same_runs(postgres_dsn: str, schema: str) -> None:
    """Removal recomputes runs while another connection appends to them: the table
    ends equal to the events, whichever commits first."""
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        names = _append_runs(store, 200)
        store.retention_batch = 40  # many small removal transactions
        stop = threading.Event()
        errors: list[BaseException] = []

        def appender() -> None:
            try:
                with PostgresEventStore(postgres_dsn, schema=schema) as other:
                    while not stop.is_set():
                        _append_runs(other, 3)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=appender)
        thread.start()
        try:
            report = store.apply_retention(
                policy=resolve_policy(RetentionConfig(max_count=100)),
                now=datetime.now().astimezone() + timedelta(days=1),
            )
        finally:
            stop.set()
            thread.join()
        assert not errors
        assert report.removed > 0
        _table_is_the_scan(store, names)
