"""The PostgreSQL schema and its versioned, idempotent migrations.

Every identifier is composed with :mod:`psycopg.sql` — the schema name comes from
configuration and never reaches SQL as plain text.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from typing import Any, LiteralString

import psycopg
from psycopg import sql

from .columns import table_ddl
from .runindex import V5_RUNS

__all__ = ["SCHEMA_VERSION", "channel_name", "migrate", "schema_version"]

#: The events table's columns come from :mod:`.columns` (the ``since=1`` ones: this
#: text must never change, schemas created long ago have applied it).
_V1: LiteralString = (
    """
CREATE TABLE IF NOT EXISTS {schema}.events (
"""
    + table_ddl(1)
    + """    -- The database enforces optimistic concurrency: two writers can never both
    -- store revision N of a stream.
    CONSTRAINT events_stream_revision UNIQUE (stream, stream_revision)
);
CREATE INDEX IF NOT EXISTS events_type_position ON {schema}.events (type, position);
CREATE INDEX IF NOT EXISTS events_actor_position ON {schema}.events (actor, position)
    WHERE actor IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_correlation_position
    ON {schema}.events (correlation_id, position) WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_stream_position ON {schema}.events (stream, position);
CREATE INDEX IF NOT EXISTS events_recorded_at ON {schema}.events (recorded_at, position);

-- The tip of the chain. Every append transaction locks this row first (FOR UPDATE),
-- which orders writers from every process: see the comment in store.py.
CREATE TABLE IF NOT EXISTS {schema}.head (
    singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    position    bigint      NOT NULL,
    hash        text,
    recorded_at timestamptz,
    store_id    uuid        NOT NULL
);

-- Append-only, enforced by the database itself: no UPDATE, DELETE or TRUNCATE of
-- events, whatever the client. (Retention will add the one controlled exception.)
CREATE OR REPLACE FUNCTION {schema}.events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventvault: events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS events_append_only ON {schema}.events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {schema}.events
    FOR EACH ROW EXECUTE FUNCTION {schema}.events_append_only();
DROP TRIGGER IF EXISTS events_no_truncate ON {schema}.events;
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_append_only();
"""
)

#: Retention: the one controlled exception to append-only. Rows leave only through
#: ``retention_delete``, only inside runs a stored receipt names, never receipts.
_V2: LiteralString = """
-- The last revision of every stream retention removed events from: a stream whose
-- events are all gone continues at the next revision, never restarts at 0.
CREATE TABLE IF NOT EXISTS {schema}.stream_tails (
    stream   text   COLLATE "C" PRIMARY KEY,
    revision bigint NOT NULL
);

CREATE OR REPLACE FUNCTION {schema}.events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('eventvault.retention', true) = 'on'
            AND OLD.type <> 'eventvault.retention.applied' THEN
        RETURN OLD;  -- inside retention_delete (below)
    END IF;
    RAISE EXCEPTION 'eventvault: events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Removes the stored events in [lo[i], hi[i]] for every i, where each range lies
-- inside run (run_first[i], run_last[i]) of receipt p_receipt. Grant EXECUTE on this,
-- never DELETE on the table: the caller cannot remove what no receipt announced.
CREATE OR REPLACE FUNCTION {schema}.retention_delete(
    p_receipt bigint, p_run_first bigint[], p_run_last bigint[], p_lo bigint[], p_hi bigint[]
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    runs jsonb;
    n bigint;
BEGIN
    SELECT data->'runs' INTO runs FROM {schema}.events
        WHERE position = p_receipt AND type = 'eventvault.retention.applied';
    IF runs IS NULL THEN
        RAISE EXCEPTION 'eventvault: position % is not a retention receipt', p_receipt
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF EXISTS (  -- (a hash join: receipts can name thousands of runs)
        SELECT 1 FROM unnest(p_run_first, p_run_last, p_lo, p_hi) AS b(f, l, lo, hi)
        LEFT JOIN (
            SELECT (r->>0)::bigint AS f, (r->>1)::bigint AS l
            FROM jsonb_array_elements(runs) AS r
        ) AS named ON named.f = b.f AND named.l = b.l
        WHERE named.f IS NULL OR b.lo < b.f OR b.hi > b.l OR b.hi >= p_receipt
    ) THEN
        RAISE EXCEPTION 'eventvault: receipt % does not name every range to remove', p_receipt
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM set_config('eventvault.retention', 'on', true);
    WITH gone AS (
        DELETE FROM {schema}.events e USING unnest(p_lo, p_hi) AS b(lo, hi)
        WHERE e.position BETWEEN b.lo AND b.hi
        RETURNING e.stream, e.stream_revision
    ), tails AS (
        INSERT INTO {schema}.stream_tails (stream, revision)
        SELECT stream, max(stream_revision) FROM gone GROUP BY stream
        ON CONFLICT (stream) DO UPDATE
            SET revision = greatest({schema}.stream_tails.revision, excluded.revision)
    )
    SELECT count(*) INTO n FROM gone;
    PERFORM set_config('eventvault.retention', 'off', true);
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION {schema}.retention_delete(bigint, bigint[], bigint[], bigint[], bigint[])
    FROM PUBLIC;
"""

#: Reserved types (``eventvault.*``: retention receipts above all) only from the
#: schema owner's role. A receipt is what lets ``retention_delete`` remove events and
#: ``verify`` bridge the hole, so an application role that could INSERT one could
#: remove any events it liked and keep the chain green (issue 16). The check runs as
#: the caller (the trigger function is not SECURITY DEFINER), for INSERT and COPY,
#: and only for such rows (the WHEN clause), so ordinary appends do not pay for it.
_V3: LiteralString = """
CREATE OR REPLACE FUNCTION {schema}.events_reserved() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    owner oid;
BEGIN
    SELECT nspowner INTO owner FROM pg_catalog.pg_namespace WHERE nspname = TG_TABLE_SCHEMA;
    IF NOT pg_catalog.pg_has_role(current_user, owner, 'USAGE') THEN
        RAISE EXCEPTION 'eventvault: % events are written by the schema owner''s role only '
            '(retention runs as the owner or a member of its role), not by %',
            NEW.type, current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS events_reserved ON {schema}.events;
CREATE TRIGGER events_reserved BEFORE INSERT ON {schema}.events
    FOR EACH ROW WHEN (starts_with(NEW.type, 'eventvault.'))
    EXECUTE FUNCTION {schema}.events_reserved();

-- Retention's switch is honoured only inside retention_delete, where (a SECURITY
-- DEFINER function) the current user is the function's owner (baked in below by
-- migrate()): a role granted DELETE by mistake cannot remove
-- anything by setting the switch. (A name comparison per row: looking the owner's
-- role up per row made retention twice as slow.)
CREATE OR REPLACE FUNCTION {schema}.events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('eventvault.retention', true) = 'on'
            AND OLD.type <> 'eventvault.retention.applied'
            AND current_user = {owner} THEN
        RETURN OLD;  -- inside retention_delete
    END IF;
    RAISE EXCEPTION 'eventvault: events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
