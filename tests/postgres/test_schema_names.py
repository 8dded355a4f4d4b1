"""Issue 17.14: every schema name the configuration accepts works everywhere the
backend uses it (tables, functions, the NOTIFY channel, stats, retention), on a
real PostgreSQL; every other name is refused at load, before anything is created."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from eventvault import ConfigError, NewEvent, Query, load_config
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig
from eventvault.retention import resolve_policy


def _names() -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [
        f"Mixed_Case_{tag}",  # folded to lower case if ever left unquoted
        f"UPPER{tag}",
        ("x" * 55 + tag)[:63],  # the longest identifier; "eventvault_" + it > 63 bytes
        f"_{tag}",
    ]


@pytest.fixture(params=range(4), ids=["mixed", "upper", "63-bytes", "underscore"])
def schema(request: pytest.FixtureRequest, postgres_dsn: str) -> Iterator[str]:
    name = _names()[request.param]
    yield name
    drop_schema(postgres_dsn, name)


def test_an_accepted_name_works_everywhere(postgres_dsn: str, schema: str) -> None:
    load_config({"store": {"backend": "postgres", "postgres": {"schema": schema}}})
    with PostgresEventStore(postgres_dsn, schema=schema) as s:
        s.append([NewEvent(type="a.b", data={"i": i}) for i in range(3)])
        assert s.stats().size_bytes  # pg_total_relation_size found the table
        got: list[int] = []
        stop = threading.Event()

        def follow() -> None:
            for ev in s.subscribe(Query(), after=3, poll_interval=30.0, stop=stop):
                got.append(ev.position)
                stop.set()

        t = threading.Thread(target=follow)
        t.start()
        started = time.monotonic()
        # The listener starts with the first wait; an append before its LISTEN holds
        # is not notified, so append until one wakes the subscriber.
        while t.is_alive() and time.monotonic() - started < 10:
            time.sleep(0.3)
            s.append(NewEvent(type="a.c"))
            t.join(2)
        stop.set()
        t.join(5)
        assert got[:1] == [4]
        assert time.monotonic() - started < 15  # woken by NOTIFY: the poll is 30 s
    # reopening finds the schema at its version (it was looked up unquoted before)
    with PostgresEventStore(postgres_dsn, schema=schema) as s:
        assert s.head() >= 4
        assert s.verify().ok
        policy = resolve_policy(RetentionConfig(max_count=2))
        s.apply_retention(policy=policy)  # the retention function is found and allowed
        assert s.verify().ok
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
        assert row == (1,)  # the very name, not a folded or truncated one


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("x" * 64, "63"),
        ("pg_mine", "pg_"),
        ("1abc", "plain name"),
        ("a-b", "plain name"),
        ("sch\u00e9ma", "plain name"),
        ("x; drop schema public", "plain name"),
        ("", "plain name"),
    ],
)
def test_other_names_are_refused_at_load(postgres_dsn: str, name: str, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        load_config({"store": {"backend": "postgres", "postgres": {"schema": name}}})
    try:
        with pytest.raises(ConfigError, match=why):
            PostgresEventStore(postgres_dsn, schema=name)
    finally:
        with psycopg.connect(postgres_dsn) as conn:
            (created,) = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (name,)
            ).fetchone() or (0,)
        if created:
            drop_schema(postgres_dsn, name)  # (so one failure does not leave it behind)
    assert created == 0  # nothing was created


def test_causation_filter_has_an_index(postgres_dsn: str) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with PostgresEventStore(postgres_dsn, schema=name) as s:
            s.append([NewEvent(type="a.b", causation_id=f"c{i % 3}") for i in range(30)])
            assert [e.causation_id for e in s.read(Query(causation_ids=["c1"]))] == ["c1"] * 10
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute("SET enable_seqscan = off")
            plan = conn.execute(
                f"EXPLAIN SELECT * FROM {name}.events WHERE causation_id = 'c1' ORDER BY position"
            ).fetchall()
        assert "events_causation_position" in str(plan)
    finally:
        drop_schema(postgres_dsn, name)
