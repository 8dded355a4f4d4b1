"""Attacks on a PostgreSQL store by a SUPERUSER who switches the append-only triggers
off (``session_replication_role = replica``) and rewrites whatever it likes — events,
chain hashes, the head row, the Merkle tree's rows — consistently.

Each test takes a checkpoint signed before the attack (``NoteSigner.generate``,
opened with ``open_checkpoint`` as a verifier would) and asserts that
``verify(checkpoints=[cp])`` fails naming the attack. What plain ``verify`` (no
checkpoint) says is asserted too: a consistent rewrite of chain *and* tree, a clean
cut of the newest events or a swapped-in fork is invisible to it — which is exactly
why checkpoints kept outside the database matter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import msgspec
import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent
from eventvault.backends.postgres import columns as pg_columns
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.backends.postgres.tree import extend
from eventvault.integrity.chain import GENESIS, event_leaf_hash, record_hash
from eventvault.model import Query, RecordedEvent
from eventvault.tlog import Checkpoint, NoteSigner, open_checkpoint
from eventvault.tlog.layout import stored_hash_count
from eventvault.tlog.note import NoteError

N = 20


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate("eventvault.test/attack")


def populate(dsn: str, schema: str, signer: NoteSigner) -> tuple[Checkpoint, list[RecordedEvent]]:
    """N events (the last five one commit each), and a checkpoint of all of them."""
    with PostgresEventStore(dsn, schema=schema) as store:
        store.append([NewEvent(type="t.x", stream="s", data={"i": i}) for i in range(N - 5)])
        for i in range(N - 5, N):
            store.append(NewEvent(type="t.x", stream="s", data={"i": i}))
        note = store.log.checkpoint(signer, save=True)
        events = list(store.iter(Query(limit=1000)))
    return open_checkpoint(note, [signer.verifier()], origin=signer.name), events


def superuser(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute("SET session_replication_role = replica")  # no triggers fire
    return conn


def rechain(events: list[RecordedEvent], hashes: int) -> list[RecordedEvent]:
    """What an attacker computes: every hash again (in the store's hash format; in the
    chain format, from the genesis)."""
    out, prev = [], GENESIS
    for ev in events:
        h = record_hash(prev, ev, hashes)
        out.append(msgspec.structs.replace(ev, hash=h.hex()))
        prev = h
    return out


def rewrite(
    conn: psycopg.Connection[tuple[object, ...]],
    schema: str,
    events: list[RecordedEvent],
    *,
    tree: bool,
) -> None:
    """Replace every event (chain rehashed), the head, and (``tree``) the Merkle tree's
    rows and the head's tree, all consistent with each other."""
    s = sql.Identifier(schema)
    row = conn.execute(sql.SQL("SELECT hash_format FROM {}.head").format(s)).fetchone()
    assert row is not None
    events = rechain(events, int(str(row[0])))
    with conn.transaction():
        conn.execute(sql.SQL("DELETE FROM {}.events").format(s))
        with conn.cursor().copy(
            sql.SQL("COPY {}.events ({}) FROM STDIN").format(s, pg_columns.column_list())
        ) as copy:
            for ev in events:
                copy.write_row(pg_columns.to_row(ev))
        last = events[-1]
        conn.execute(
            sql.SQL("UPDATE {}.head SET position = %s, hash = %s, recorded_at = %s").format(s),
            (last.position, last.hash, last.recorded_at),
        )
        if tree:
            hashes, edge = extend(0, [], [event_leaf_hash(e) for e in events])
            conn.execute(sql.SQL("DELETE FROM {}.tree").format(s))
            conn.execute(sql.SQL("INSERT INTO {}.tree VALUES (0, %s)").format(s), (hashes,))
            conn.execute(
                sql.SQL("UPDATE {}.head SET tree_size = %s, tree_edge = %s").format(s),
                (len(events), b"".join(edge)),
            )


def verify(dsn: str, schema: str, checkpoints: Sequence[Checkpoint] = ()) -> tuple[bool, str]:
    with PostgresEventStore(dsn, schema=schema, create_schema=False) as store:
        result = store.verify(checkpoints=list(checkpoints))
    return result.ok, result.reason or ""