"""

#: Reading by causation id (``Query.causation_ids``: a run's causal tree) walks an
#: index in position order, as the other name filters do.
_V4: LiteralString = """
CREATE INDEX IF NOT EXISTS events_causation_position
    ON {schema}.events (causation_id, position) WHERE causation_id IS NOT NULL;
"""

#: The Merkle tree (RFC 9162) of the events (issue 20; :mod:`.tree`). Its stored
#: hashes (:mod:`eventvault.tlog.layout`), one row per commit: the run of hashes that
#: commit appended, from index ``start`` — one index entry per commit, not per hash,
#: and ``STORAGE EXTERNAL`` (uncompressed TOAST) so ``substring`` reads only the pages
#: holding the hashes asked for. The tree's size, its right edge and ``tree_base``
#: (leaf 0 is the event at ``tree_base + 1``) live in the head row, which every append
#: locks and updates anyway: the tree moves with the events, in one transaction.
#: ``tree_base`` NULL: a schema upgraded with events whose tree is not built yet
#: (:meth:`~.tree.TreePath.build_tree`). Tree rows and checkpoints are insert-only,
#: whatever the client; the head's tree never shrinks and its base never moves.
_V6_TREE: LiteralString = """
CREATE TABLE IF NOT EXISTS {schema}.tree (
    start  bigint PRIMARY KEY CHECK (start >= 0),
    hashes bytea  NOT NULL CHECK (length(hashes) > 0 AND length(hashes) % 32 = 0)
);
ALTER TABLE {schema}.tree ALTER COLUMN hashes SET STORAGE EXTERNAL;

