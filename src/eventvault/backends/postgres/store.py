"""The PostgreSQL backend: the production store.

Ordering without gaps — how and why
-----------------------------------
The classic event-store bug: positions come from a sequence, writer A takes 41 and
writer B takes 42, B commits first, a follower reads "position > 40", sees 42 and
moves its cursor past 41 — which A commits a moment later and the follower never
sees. eventvault cannot have that bug, by construction:

* Every append transaction first locks the single row of ``head``
  (``SELECT … FOR UPDATE``). It holds the last position and the last chain hash,
  which the transaction needs anyway: event N's hash covers event N-1's.
* Positions are assigned while that lock is held, as ``head.position + 1 …``, and
  ``head`` is updated in the same transaction. The next writer (any thread, any
  process) blocks on the row until this transaction commits, then re-reads the
  committed ``head``. So transactions commit in position order, positions are
  contiguous, and a reader that sees position N also sees everything before N.
  (PostgreSQL makes a commit visible before it releases the transaction's locks.)

Serialising every transaction would cap throughput at one WAL flush per append,
so appends from threads of one process are *group-committed*: whichever thread
gets the commit lock takes every append queued so far and writes them all in one
transaction (one lock, one ``COPY``, one WAL flush). Each append keeps its own
atomicity and expected-revision check — a failing one fails alone.

One clock for ``recorded_at``
----------------------------
The locking path stamps with the database's ``clock_timestamp()``. The one-round-
trip path must stamp before it sends (the hash covers the time), so it reads the
client's clock *corrected by the offset to the database's clock* measured on this
store's last locking commit, and its statement moves the head only if that stamp
lies within :data:`CLOCK_TOLERANCE` of the database's clock; otherwise nothing is
written and the locking path stamps with the database's clock. So every
``recorded_at`` is the database's clock, or within ``CLOCK_TOLERANCE`` of it — a
client whose clock is a day off cannot drag later events (which never go back in
time) a day into the future.

Live tail: the append transaction ``NOTIFY``s; a listener connection wakes
subscribers, and they poll as a fallback if notifications are missed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, LiteralString, NamedTuple
from uuid import UUID

import msgspec

from ... import sequencer as _sequencer
from ...errors import (
    ConfigError,
    ConflictError,
    CorruptionError,
    EventVaultError,
    MissingExtraError,
    NotSupportedError,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
)
from ...groupcommit import GroupCommit, Request
from ...model import ExpectedRevision, NewEvent, Query, RecordedEvent, StoreStats
from ...retention import Policy
from ...spi import (
    DEFAULT_MAX_EVENT_BYTES,
    GENESIS,
    Backend,
    ChainHead,
    EventHead,
    GroupPlan,
    Import,
    Importing,
    ProgressCallback,
    Retaining,
    Run,
    stamp_group,
)
from ...store import EventStore

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import set_json_loads
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("postgres", exc.name or "psycopg") from exc

from . import columns as _columns
from . import retention as _retention
from .config import postgres_schema_problem
from .schema import SCHEMA_VERSION, channel_name, migrate, schema_version

__all__ = ["PostgresBackend", "PostgresEventStore"]

log = logging.getLogger("eventvault.postgres")

_MAX_POSITION = 2**63 - 1
#: How far a ``recorded_at`` stamped by the one-round-trip path may be from the
#: database's clock (see "One clock" above); beyond it, the locking path stamps.
CLOCK_TOLERANCE = timedelta(milliseconds=500)


#: Groups this large are written with COPY; smaller ones in one INSERT statement.
_COPY_FROM = 64
#: Streams whose last revision the writer remembers between commits.
_REVISION_CACHE = 100_000
#: What ``{columns}`` and ``{unnest}`` stand for in statements (see :meth:`_q`): every
#: column of ``events`` and their array casts, in table order (:mod:`.columns`).
_COLUMN_SQL: dict[str, sql.Composable] = {
    "columns": _columns.frozen(_columns.column_list()),
    "unnest": _columns.frozen(_columns.unnest_casts()),
}
_STATEMENTS: dict[str, LiteralString] = {
    "lock_head": "SELECT position, hash, recorded_at, clock_timestamp() FROM {s}.head FOR UPDATE",
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
    "move_head": (
        "WITH upd AS (UPDATE {s}.head SET position = %s, hash = %s, recorded_at = %s) "
        "SELECT pg_notify(%s, %s::text)"
    ),
    "insert_move_head": (
        "WITH ins AS (INSERT INTO {s}.events ({columns}) SELECT * FROM {unnest}), "
        "upd AS (UPDATE {s}.head SET position = %s, hash = %s, recorded_at = %s) "
        "SELECT pg_notify(%s, %s::text)"
    ),
    # The one-round-trip append (see _commit_fast): the head moves only if it is where
    # we left it and the streams new to us are empty; the rows go in only if it moved.
    "fast_insert": (
        "WITH upd AS (UPDATE {s}.head SET position = %s, hash = %s, recorded_at = %s "
        "WHERE position = %s AND hash IS NOT DISTINCT FROM %s "
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
        "WHERE EXISTS (SELECT 1 FROM upd)) "
        "SELECT count(*) FROM upd, LATERAL (SELECT pg_notify(%s, %s::text)) AS notified"
    ),
    "by_id": "SELECT {columns} FROM {s}.events WHERE id = %s",
    "head": "SELECT position FROM {s}.head",
    "store_id": "SELECT store_id FROM {s}.head",
}


class _Head(NamedTuple):
    position: int
    type: str
    stream: str
    stream_revision: int
    hash: str


#: A stored event in table order (the values of ``{columns}``), and back: generated
#: from :mod:`.columns`. (Module globals, looked up per call: tests replace ``_row``.)
_row = _columns.to_row
_record = _columns.from_row


class _Recheck(Exception):
    """An import stamped without looking its ids up failed: redo it carefully."""


def _items(req: Request) -> Sequence[NewEvent | RecordedEvent]:
    return req.imported.records if req.imported is not None else req.batch


def _size(req: Request) -> int:
    return len(_items(req))


def _like_prefix(pattern: str) -> str:
    """``task.*`` -> ``task.%`` with LIKE's own wildcards escaped."""
    body = pattern[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return body + "%"


def _translate(exc: BaseException, action: str) -> EventVaultError | None:
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
def _db_errors(action: str) -> Iterator[None]:
    """Driver errors raised inside become eventvault errors (see :func:`_translate`)."""
    try:
        yield
    except EventVaultError:
        raise
    except Exception as exc:
        typed = _translate(exc, action)
        if typed is None:
            raise
        raise typed from exc


class PostgresBackend(Backend, Importing, Retaining):
    """Events in a PostgreSQL schema. Thread- and process-safe."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "eventvault",
        pool_min: int = 1,
        pool_max: int = 10,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        create_schema: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.max_event_bytes = max_event_bytes
        self._closed = False
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            # (the driver's reason may quote the password: not repeated here)
            raise ConfigError(
                "store.postgres.dsn is not a valid PostgreSQL connection string (expected "
                "key=value pairs like 'host=db dbname=app' or a postgresql://user@host/db URI)"
            ) from None
        problem = postgres_schema_problem(schema)
        if problem:  # (before connecting: nothing is created under a name that cannot work)
            raise ConfigError(f"schema: {problem}")
        self.dsn = dsn
        self.schema = schema
        self._s = sql.Identifier(schema)
        self._channel = channel_name(schema)
        self._statement_timeout_ms = int(statement_timeout * 1000)
        self._connect_timeout = connect_timeout
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            dsn,
            min_size=pool_min,
            max_size=pool_max,
            timeout=connect_timeout,
            kwargs={"connect_timeout": max(1, int(connect_timeout)), "autocommit": True},
            configure=self._configure,
            open=False,
            name=f"eventvault-{schema}",
        )
        # One direct connection first: an unreachable server or a bad password fails
        # here at once with the driver's reason (a pool would retry until its timeout).
        # It then serves as the commit leader's connection.
        with _db_errors(f"connecting to PostgreSQL ({self._safe_dsn()})"):
            conn = self._connect()
        self._writer_conn: psycopg.Connection[tuple[Any, ...]] | None = conn
        try:
            with _db_errors("preparing the schema"):
                if create_schema:
                    migrate(conn, schema)
                found = schema_version(conn, schema)
                if found == 0:
                    raise StoreNotFoundError(
                        f"no store at PostgreSQL schema {schema!r} ({self._safe_dsn()}): "
                        "create it with 'eventvault init'"
                        + ("" if create_schema else " (or set store.postgres.create_schema)")
                    )
                if found != SCHEMA_VERSION:
                    raise StoreUnavailableError(
                        f"schema {schema!r} is at version {found}, this eventvault needs "
                        f"{SCHEMA_VERSION}: run 'eventvault init' (or allow create_schema)"
                    )
                # Rendered once: psycopg then caches (and prepares) them by their bytes.
                self._sql = {k: self._q(v).as_bytes(conn) for k, v in _STATEMENTS.items()}
                row = conn.execute(self._sql["store_id"]).fetchone()
                assert row is not None
                self._store_id = str(row[0])
            with _db_errors(f"connecting to PostgreSQL ({self._safe_dsn()})"):
                self._pool.open(wait=True, timeout=connect_timeout)
        except BaseException:
            conn.close()
            self._pool.close()
            raise
        self._group = GroupCommit(self._commit)
        # The head and stream revisions as of our last commit (see _commit_fast).
        self._known: ChainHead | None = None
        self._revisions: dict[str, int] = {}
        #: The database's clock minus ours, as of the last locking commit.
        self._clock_offset: timedelta | None = None
        self._notified = threading.Condition()
        self._notified_head = 0
        self._listener: threading.Thread | None = None
        #: Events one retention transaction removes at most.
        self.retention_batch = _retention.BATCH

    def translate_error(self, exc: Exception, action: str) -> EventVaultError | None:
        return _translate(exc, action)

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
        return sql.SQL(text).format(s=self._s, **_COLUMN_SQL)

    @property
    def store_id(self) -> str:
        return self._store_id

    # -- appending -------------------------------------------------------------------

    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        return self._group.submit(batch, expected)

    def import_records(self, imp: Import) -> list[RecordedEvent]:
        return self._group.submit_request(Request([], ExpectedRevision.ANY, imported=imp))

    def _writer(self) -> psycopg.Connection[tuple[Any, ...]]:
        """The commit leader's own connection (one leader at a time), reopened after a
        failure. Appends skip the pool: checking a connection out costs more than a
        small append."""
        conn = self._writer_conn
        if conn is None or conn.closed:
            conn = self._writer_conn = self._connect()
        return conn

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(
            self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
        )
        self._configure(conn)
        return conn

    def _commit(self, group: list[Request]) -> None:
        """Write every request of ``group`` in one transaction (the group commit
        leader's job; :meth:`commit` queues a request for it)."""
        try:
            with _db_errors("appending"):
                try:
                    conn = self._writer()
                    use_copy = sum(_size(r) for r in group) >= _COPY_FROM
                    written = None if use_copy else self._commit_fast(conn, group)
                    if written is None:
                        # Small groups use pipeline mode: BEGIN + lock + the two reads
                        # go out together, then the write and COMMIT: two round trips.
                        # (COPY, for large groups, cannot run in a pipeline.)
                        pipeline = contextlib.nullcontext() if use_copy else conn.pipeline()
                        # A copy never re-sends an id unless it resumes after an unknown
                        # outcome: let the UNIQUE constraint find those (rare) ids
                        # instead of looking up every one first; on a hit, the
                        # transaction rolls back and the careful path runs.
                        optimistic = use_copy and all(r.imported is not None for r in group)
                        try:
                            with pipeline, conn.transaction():
                                written, head, revisions = self._commit_in(
                                    conn, group, use_copy=use_copy, check_ids=not optimistic
                                )
                        except (psycopg.errors.UniqueViolation, _Recheck):
                            if not optimistic:
                                raise
                            with conn.transaction():
                                written, head, revisions = self._commit_in(
                                    conn, group, use_copy=use_copy
                                )
                        self._remember(head, revisions)
                except psycopg.Error:
                    self._known = None
                    if self._writer_conn is not None and self._writer_conn.broken:
                        self._writer_conn.close()
                        self._writer_conn = None
                    raise
            if written:
                with self._notified:
                    self._notified.notify_all()
        except EventVaultError as exc:
            # The transaction rolled back, or its outcome is unknown (connection lost
            # during COMMIT): either way a retry with the same ids is safe.
            for req in group:
                if req.error is None:
                    req.error = exc
                    req.results = []

    def _remember(self, head: ChainHead, revisions: dict[str, int]) -> None:
        """What the next append may assume if nobody else writes in between."""
        self._known = head
        if len(self._revisions) + len(revisions) > _REVISION_CACHE:
            self._revisions.clear()
        self._revisions.update(revisions)

    def _commit_fast(
        self, conn: psycopg.Connection[tuple[Any, ...]], group: list[Request]
    ) -> int | None:
        """Commit in ONE round trip by assuming nobody wrote since our last commit.

        After our own commit we know the head (position, hash, time) and the last
        revision of every stream we touched. Assuming they still hold, the records
        are stamped here, and one statement (its own transaction) moves the head *only
        if* it is still where we left it (and the streams we have never seen are still empty),
        and inserts the rows only if the head moved. Whoever wrote meanwhile changed
        the head, so the update matches no row and nothing is written. A re-sent id
        trips the UNIQUE constraint. Either way (or whenever an assumption is not
        safe to make, e.g. an expected revision on a stream we have not seen) this
        returns None and the locking path decides, authoritatively.
        """
        known = self._known
        if known is None:
            return None
        unknown = list({ev.stream for r in group for ev in _items(r)} - self._revisions.keys())
        if unknown and any(r.expected is not ExpectedRevision.ANY for r in group):
            return None
        offset = self._clock_offset
        if offset is None:
            return None
        stamped = stamp_group(
            group,
            known,
            revision_of=self._revisions.get,
            find=lambda _id: None,  # a stored id trips the UNIQUE constraint instead
            max_event_bytes=self.max_event_bytes,
            # The database's clock, as well as we know it (the statement checks).
            now=_sequencer.client_clock() + offset,
        )
        if stamped.failed:
            return None  # let the authoritative path produce (or not) the error
        head, new = stamped.head, stamped.new
        columns = list(zip(*map(_row, new), strict=True))
        try:
            # One statement on an autocommit connection is its own transaction: atomic,
            # durable when it returns, NOTIFY delivered at its commit. One round trip.
            moved = conn.execute(
                self._sql["fast_insert"],
                (
                    head.position,
                    head.hash.hex(),
                    head.recorded_at,
                    known.position,
                    known.hash.hex() if known.position else None,
                    head.recorded_at,
                    CLOCK_TOLERANCE,
                    CLOCK_TOLERANCE,
                    unknown,
                    *map(list, columns),
                    self._channel,
                    head.position,
                ),
            )
            row = moved.fetchone()
        except psycopg.errors.UniqueViolation:
            self._known = None  # an id is stored already: the locking path handles it
            return None
        if not row or not row[0]:
            self._known = None  # someone else wrote: fall back, and re-learn
            return None
        stamped.settle()
        self._remember(head, stamped.revisions)
        return len(new)

    def _commit_in(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        group: list[Request],
        *,
        use_copy: bool,
        check_ids: bool = True,
    ) -> tuple[int, ChainHead, dict[str, int]]:
        streams = list({ev.stream for req in group for ev in _items(req)})
        # The lock orders all writers (see the module docstring). The reads come
        # after it is granted: under READ COMMITTED each statement sees every commit
        # before it, so nobody can add an id or a revision behind our back.
        head_cur = conn.execute(self._sql["lock_head"])
        ids_cur = (
            conn.execute(self._sql["by_ids"], ([ev.id for req in group for ev in _items(req)],))
            if check_ids
            else None
        )
        revs_cur = conn.execute(self._sql["revisions"], (streams,))
        row = head_cur.fetchone()  # (in a pipeline: sends all three, waits once)
        assert row is not None
        head = ChainHead(
            position=row[0],
            hash=bytes.fromhex(row[1]) if row[1] else GENESIS,
            recorded_at=row[2],
        )
        now: datetime = row[3]
        self._clock_offset = now - _sequencer.client_clock()
        stored = {rec.id.int: rec for rec in map(_record, ids_cur.fetchall())} if ids_cur else {}
        revisions: dict[str, int] = {r[0]: r[1] for r in revs_cur.fetchall()}
        stamped = stamp_group(
            group,
            head,
            revision_of=revisions.get,
            find=lambda event_id: stored.get(event_id.int),
            max_event_bytes=self.max_event_bytes,
            now=now,
        )
        if not check_ids and stamped.failed:
            raise _Recheck  # maybe only because ids were stored already: look them up
        stamped.settle()
        head, new = stamped.head, stamped.new
        revisions.update(stamped.revisions)
        if not new:
            return 0, head, revisions
        move_head = (head.position, head.hash.hex(), head.recorded_at, self._channel, head.position)
        if use_copy:
            with conn.cursor() as cur, cur.copy(self._sql["copy"]) as copy:
                for r in new:
                    copy.write_row(_row(r))
            conn.execute(self._sql["move_head"], move_head)
        else:
            # Small groups: one statement inserts the rows (arrays, unnested), moves
            # the head and notifies listeners (delivered at COMMIT).
            columns = list(zip(*map(_row, new), strict=True))
            conn.execute(self._sql["insert_move_head"], (*map(list, columns), *move_head))
        return len(new), head, revisions

    # -- reading ---------------------------------------------------------------------------

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        """One SELECT, shaped so the planner can walk an index in position order.

        ``ORDER BY position LIMIT n`` with ``col = ANY(array)`` tempts PostgreSQL to
        scan the primary key and filter — fine when matches are spread out, a
        half-table scan when they cluster (a run's events do). So a filter with one
        value is written ``col = %s`` (the ``(col, position)`` index then yields rows in
        order), and with several values the query is split into one ordered, limited
        branch per value, merged by ``UNION ALL`` (values of one column are disjoint).
        """
        common: list[tuple[sql.Composable, list[Any]]] = []
        if query.after is not None:
            common.append((sql.SQL("position > %s"), [query.after]))
        if query.before is not None:
            common.append((sql.SQL("position < %s"), [query.before]))
        # recorded_at never decreases with position, so a time bound is a position
        # bound: one index probe (an InitPlan), then position-ordered index scans.
        for bound, value in ((">=", query.since), ("<", query.until)):
            if value is not None:
                probe = self._q(
                    f"position {bound} coalesce((SELECT position FROM {{s}}.events WHERE "
                    f"recorded_at >= %s ORDER BY recorded_at, position LIMIT 1), {_MAX_POSITION})"
                )
                common.append((probe, [value]))
        exact: dict[str, list[str]] = {}
        if query.types and "*" not in query.types:
            patterns = [t for t in query.types if t.endswith("*")]
            if patterns:  # patterns may overlap exact names: an OR, never a branch
                ors = [(sql.SQL("type LIKE %s"), _like_prefix(p)) for p in patterns]
                ors += [(sql.SQL("type = %s"), t) for t in query.types if not t.endswith("*")]
                common.append(
                    (
                        sql.SQL("(") + sql.SQL(" OR ").join(c for c, _ in ors) + sql.SQL(")"),
                        [v for _, v in ors],
                    )
                )
            else:
                exact["type"] = list(query.types)
        for column, values in (
            ("correlation_id", query.correlation_ids),
            ("causation_id", query.causation_ids),
            ("stream", query.streams),
            ("actor", query.actors),
        ):
            if values:
                exact[column] = list(values)
        # Branch on the multi-valued column with the fewest values; others use ANY.
        multi = sorted((len(v), c) for c, v in exact.items() if len(v) > 1)
        split = multi[0][1] if multi else None
        for column, values in exact.items():
            if column == split:
                continue
            ident = sql.Identifier(column)
            if len(values) == 1:
                common.append((sql.SQL("{} = %s").format(ident), [values[0]]))
            else:
                common.append((sql.SQL("{} = ANY(%s)").format(ident), [values]))
        order = sql.SQL("DESC" if query.reverse else "ASC")
        select = self._q("SELECT {columns} FROM {s}.events")

        def branch(extra: list[tuple[sql.Composable, list[Any]]]) -> tuple[sql.Composed, list[Any]]:
            conds = common + extra
            text = select
            if conds:
                text = text + sql.SQL(" WHERE ") + sql.SQL(" AND ").join(c for c, _ in conds)
            text = text + sql.SQL(" ORDER BY position {} LIMIT %s").format(order)
            return text, [p for _, ps in conds for p in ps] + [limit]

        if split is None:
            statement, params = branch([])
        else:
            parts = [
                branch([(sql.SQL("{} = %s").format(sql.Identifier(split)), [value])])
                for value in exact[split]
            ]
            statement = (
                sql.SQL("SELECT * FROM (")
                + sql.SQL(" UNION ALL ").join(sql.SQL("(") + t + sql.SQL(")") for t, _ in parts)
                + sql.SQL(") AS branches ORDER BY position {} LIMIT %s").format(order)
            )
            params = [p for _, ps in parts for p in ps] + [limit]
        return list(map(_record, self._query("reading", statement, params)))

    def _query(
        self, action: str, statement: bytes | sql.Composed, params: Sequence[Any] = ()
    ) -> list[tuple[Any, ...]]:
        """Run a read. Reads are idempotent, so after a connection failure (a server
        restart leaves dead connections in the pool) the pool drops its broken
        connections and the read is tried once more."""
        with _db_errors(action):
            try:
                with self._pool.connection() as conn:
                    return conn.execute(statement, params).fetchall()
            except psycopg.OperationalError:
                self._pool.check()
                with self._pool.connection() as conn:
                    return conn.execute(statement, params).fetchall()

    def get(self, event_id: UUID) -> RecordedEvent | None:
        rows = self._query("reading", self._sql["by_id"], (event_id,))
        return _record(rows[0]) if rows else None

    def head(self) -> int:
        rows = self._query("reading the head", self._sql["head"])
        return int(rows[0][0]) if rows else 0

    def head_state(self) -> tuple[int, str | None] | None:
        rows = self._query("reading the head", self._q("SELECT position, hash FROM {s}.head"))
        if not rows:
            raise CorruptionError(f"schema {self.schema!r} has no head row (was it deleted?)")
        position, digest = rows[0]
        return (int(position), digest)

    def stats(self) -> StoreStats:
        (row,) = self._query(
            "reading stats",
            self._q(
                "SELECT (SELECT position FROM {s}.head), count(*), min(position), "
                "count(DISTINCT stream), min(recorded_at), max(recorded_at), "
                "pg_total_relation_size(to_regclass(quote_ident(%s) || '.events')) "
                "FROM {s}.events"
            ),
            (self.schema,),
        )
        return StoreStats(
            backend=self.name,
            events=row[1],
            head_position=row[0],
            first_position=row[2],
            streams=row[3],
            oldest_recorded_at=row[4],
            newest_recorded_at=row[5],
            size_bytes=row[6],
            details={"schema": self.schema, "dsn": self._safe_dsn()},
        )

    # -- retention ---------------------------------------------------------------------------

    def plan_groups(self, policy: Policy, now: datetime, limit: int) -> list[GroupPlan]:
        return _retention.plan_groups(self._s, self._query, policy, now, limit)

    def walk_heads(self, before: int) -> Iterator[EventHead]:
        # Only the five columns retention needs, a position range at a time: far less
        # to ship than whole events (whole() fetches the ones that go). Ranges, not
        # "LIMIT n": right after a bulk load the planner's stale row estimates turn
        # "position > x ORDER BY position LIMIT n" into a sort of the whole table.
        page = sql.SQL(
            "SELECT {} FROM {}.events WHERE position > %s AND position < %s ORDER BY position"
        ).format(_columns.column_list(_Head._fields), self._s)
        skip = self._q("SELECT min(position) FROM {s}.events WHERE position > %s")
        after, span = 0, 20_000
        while after < before - 1:
            upto = min(after + span + 1, before)
            rows = self._query("applying retention", page, (after, upto))
            yield from map(_Head._make, rows)
            if rows:
                after = upto - 1
                continue
            nxt = self._query("applying retention", skip, (upto - 1,))[0][0]  # a hole
            if nxt is None or nxt >= before:
                return
            after = nxt - 1

    def whole(self, heads: list[EventHead]) -> list[RecordedEvent]:
        if not heads:
            return []
        rows = self._query(
            "applying retention",
            self._q("SELECT {columns} FROM {s}.events WHERE position = ANY(%s) ORDER BY position"),
            ([h.position for h in heads],),
        )
        whole = [_record(row) for row in rows]
        if [ev.position for ev in whole] != [h.position for h in heads]:
            raise StoreError("applying retention: events changed while being read")
        return whole

    def check_can_remove(self) -> None:
        function = '"{}".retention_delete'.format(self.schema.replace('"', '""'))
        rows = self._query(
            "checking the retention privilege",
            self._q("SELECT has_function_privilege(current_user, %s, 'EXECUTE')"),
            (f"{function}(bigint, bigint[], bigint[], bigint[], bigint[])",),
        )
        if not rows or not rows[0][0]:
            raise NotSupportedError(
                f"this role may not remove events: it needs EXECUTE on {function} (see the "
                "README's GRANTs), or apply retention as the schema owner"
            )
        # Receipts are the schema owner's to write (the events_reserved trigger).
        rows = self._query(
            "checking the retention privilege",
            self._q(
                "SELECT pg_has_role(current_user, nspowner, 'USAGE') FROM pg_namespace "
                "WHERE nspname = %s"
            ),
            (self.schema,),
        )
        if not rows or not rows[0][0]:
            raise NotSupportedError(
                "this role may not apply retention: receipts are written by the schema "
                "owner's role only; apply retention as the schema owner or a member of its "
                "role (see the README's roles)"
            )

    def remove_runs(
        self,
        runs: list[Run],
        tails: dict[str, int],
        receipts: list[RecordedEvent],
        progress: ProgressCallback | None,
    ) -> None:
        # (stream tails: retention_delete keeps them, in the same transaction)
        call = self._q("SELECT {s}.retention_delete(%s, %s, %s, %s, %s)")
        done = 0
        with _db_errors("applying retention"), self._pool.connection() as conn:
            batches = _retention.removal_batches(runs, receipts, self.retention_batch)
            for receipt, ranges in batches:
                firsts, lasts, los, his = (list(col) for col in zip(*ranges, strict=True))
                row = conn.execute(call, (receipt, firsts, lasts, los, his)).fetchone()
                done += int(row[0]) if row else 0
                if progress is not None:
                    progress(done, None)

    # -- live tail ---------------------------------------------------------------------------

    def _listen(self) -> None:
        """Wake waiting subscribers on NOTIFY; reconnect if the connection drops."""
        while not self._closed:
            try:
                with psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
                ) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    while not self._closed:
                        for note in conn.notifies(timeout=0.5):
                            with self._notified:
                                self._notified_head = max(self._notified_head, int(note.payload))
                                self._notified.notify_all()
            except (psycopg.Error, ValueError) as exc:
                log.info("live-tail listener reconnecting after: %s", exc)
                threading.Event().wait(0.5)

    def wait(self, head: int, timeout: float) -> None:
        if self._listener is None:
            with self._notified:
                if self._listener is None:
                    self._listener = threading.Thread(
                        target=self._listen, name="eventvault-pg-listen", daemon=True
                    )
                    self._listener.start()
        with self._notified:
            if self._notified_head <= head and not self._closed:
                # A missed notification only delays delivery by ``timeout``: the caller
                # re-reads the table, which is the source of truth.
                self._notified.wait(timeout)

    def close(self) -> None:
        with self._notified:
            self._closed = True
            self._notified.notify_all()
        self._group.drain()
        if self._writer_conn is not None:
            self._writer_conn.close()
        self._pool.close()
        if self._listener is not None:
            self._listener.join(timeout=2)


class PostgresEventStore(EventStore):
    """An :class:`~eventvault.EventStore` over a :class:`PostgresBackend` (arguments:
    those of :class:`PostgresBackend`)."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "eventvault",
        pool_min: int = 1,
        pool_max: int = 10,
        connect_timeout: float = 10.0,
        statement_timeout: float = 30.0,
        create_schema: bool = True,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(
            PostgresBackend(
                dsn,
                schema=schema,
                pool_min=pool_min,
                pool_max=pool_max,
                connect_timeout=connect_timeout,
                statement_timeout=statement_timeout,
                create_schema=create_schema,
                max_event_bytes=max_event_bytes,
            )
        )

    @property
    def backend(self) -> PostgresBackend:
        backend = self._backend
        assert isinstance(backend, PostgresBackend)
        return backend

    @property
    def dsn(self) -> str:
        return self.backend.dsn

    @property
    def schema(self) -> str:
        return self.backend.schema

    @property
    def retention_batch(self) -> int:
        """Events one retention transaction removes at most."""
        return self.backend.retention_batch

    @retention_batch.setter
    def retention_batch(self, value: int) -> None:
        self.backend.retention_batch = value


def drop_schema(dsn: str, schema: str) -> None:
    """Remove a whole eventvault schema (tests and benchmarks only)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
