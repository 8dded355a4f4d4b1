"""The PostgreSQL backend's Merkle tree (issue 20): concurrent writers in threads and
in real processes, the upgrade of a version-4 schema (the tree built from the stored
events, resumably, after the last retention hole), retention keeping every tree row."""

from __future__ import annotations

import logging
import multiprocessing
import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent, StoreError
from eventvault.backends.postgres import store as pg_store
from eventvault.backends.postgres import tree as pg_tree
from eventvault.backends.postgres.schema import MIGRATIONS
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.integrity.chain import event_leaf_hash
from eventvault.model import Query
from eventvault.retention import resolve_policy
from eventvault.testing._rfc9162 import mth
from eventvault.tlog import NoteSigner, open_checkpoint

#: Version 5 adds the tree: what came before is what a schema created earlier holds.
OLD_VERSIONS = 4


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


def rfc_root(store: PostgresEventStore, base: int = 0) -> bytes:
    """RFC 9162's MTH over the leaves recomputed from the stored events after ``base``."""
    return mth([event_leaf_hash(e) for e in store.iter(Query(after=base, limit=1000))])


def tree_rows(dsn: str, schema: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.tree").format(sql.Identifier(schema))
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_threads_and_two_stores_append_one_tree(postgres_dsn: str, schema: str) -> None:
    """Two store objects (two commit leaders, so the one-round-trip path collides and
    falls back), four threads each: the tree is the RFC tree of the events."""
    stores = [PostgresEventStore(postgres_dsn, schema=schema) for _ in range(2)]
    try:

        def work(k: int) -> None:
            store = stores[k % 2]
            for i in range(25):
                batch = [
                    NewEvent(type="w", data={"k": k, "i": i, "j": j}) for j in range(i % 3 + 1)
                ]
                store.append(batch)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store = stores[0]
        state = store.log.state()
        assert state.size == store.head() == 8 * (9 * 1 + 8 * 2 + 8 * 3)
        assert store.log.root() == rfc_root(store)
        assert store.verify().ok
    finally:
        for s in stores:
            s.close()


def _process_appends(dsn: str, schema: str, k: int) -> None:
    with PostgresEventStore(dsn, schema=schema) as store:
        for i in range(60):
            store.append([NewEvent(type="p", data={"k": k, "i": i})] * 1)
            if i % 10 == 0:
                store.append([NewEvent(type="p.batch", data={"k": k, "j": j}) for j in range(70)])


def test_two_processes_append_one_tree(postgres_dsn: str, schema: str) -> None:
    PostgresEventStore(postgres_dsn, schema=schema).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_appends, args=(postgres_dsn, schema, k)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        assert store.log.state().size == store.head() == 2 * (60 + 6 * 70)
        assert store.log.root() == rfc_root(store)
        assert store.verify().ok


# -- upgrading a schema created by version 4 ----------------------------------------------


def make_old_schema(dsn: str, source: str, target: str) -> None:
    """``target``: a schema as eventvault created it before the tree (versions 1-4, the
    DDL itself), holding ``source``'s events, head and stream tails (``source`` must
    be of the chain hash format, as every store of those versions was)."""
    src, dst = sql.Identifier(source), sql.Identifier(target)
    with psycopg.connect(dsn, autocommit=True) as conn:
        owner = conn.execute("SELECT current_user").fetchone()
        assert owner is not None
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(dst))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {}.schema_version (version int PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(dst)
        )
        for version, ddl in enumerate(MIGRATIONS[:OLD_VERSIONS], 1):
            conn.execute(sql.SQL(ddl).format(schema=dst, owner=sql.Literal(owner[0])))
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(dst),
                (version,),
            )
        conn.execute(sql.SQL("INSERT INTO {}.events SELECT * FROM {}.events").format(dst, src))
        conn.execute(
            sql.SQL("INSERT INTO {}.stream_tails SELECT * FROM {}.stream_tails").format(dst, src)
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.head (position, hash, recorded_at, store_id) "
                "SELECT position, hash, recorded_at, store_id FROM {}.head"
            ).format(dst, src)
        )