-- Signed checkpoints (C2SP signed notes) kept for readers' convenience.
CREATE TABLE IF NOT EXISTS {schema}.checkpoints (
    size       bigint      NOT NULL CHECK (size >= 0),
    note       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS checkpoints_size ON {schema}.checkpoints (size, created_at);

ALTER TABLE {schema}.head
    ADD COLUMN IF NOT EXISTS tree_base bigint,
    ADD COLUMN IF NOT EXISTS tree_size bigint,
    ADD COLUMN IF NOT EXISTS tree_edge bytea;
-- An upgraded store without events starts its tree with its first event.
UPDATE {schema}.head SET tree_base = 0, tree_size = 0, tree_edge = ''
    WHERE position = 0 AND tree_base IS NULL;

CREATE OR REPLACE FUNCTION {schema}.tree_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventvault: the Merkle tree and its checkpoints are append-only '
        '(% of %.% refused)', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS tree_append_only ON {schema}.tree;
CREATE TRIGGER tree_append_only BEFORE UPDATE OR DELETE ON {schema}.tree
    FOR EACH ROW EXECUTE FUNCTION {schema}.tree_append_only();
DROP TRIGGER IF EXISTS tree_no_truncate ON {schema}.tree;
CREATE TRIGGER tree_no_truncate BEFORE TRUNCATE ON {schema}.tree
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tree_append_only();
DROP TRIGGER IF EXISTS checkpoints_append_only ON {schema}.checkpoints;
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON {schema}.checkpoints
    FOR EACH ROW EXECUTE FUNCTION {schema}.tree_append_only();
DROP TRIGGER IF EXISTS checkpoints_no_truncate ON {schema}.checkpoints;
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON {schema}.checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.tree_append_only();

-- The role that moves the head (it must, to append) cannot shrink the tree or move
-- its base: the WHEN clause is a plain expression, so appends pay no function call.
CREATE OR REPLACE FUNCTION {schema}.head_tree_grows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventvault: the Merkle tree never shrinks and its base never moves '
        '(tree_size % -> %, tree_base % -> % refused)',
        OLD.tree_size, NEW.tree_size, OLD.tree_base, NEW.tree_base
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS head_tree_grows ON {schema}.head;
CREATE TRIGGER head_tree_grows BEFORE UPDATE ON {schema}.head
    FOR EACH ROW WHEN (
        (OLD.tree_base IS NOT NULL AND NEW.tree_base IS DISTINCT FROM OLD.tree_base)
        OR (OLD.tree_size IS NOT NULL
            AND (NEW.tree_size IS NULL OR NEW.tree_size < OLD.tree_size))
    )
    EXECUTE FUNCTION {schema}.head_tree_grows();
"""

#: The hash format (:mod:`eventvault.integrity.chain`): 1, the hash chain, for every
#: schema made before this migration; 2, leaf hashes, for schemas made after it (the
#: head row's insert in :func:`migrate` says so). Fixed for the store's life: a role
#: that moves the head cannot change it.
_V7_HASH_FORMAT: LiteralString = """
ALTER TABLE {schema}.head
    ADD COLUMN IF NOT EXISTS hash_format smallint NOT NULL DEFAULT 1
    CHECK (hash_format IN (1, 2));

CREATE OR REPLACE FUNCTION {schema}.head_hash_format_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'eventvault: a store''s hash format is fixed (% -> % refused)',
        OLD.hash_format, NEW.hash_format
        USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS head_hash_format_fixed ON {schema}.head;
CREATE TRIGGER head_hash_format_fixed BEFORE UPDATE ON {schema}.head
    FOR EACH ROW WHEN (NEW.hash_format IS DISTINCT FROM OLD.hash_format)
    EXECUTE FUNCTION {schema}.head_hash_format_fixed();
"""

MIGRATIONS: list[LiteralString] = [_V1, _V2, _V3, _V4, V5_RUNS, _V6_TREE, _V7_HASH_FORMAT]
SCHEMA_VERSION = len(MIGRATIONS)


def channel_name(schema: str) -> str:
    """The NOTIFY channel of a schema: ``eventvault_<schema>``, or — when that would
    exceed PostgreSQL's 63-byte identifier limit (``pg_notify`` refuses longer
    names) — ``eventvault_`` and a digest of the schema name."""
    plain = f"eventvault_{schema}"
    if len(plain.encode()) <= 63:
        return plain
    return f"eventvault_{hashlib.sha256(schema.encode()).hexdigest()[:40]}"


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"eventvault:{schema}".encode()) - 2**31


def schema_version(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> int:
    """The version the schema is at (0: not created)."""
    # (quoted, as every statement quotes it: unquoted, 'MySchema' would fold to lower case)
    row = conn.execute(
        "SELECT to_regclass(quote_ident(%s) || '.schema_version') IS NOT NULL", (schema,)
    ).fetchone()
    if not row or not row[0]:
        return 0
    got = conn.execute(
        sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
            sql.Identifier(schema)
        )
    ).fetchone()
    return int(got[0]) if got else 0


def _retention_owner(conn: psycopg.Connection[tuple[Any, ...]], schema: str) -> str:
    """Who ``retention_delete`` runs as: its owner, or (not created yet) this role."""
    row = conn.execute(
        "SELECT pg_get_userbyid(p.proowner) FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE n.nspname = %s AND p.proname = 'retention_delete'",
        (schema,),
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT current_user").fetchone()
    return str(row[0]) if row else ""


def migrate(conn: psycopg.Connection[tuple[Any, ...]], schema: str, *, hash_format: int = 2) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION`; safe to run concurrently. Returns
    the number of migrations applied. ``hash_format``: a new store's (one that has
    its head row already keeps its own)."""
    if hash_format not in (1, 2):
        raise ValueError(f"hash_format must be 1 or 2, got {hash_format!r}")
    ident = sql.Identifier(schema)
    applied = 0
    with conn.transaction():
        # Concurrent openers wait here instead of racing through CREATE statements.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_version ("
                "version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        current = schema_version(conn, schema)
        for version, statement in enumerate(MIGRATIONS, 1):
            if version <= current:
                continue
            owner = sql.Literal(_retention_owner(conn, schema))
            conn.execute(
                sql.SQL(statement).format(
                    schema=ident, owner=owner, schema_text=sql.Literal(schema)
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(ident),
                (version,),
            )
            applied += 1
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.head "
                "(position, store_id, tree_base, tree_size, tree_edge, hash_format) "
                "VALUES (0, %s, 0, 0, '', %s) "
                "ON CONFLICT (singleton) DO NOTHING"
            ).format(ident),
            (uuid.uuid4(), hash_format),
        )
    return applied
