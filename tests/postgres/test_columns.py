"""Issue 18.5: the events table's columns are defined once (``columns.py``); the live
table, and every statement the backend sends, agree with that one definition."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from eventvault import NewEvent, Query, RecordedEvent
from eventvault.backends.memory import MemoryEventStore
from eventvault.backends.postgres import columns
from eventvault.backends.postgres.schema import MIGRATIONS
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig
from eventvault.copy import copy_store
from eventvault.retention import resolve_policy

NAMES = list(columns.NAMES)
TYPES = [c.sql_type for c in columns.EVENT_COLUMNS]


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


def test_the_definition_is_the_recorded_event() -> None:
    assert sorted(NAMES) == sorted(RecordedEvent.__struct_fields__)
    assert len(set(NAMES)) == len(NAMES)


def test_rows_round_trip() -> None:
    ev = RecordedEvent(
        position=7,
        stream_revision=2,
        recorded_at=datetime(2026, 1, 2, tzinfo=UTC),
        id=uuid.uuid4(),
        type="t.x",
        stream="s",
        actor="a",
        correlation_id=None,
        causation_id="c",
        source=None,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        data={"k": [1, 2.5, "é"]},
        metadata={"m": None},
        hash="ab" * 32,
    )
    row = columns.to_row(ev)
    assert len(row) == len(NAMES)
    assert row[NAMES.index("data")] == '{"k":[1,2.5,"é"]}'  # JSON columns go as text
    decoded = list(row)  # (the database hands JSON columns back decoded)
    for name in ("data", "metadata"):
        decoded[NAMES.index(name)] = getattr(ev, name)
    assert columns.from_row(decoded) == ev


def test_migration_1_is_history() -> None:
    """Old schemas applied migration 1 long ago: its text (rendered from the ``since=1``
    columns) must never change. A new column needs ``since=N`` and migration N."""
    digest = hashlib.sha256(MIGRATIONS[0].encode()).hexdigest()
    assert digest == "b28d26c0d7379160c0de3e19a191b2481c9040685328cdda5865511db971923a"


def test_the_live_table_is_the_definition(postgres_dsn: str, schema: str) -> None:
    PostgresEventStore(postgres_dsn, schema=schema).close()
    with psycopg.connect(postgres_dsn) as conn:
        live = conn.execute(
            "SELECT column_name, data_type, is_nullable, collation_name "
            "FROM information_schema.columns WHERE table_schema = %s AND table_name = 'events' "
            "ORDER BY ordinal_position",
            (schema,),
        ).fetchall()
        expected = []
        for c in columns.EVENT_COLUMNS:
            row = conn.execute("SELECT format_type(%s::regtype, NULL)", (c.sql_type,)).fetchone()
            assert row is not None
            nullable = "YES" if c.nullable and c.key != "PRIMARY KEY" else "NO"
            expected.append((c.name, row[0], nullable, "C" if c.collate_c else None))
        assert live == expected
        keys = conn.execute(
            "SELECT tc.constraint_type, array_agg(k.column_name::text ORDER BY k.ordinal_position) "
            "FROM information_schema.table_constraints tc "
            "JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name) "
            "WHERE tc.table_schema = %s AND tc.table_name = 'events' "
            "GROUP BY tc.constraint_name, tc.constraint_type",
            (schema,),
        ).fetchall()
    want = {(c.key, (c.name,)) for c in columns.EVENT_COLUMNS if c.key}
    want.add(("UNIQUE", ("stream", "stream_revision")))  # (the table's own constraint)
    assert {(kind, tuple(cols)) for kind, cols in keys} == want


_QUOTED_RUN = re.compile(r'"[a-z_]+"(?:, "[a-z_]+")+')
_PLAIN_RUN = re.compile(r"\b(?:{0})(?:, (?:{0})\b){{3,}}".format("|".join(NAMES)))
_INSERT = re.compile(r"INSERT INTO \S+ \(([^)]*)\) SELECT \* FROM unnest\(([^)]*)\)")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every statement any connection executes or COPYs (at the driver: whatever
    shape the backend's code takes)."""
    statements: list[Any] = []
    execute, copy = psycopg.Connection.execute, psycopg.Cursor.copy

    def recording_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(query)
        return execute(self, query, *args, **kwargs)

    def recording_copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(statement)
        return copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", recording_execute)
    monkeypatch.setattr(psycopg.Cursor, "copy", recording_copy)
    return statements


def test_every_statement_names_each_column_once(
    postgres_dsn: str, schema: str, sent: list[Any]
) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        src = MemoryEventStore()
        src.append([NewEvent(type="d.w", stream="imported") for _ in range(80)])
        copy_store(src, store)  # an import, by COPY (into an empty store only)
        first = store.append([NewEvent(type="a.x", stream="s", actor="u") for _ in range(3)])
        store.append(NewEvent(type="b.y", stream="s", correlation_id="c"))  # one round trip
        store.append([NewEvent(type="c.z", stream=f"s{i % 5}") for i in range(100)])  # COPY
        store.get(first.events[0].id)
        now = datetime.now(UTC)
        for query in (
            Query(),
            Query(types=["a.x"]),
            Query(types=["a.x", "b.y"], streams=["s"]),  # branches, UNION ALL
            Query(types=["c.*", "b.y"], reverse=True),
            Query(actors=["u"], correlation_ids=["c", "d"], causation_ids=["e"]),
            Query(since=now - timedelta(hours=1), until=now + timedelta(hours=1), after=1),
        ):
            store.read(query)
        store.apply_retention(policy=resolve_policy(RetentionConfig(max_count=3)))
        assert store.verify().ok
    texts = [
        s.decode() if isinstance(s, bytes) else s if isinstance(s, str) else s.as_string(None)
        for s in sent
    ]
    # The write path's statements were rendered once, when the store opened: bytes.
    for statement, text in zip(sent, texts, strict=True):
        if text.startswith(("COPY", "WITH")) and '"hash"' in text:
            assert isinstance(statement, bytes), text
    full = [t for t in texts if len(_QUOTED_RUN.findall(t)) and '"hash"' in t]
    kinds = {t.split()[0] for t in full}
    assert {"SELECT", "COPY", "WITH"} <= kinds, kinds  # reads, COPY, the array inserts
    inserts = 0
    for text in texts:
        assert not _PLAIN_RUN.search(text), f"a hand-written column list: {text}"
        for run in _QUOTED_RUN.findall(text):
            names = run.replace('"', "").split(", ")
            assert len(set(names)) == len(names), text
            assert set(names) <= set(NAMES), text
            if len(names) > 5:  # (retention's walk selects five: EventHead)
                assert names == NAMES, text
        for cols, casts in _INSERT.findall(text):
            inserts += 1
            assert cols.replace('"', "").split(", ") == NAMES
            assert re.findall(r"%s::([a-z]+)\[\]", casts) == TYPES
            assert casts.count("%s") == len(NAMES)
    assert inserts, "no array insert was sent"