def test_a_before_the_attack_everything_verifies(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    cp, _ = populate(postgres_dsn, schema, signer)
    assert verify(postgres_dsn, schema, [cp]) == (True, "")


def test_a_deleting_the_newest_events_only(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    """(a) The newest five events deleted and the head moved back: the tree's leaves
    outlive them, so even plain verify sees it."""
    cp, events = populate(postgres_dsn, schema, signer)
    with superuser(postgres_dsn) as conn:
        s = sql.Identifier(schema)
        conn.execute(sql.SQL("DELETE FROM {}.events WHERE position > %s").format(s), (N - 5,))
        kept = events[N - 6]
        conn.execute(
            sql.SQL("UPDATE {}.head SET position = %s, hash = %s").format(s),
            (kept.position, kept.hash),
        )
    ok, reason = verify(postgres_dsn, schema)
    assert not ok
    assert "removed from the newest end" in reason
    ok, reason = verify(postgres_dsn, schema, [cp])
    assert not ok
    assert "removed from the newest end" in reason


def test_a_deleting_the_newest_events_with_their_tree_rows(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    """(a) …and the tree rows of those commits, the head's tree cut back consistently:
    plain verify cannot tell a cut from a store that never had those events; the
    checkpoint can."""
    cp, events = populate(postgres_dsn, schema, signer)
    size = N - 5
    with superuser(postgres_dsn) as conn:
        s = sql.Identifier(schema)
        conn.execute(sql.SQL("DELETE FROM {}.events WHERE position > %s").format(s), (size,))
        conn.execute(
            sql.SQL("DELETE FROM {}.tree WHERE start >= %s").format(s), (stored_hash_count(size),)
        )
        _, edge = extend(0, [], [event_leaf_hash(e) for e in events[:size]])
        kept = events[size - 1]
        conn.execute(
            sql.SQL(
                "UPDATE {}.head SET position = %s, hash = %s, tree_size = %s, tree_edge = %s"
            ).format(s),
            (kept.position, kept.hash, size, b"".join(edge)),
        )
    assert verify(postgres_dsn, schema) == (True, "")  # undetectable without a checkpoint
    ok, reason = verify(postgres_dsn, schema, [cp])
    assert not ok
    assert f"commits to {N} events, but this store's tree has only {size}" in reason
    assert "cut back" in reason


def test_b_one_event_changed_and_the_chain_rehashed(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    """(b) One event's data changed, every later chain hash recomputed and the head
    moved to match; the tree left alone: the tree names the event."""
    cp, events = populate(postgres_dsn, schema, signer)
    forged = list(events)
    forged[9] = msgspec.structs.replace(events[9], data={"i": "forged"})
    with superuser(postgres_dsn) as conn:
        rewrite(conn, schema, forged, tree=False)
    ok, reason = verify(postgres_dsn, schema)
    assert not ok
    assert "the event at position 10 does not match leaf 9" in reason
    ok, reason = verify(postgres_dsn, schema, [cp])
    assert not ok
    assert "position 10 does not match leaf 9" in reason


def test_b_one_event_changed_chain_and_tree_rebuilt(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    """(b) …and the attacker rebuilt the tree too: everything in the database agrees,
    so plain verify passes; the checkpoint's root does not match."""
    cp, events = populate(postgres_dsn, schema, signer)
    forged = list(events)
    forged[9] = msgspec.structs.replace(events[9], data={"i": "forged"})
    with superuser(postgres_dsn) as conn:
        rewrite(conn, schema, forged, tree=True)
    assert verify(postgres_dsn, schema) == (True, "")  # consistent: only a checkpoint tells
    ok, reason = verify(postgres_dsn, schema, [cp])
    assert not ok
    assert f"the checkpoint of {signer.name!r} signed" in reason
    assert "rewritten at or before that point" in reason


@pytest.mark.parametrize("tree", [False, True], ids=["tree-kept", "tree-rebuilt"])
def test_c_an_event_inserted(
    postgres_dsn: str, schema: str, signer: NoteSigner, tree: bool
) -> None:
    """(c) An event slipped in at position 8, the later ones shifted up by one, chain
    (and, in one variant, tree) recomputed."""
    cp, events = populate(postgres_dsn, schema, signer)
    slipped = msgspec.structs.replace(
        events[7], id=uuid.uuid4(), stream="other", stream_revision=0, data={"slipped": True}
    )
    shifted = [msgspec.structs.replace(e, position=e.position + 1) for e in events[7:]]
    with superuser(postgres_dsn) as conn:
        rewrite(conn, schema, [*events[:7], slipped, *shifted], tree=tree)
    ok, reason = verify(postgres_dsn, schema)
    if tree:
        assert (ok, reason) == (True, "")  # consistent: only a checkpoint tells
    else:
        assert not ok
        assert "the event at position 8 does not match leaf 7" in reason
    ok, reason = verify(postgres_dsn, schema, [cp])
    assert not ok
    if tree:
        assert "rewritten at or before that point" in reason
    else:
        assert "position 8 does not match leaf 7" in reason


def test_d_the_schema_replaced_by_a_fork(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    """(d) Another store with the same number of events (and one more), renamed into
    the original's place: a complete, self-consistent store, so plain verify passes."""
    cp, _ = populate(postgres_dsn, schema, signer)
    fork = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with PostgresEventStore(postgres_dsn, schema=fork) as store:
            store.append([NewEvent(type="t.x", stream="s", data={"i": -i}) for i in range(N + 1)])
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(
                    sql.Identifier(fork), sql.Identifier(schema)
                )
            )
        assert verify(postgres_dsn, schema) == (True, "")
        ok, reason = verify(postgres_dsn, schema, [cp])
        assert not ok
        assert "(or this is a fork)" in reason
    finally:
        drop_schema(postgres_dsn, fork)


def test_e_a_checkpoint_by_another_key_is_refused(
    postgres_dsn: str, schema: str, signer: NoteSigner
) -> None:
    """(e) The attacker rewrites the store and signs (and saves) a checkpoint of the
    forgery with a key of its own, under the same name: a verifier holding the real
    key refuses the note, so the forgery never becomes a trusted checkpoint."""
    cp, events = populate(postgres_dsn, schema, signer)
    forged = [msgspec.structs.replace(e, data={"i": "forged"}) for e in events]
    with superuser(postgres_dsn) as conn:
        rewrite(conn, schema, forged, tree=True)
    mallory = NoteSigner.generate(signer.name)
    with PostgresEventStore(postgres_dsn, schema=schema, create_schema=False) as store:
        store.log.checkpoint(mallory, save=True)
        note = store.log.latest_checkpoint()
    assert note is not None
    with pytest.raises(NoteError):
        open_checkpoint(note, [signer.verifier()], origin=signer.name)
    ok, reason = verify(postgres_dsn, schema, [cp])  # the genuine one still catches it
    assert not ok
    assert "rewritten" in reason
