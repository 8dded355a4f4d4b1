"""The PostgreSQL backend: the production store.

:class:`PostgresBackend` is assembled from its parts — the write path
(:mod:`.writing`: group commit, gap-free ordering, one clock), the read path
(:mod:`.reading`), what both share (:mod:`.connection`), retention
(:mod:`.retention`) and the schema (:mod:`.schema`); here are its setup (connect,
migrate, render the statements), the retention and live-tail methods, and the
:class:`PostgresEventStore` façade.

Live tail: the append transaction ``NOTIFY``s; a listener connection wakes
subscribers, and they poll as a fallback if notifications are missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from ...errors import (
    ConfigError,
    EventVaultError,
    MissingExtraError,
    NotSupportedError,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from ...groupcommit import GroupCommit
from ...integrity.chain import CHAIN, LEAF
from ...model import RecordedEvent
from ...retention import Policy
from ...spi import (
    DEFAULT_MAX_EVENT_BYTES,
    Backend,
    ChainHead,
    EventHead,
    GroupPlan,
    Importing,
    ProgressCallback,
    Proving,
    Retaining,
    Run,
)
from ...store import EventStore

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("postgres", exc.name or "psycopg") from exc

from . import columns as _columns
from . import retention as _retention
from .config import postgres_schema_problem
from .connection import STATEMENTS, db_errors, translate
from .reading import ReadPath, _record
from .runindex import RunIndexPath
from .schema import SCHEMA_VERSION, channel_name, migrate, schema_version
from .tree import TreePath
from .writing import CLOCK_TOLERANCE, WritePath

__all__ = [
    "AUTO_BUILD_TREE",
    "CLOCK_TOLERANCE",
    "PostgresBackend",
    "PostgresEventStore",
    "drop_schema",
]

#: An upgraded store whose Merkle tree lacks at most this many events has it built
#: when it is opened (with ``create_schema``: by the role that migrates); a larger one
#: is left to ``eventvault upgrade`` (:meth:`PostgresBackend.build_tree`), which shows
#: progress, instead of an open that blocks for minutes.
AUTO_BUILD_TREE = 50_000

log = logging.getLogger("eventvault.postgres")


class _Head(NamedTuple):
    position: int
    type: str
    stream: str
    stream_revision: int
    hash: str


class PostgresBackend(
    WritePath, ReadPath, RunIndexPath, TreePath, Backend, Importing, Retaining, Proving
):
    """Events in a PostgreSQL schema, and their Merkle tree (:mod:`.tree`). Thread-
    and process-safe."""

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
        hash_format: int | None = None,
    ) -> None:
        if hash_format is not None and hash_format not in (CHAIN, LEAF):
            raise ValidationError(f"hash_format must be 1 or 2, got {hash_format!r}")
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
        with db_errors(f"connecting to PostgreSQL ({self._safe_dsn()})"):
            conn = self._connect()
        self._writer_conn: psycopg.Connection[tuple[Any, ...]] | None = conn
        try:
            with db_errors("preparing the schema"):
                if create_schema:
                    migrate(conn, schema, hash_format=LEAF if hash_format is None else hash_format)
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
                self._sql = {k: self._q(v).as_bytes(conn) for k, v in STATEMENTS.items()}
                row = conn.execute(self._sql["store_id"]).fetchone()
                assert row is not None
                self._store_id = str(row[0])
                self.hash_format = int(row[1])
                if hash_format is not None and hash_format != self.hash_format:
                    raise ValidationError(
                        f"schema {schema!r} keeps hash format {self.hash_format}, not "
                        f"{hash_format}: the format is fixed when a store is made ('eventvault "
                        "copy' into a new schema converts)"
                    )
            with db_errors(f"connecting to PostgreSQL ({self._safe_dsn()})"):
                self._pool.open(wait=True, timeout=connect_timeout)
        except BaseException:
            conn.close()
            self._pool.close()
            raise
        self._group = GroupCommit(self._commit)
        # The head and stream revisions as of our last commit (see _commit_fast).
        self._known: ChainHead | None = None
        self._known_tree = None
        self._revisions: dict[str, int] = {}
        #: The database's clock minus ours, as of the last locking commit.
        self._clock_offset: timedelta | None = None
        self._notified = threading.Condition()
        self._notified_head = 0
        self._listener: threading.Thread | None = None
        #: Events one retention transaction removes at most.
        self.retention_batch = _retention.BATCH
        if create_schema:
            try:
                self._catch_up_tree()
            except BaseException:
                self.close()
                raise

    def _catch_up_tree(self) -> None:
        """Build the tree of an upgraded store now if that is quick; otherwise say that
        ``eventvault upgrade`` builds it (appends work meanwhile; proofs and the tree
        check cover only the part built so far)."""
        behind = self.tree_behind()
        if not behind:
            return
        if behind <= AUTO_BUILD_TREE:
            log.info("building the Merkle tree of %d events in schema %r", behind, self.schema)
            self.build_tree()
            return
        log.warning(
            "schema %r: the Merkle tree lacks %d events (the store was upgraded); run "
            "'eventvault upgrade' to build it - until then proofs and checkpoints cover only "
            "the part built so far",
            self.schema,
            behind,
        )

    def translate_error(self, exc: Exception, action: str) -> EventVaultError | None:
        return translate(exc, action)

    @property
    def store_id(self) -> str:
        return self._store_id

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
        with db_errors("applying retention"), self._pool.connection() as conn:
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
        hash_format: int | None = None,
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
                hash_format=hash_format,
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