@pytest.fixture
def old(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    """(source schema, old-version schema): both dropped afterwards."""
    names = (f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}")
    yield names
    for name in names:
        drop_schema(postgres_dsn, name)


def test_a_small_old_schema_gets_its_tree_on_open(postgres_dsn: str, old: tuple[str, str]) -> None:
    source, target = old
    with PostgresEventStore(postgres_dsn, schema=source, hash_format=1) as src:
        src.append([NewEvent(type="t.x", stream=f"s{i % 3}", data={"i": i}) for i in range(300)])
        root = src.log.root()
    make_old_schema(postgres_dsn, source, target)
    with PostgresEventStore(postgres_dsn, schema=target) as store:
        assert store.log.state().size == 300
        assert store.log.root() == root == rfc_root(store)
        store.append(NewEvent(type="t.after", stream="s0"))
        assert store.log.root() == rfc_root(store)
        signer = NoteSigner.generate("eventvault.test/upgrade")
        cp = open_checkpoint(
            store.log.checkpoint(signer, save=True), [signer.verifier()], origin=signer.name
        )
        result = store.verify(checkpoints=[cp])
        assert result.ok, result.reason
        assert result.tree_size == 301


def test_a_large_old_schema_is_built_by_build_tree_resumably(
    postgres_dsn: str,
    old: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    source, target = old
    with PostgresEventStore(postgres_dsn, schema=source, hash_format=1) as src:
        src.append([NewEvent(type="t.x", data={"i": i}) for i in range(250)])
    make_old_schema(postgres_dsn, source, target)
    monkeypatch.setattr(pg_store, "AUTO_BUILD_TREE", 100)
    monkeypatch.setattr(pg_tree, "BUILD_CHUNK", 60)
    with (
        caplog.at_level(logging.WARNING, "eventvault.postgres"),
        PostgresEventStore(postgres_dsn, schema=target) as store,
    ):
        assert "eventvault upgrade" in caplog.text
        assert store.log.state().size == 0
        # Appends go on while the tree is behind (the builder adds their leaves).
        store.append([NewEvent(type="t.during", data={"i": i}) for i in range(5)])
        assert store.verify().ok  # the chain covers what the tree does not yet
        seen: list[tuple[int, int | None]] = []

        class Interrupted(Exception):
            pass

        def stop_after_two(done: int, total: int | None) -> None:
            seen.append((done, total))
            if len(seen) == 2:
                raise Interrupted

        with pytest.raises(Interrupted):
            store.backend.build_tree(stop_after_two)
        assert store.log.state().size == 120
        assert seen == [(60, 255), (120, 255)]
        added = store.backend.build_tree(lambda done, total: seen.append((done, total)))
        assert added == 135
        assert seen[-1] == (135, 135)
        assert store.backend.build_tree() == 0  # idempotent
        assert store.log.state().size == 255 == store.head()
        assert store.log.root() == rfc_root(store)
        store.append(NewEvent(type="t.after"))  # now appends add their own leaves
        assert store.log.state().size == 256
        assert store.log.root() == rfc_root(store)
        assert store.verify().ok


def test_an_old_schema_after_retention_starts_its_tree_after_the_last_hole(
    postgres_dsn: str, old: tuple[str, str]
) -> None:
    source, target = old
    with PostgresEventStore(postgres_dsn, schema=source, hash_format=1) as src:
        src.append([NewEvent(type="noise.tick", data={"i": i}) for i in range(20)])
        src.append([NewEvent(type="keep.me", data={"i": i}) for i in range(10)])
        src.apply_retention(
            policy=resolve_policy(
                RetentionConfig(rules=[RetentionRule(types=["noise.*"], max_count=3)])
            )
        )
        src.append([NewEvent(type="keep.me", data={"i": i}) for i in range(4)])
        positions = [e.position for e in src.iter(Query(limit=1000))]
    make_old_schema(postgres_dsn, source, target)
    # The first event of the contiguous tail.
    first = next(
        p for i, p in reversed(list(enumerate(positions))) if i == 0 or positions[i - 1] != p - 1
    )
    assert first > 1  # retention left a hole
    with PostgresEventStore(postgres_dsn, schema=target) as store:
        state = store.log.state()
        assert state.base == first - 1
        assert state.size == store.head() - state.base
        assert store.log.root() == rfc_root(store, base=state.base)
        tail = list(store.iter(Query(after=state.base, limit=1000)))
        p = store.log.inclusion_proof(tail[0].id)
        assert p.leaf_index == 0
        p.verify(leaf_hash=event_leaf_hash(tail[0]))
        result = store.verify()
        assert result.ok, result.reason


def test_build_tree_refuses_a_hole_it_cannot_bridge(
    postgres_dsn: str, old: tuple[str, str]
) -> None:
    """Retention removing events inside the tail after the base was fixed (while the tree
    was being built): the builder says so instead of building a wrong tree."""
    source, target = old
    with PostgresEventStore(postgres_dsn, schema=source, hash_format=1) as src:
        src.append([NewEvent(type="t.x", data={"i": i}) for i in range(200)])
    make_old_schema(postgres_dsn, source, target)
    with PostgresEventStore(postgres_dsn, schema=target) as store:
        assert store.log.state().size == 200  # built on open
    # Now simulate a store whose tree stopped at 100 with events 150.. gone.
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        s = sql.Identifier(target)
        conn.execute("SET session_replication_role = replica")
        with PostgresEventStore(postgres_dsn, schema=source, hash_format=1) as src:
            leaves = [event_leaf_hash(e) for e in src.iter(Query(limit=1000))][:100]
        hashes, edge = pg_tree.extend(0, [], leaves)
        conn.execute(sql.SQL("DELETE FROM {}.tree").format(s))
        conn.execute(sql.SQL("INSERT INTO {}.tree VALUES (0, %s)").format(s), (hashes,))
        conn.execute(
            sql.SQL("UPDATE {}.head SET tree_size = 100, tree_edge = %s").format(s),
            (b"".join(edge),),
        )
        conn.execute(sql.SQL("DELETE FROM {}.events WHERE position = 150").format(s))
    with PostgresEventStore(postgres_dsn, schema=target, create_schema=False) as store:
        with pytest.raises(StoreError, match="position 150 is gone"):
            store.backend.build_tree()
        assert store.log.state().size == 100  # nothing past the hole


def test_retention_keeps_every_tree_row(postgres_dsn: str, schema: str) -> None:
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        for i in range(10):
            store.append([NewEvent(type="noise.tick", data={"i": i, "j": j}) for j in range(3)])
        rows = tree_rows(postgres_dsn, schema)
        root = store.log.root()
        store.apply_retention(
            policy=resolve_policy(
                RetentionConfig(rules=[RetentionRule(types=["noise.*"], max_count=2)])
            )
        )
        assert store.stats().events < 30
        assert tree_rows(postgres_dsn, schema) > rows  # receipts added leaves; none went
        assert store.log.root(30) == root
        assert store.verify().ok


def test_checkpoints_are_kept_and_the_largest_is_latest(postgres_dsn: str, schema: str) -> None:
    signer = NoteSigner.generate("eventvault.test/pg")
    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        assert store.log.latest_checkpoint() is None
        store.append([NewEvent(type="t") for _ in range(3)])
        small = store.log.checkpoint(signer, save=True)
        store.append(NewEvent(type="t"))
        big = store.log.checkpoint(signer, save=True)
        store.backend.save_checkpoint(3, small)  # an older one saved later
        assert store.log.latest_checkpoint() == big


def test_read_hashes_across_rows_in_one_round_trip(postgres_dsn: str, schema: str) -> None:
    """Ranges and scattered indexes spanning many tree rows read the same hashes an
    in-memory tree of the same leaves stores; past the end is a CorruptionError."""
    from eventvault.errors import CorruptionError
    from eventvault.tlog import MemoryHashStore, MerkleTree, stored_hash_count

    with PostgresEventStore(postgres_dsn, schema=schema) as store:
        for n in (1, 2, 3, 70, 1, 5, 64, 1, 1, 9):  # both commit paths, many rows
            store.append([NewEvent(type="t", data={"n": n, "j": j}) for j in range(n)])
        mem = MerkleTree(MemoryHashStore())
        mem.append_leaf_hashes([event_leaf_hash(e) for e in store.iter(Query(limit=1000))])
        count = stored_hash_count(store.log.state().size)
        assert count == mem.store.hash_count
        backend = store.backend
        everything = list(range(count))
        assert backend.read_hashes(everything) == mem.store.read_hashes(everything)
        for lo, hi in ((0, 1), (3, 9), (5, 150), (count - 7, count)):
            assert backend.read_hashes(range(lo, hi)) == mem.store.read_hashes(range(lo, hi))
        scattered = [0, 2, 7, 100, 101, 250, count - 1]
        assert backend.read_hashes(scattered) == mem.store.read_hashes(scattered)
        assert backend.read_hashes([]) == []
        with pytest.raises(CorruptionError, match=f"stored hash {count} was asked for"):
            backend.read_hashes([1, count])
        with pytest.raises(CorruptionError, match="shorter than its size"):
            backend.read_hashes(range(count - 2, count + 3))
