"""What the PostgreSQL write and read paths share: the statements (rendered once),
the driver's errors translated, connections set up alike, a read that retries once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, LiteralString

import msgspec
import psycopg
from psycopg import sql
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import ConflictError, EventVaultError, StoreError, StoreUnavailableError
from . import columns as _columns

__all__ = ["COLUMN_SQL", "STATEMENTS", "Connected", "db_errors", "translate"]

#: What ``{columns}`` and ``{unnest}`` stand for in statements (see :meth:`_q`): every
#: column of ``events`` and their array casts, in table order (:mod:`.columns`).
COLUMN_SQL: dict[str, sql.Composable] = {
    "columns": _columns.frozen(_columns.column_list()),
    "unnest": _columns.frozen(_columns.unnest_casts()),
}
STATEMENTS: dict[str, LiteralString] = {
    "lock_head": (
        "SELECT position, hash, recorded_at, clock_timestamp(), tree_base, tree_size, "
        "tree_edge FROM {s}.head FOR UPDATE"
    ),
    "by_ids": "SELECT {columns} FROM {s}.events WHERE id = ANY(%s)",
    # One backward probe of (stream, stream_revision) per stream: O(1), not O(length).
    # (stream_tails: the last revision of streams retention emptied.)
    "revisions": (
        "SELECT s.stream, coalesce(r.stream_revision, t.revision) "
        "FROM unnest(%s::text[]) AS s(stream) "
        "LEFT JOIN LATERAL (SELECT stream_revision FROM {s}.events e "
        "WHERE e.stream = s.stream ORDER BY stream_revision DESC LIMIT 1) r ON true "
        "LEFT JOIN {s}.stream_tails t ON t.stream = s.stream "
        "WHERE r.stream_revision IS NOT NULL OR t.revision IS NOT NULL"
    ),
    "copy": "COPY {s}.events ({columns}) FROM STDIN",
    # The head moves with the Merkle tree: its size and edge in the head row, the
    # hashes the append stored in one tree row (none while an upgraded store's tree is
    # still being built: see tree.py).
    "move_head": (
        "WITH upd AS (UPDATE {s}.head SET position = %s, hash = %s, recorded_at = %s, "
        "tree_size = %s, tree_edge = %s), "
        "grown AS (INSERT INTO {s}.tree (start, hashes) SELECT t.start, t.hashes FROM "
        "(SELECT %s::bigint AS start, %s::bytea AS hashes) AS t WHERE t.hashes IS NOT NULL) "
        "SELECT pg_notify(%s, %s::text)"
    ),
    "insert_move_head": (
        "WITH ins AS (INSERT INTO {s}.events ({columns}) SELECT * FROM {unnest}), "
        "upd AS (UPDATE {s}.head SET position = %s, hash = %s, recorded_at = %s, "
        "tree_size = %s, tree_edge = %s), "
        "grown AS (INSERT INTO {s}.tree (start, hashes) SELECT t.start, t.hashes FROM "
        "(SELECT %s::bigint AS start, %s::bytea AS hashes) AS t WHERE t.hashes IS NOT NULL) "
        "SELECT pg_notify(%s, %s::text)"
    ),
    # The one-round-trip append (see _commit_fast): the head moves only if it is where
    # we left it and the streams new to us are empty; the rows go in only if it moved.
    "fast_insert": (
        "WITH upd AS (UPDATE {s}.head SET position = %s, hash = %s, recorded_at = %s, "
        "tree_size = %s, tree_edge = %s "
        "WHERE position = %s AND hash IS NOT DISTINCT FROM %s "
        "AND tree_size IS NOT DISTINCT FROM %s "
        # One clock: the client's stamp only if it is the database's, within tolerance.
        "AND %s::timestamptz BETWEEN clock_timestamp() - %s::interval "
        "AND clock_timestamp() + %s::interval AND NOT EXISTS "
        # One index probe per stream (a plain "stream = ANY(...)" gets a generic plan
        # that scans the table once the statement is prepared).
        "(SELECT 1 FROM unnest(%s::text[]) AS u(stream) CROSS JOIN LATERAL "
        "(SELECT 1 FROM {s}.events e WHERE e.stream = u.stream UNION ALL "
        "SELECT 1 FROM {s}.stream_tails t WHERE t.stream = u.stream LIMIT 1) AS hit) "
        "RETURNING 1), "
        "ins AS (INSERT INTO {s}.events ({columns}) SELECT * FROM {unnest} "
        "WHERE EXISTS (SELECT 1 FROM upd)), "
        "grown AS (INSERT INTO {s}.tree (start, hashes) SELECT t.start, t.hashes FROM "
        "(SELECT %s::bigint AS start, %s::bytea AS hashes) AS t "
        "WHERE t.hashes IS NOT NULL AND EXISTS (SELECT 1 FROM upd)) "
        "SELECT count(*) FROM upd, LATERAL (SELECT pg_notify(%s, %s::text)) AS notified"
    ),
    "by_id": "SELECT {columns} FROM {s}.events WHERE id = %s",
    "head": "SELECT position FROM {s}.head",
    "store_id": "SELECT store_id, hash_format FROM {s}.head",
}


def translate(exc: BaseException, action: str) -> EventVaultError | None:
    """The one place driver errors become eventvault errors (None: not the driver's)."""
    if isinstance(exc, EventVaultError):
        return exc
    if isinstance(exc, PoolTimeout):
        return StoreUnavailableError(f"{action}: no database connection available ({exc})")
    if isinstance(exc, psycopg.OperationalError):
        # libpq's messages span lines ("...refused\n\tIs the server running..."): one line.
        return StoreUnavailableError(f"{action}: {' '.join(str(exc).split())}")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return ConflictError(f"{action}: {exc}".strip())
    if isinstance(exc, psycopg.Error):
        return StoreError(f"{action}: {type(exc).__name__}: {exc}".strip())
    return None


@contextlib.contextmanager
def db_errors(action: str) -> Iterator[None]:
    """Driver errors raised inside become eventvault errors (see :func:`translate`)."""
    try:
        yield
    except EventVaultError:
        raise
    except Exception as exc:
        typed = translate(exc, action)
        if typed is None:
            raise
        raise typed from exc


class Connected:
    """The part of :class:`~.store.PostgresBackend` both paths use: where the store
    is, its pool, its statements (all set by the backend's ``__init__``)."""

    name: ClassVar[str]
    dsn: str
    schema: str
    max_event_bytes: int
    _s: sql.Identifier
    _channel: str
    _statement_timeout_ms: int
    _connect_timeout: float
    _pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]]
    #: :data:`STATEMENTS`, rendered for this schema.
    _sql: dict[str, bytes]

    def _safe_dsn(self) -> str:
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        except psycopg.ProgrammingError:
            return "an invalid DSN"
        info.pop("password", None)
        return " ".join(f"{k}={v}" for k, v in info.items())

    def _configure(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(f"SET statement_timeout = {int(self._statement_timeout_ms)}")
        set_json_loads(msgspec.json.decode, conn)

    def _q(self, text: LiteralString) -> sql.Composed:
        """A statement with ``{s}`` standing for the (quoted) schema name, ``{columns}``
        for every column of ``events`` and ``{unnest}`` for their array casts."""
        return sql.SQL(text).format(s=self._s, **COLUMN_SQL)

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
        )
        self._configure(conn)
        return conn

    def _query(
        self, action: str, statement: bytes | sql.Composed, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run a read. Reads are idempotent, so after a connection failure (a server
        restart leaves dead connections in the pool) the pool drops its broken
        connections and the read is tried once more."""
        with db_errors(action):
            try:
                with self._pool.connection() as conn:
                    return conn.execute(statement, params).fetchall()
            except psycopg.OperationalError:
                self._pool.check()
                with self._pool.connection() as conn:
                    return conn.execute(statement, params).fetchall()
