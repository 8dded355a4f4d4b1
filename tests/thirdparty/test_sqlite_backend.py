"""A backend eventvault does not ship — SQLite, in one module — run through the kit.

This module is the README's example ("Your own backend"): a backend written against
:mod:`eventvault.spi` alone, registered with :func:`eventvault.register_backend`
under a new name with its own ``[store.sqlite]`` table, and checked by subclassing
the conformance kit :mod:`eventvault.testing` — the same classes the built-in
backends pass (``tests/conformance/``).
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import msgspec
import pytest

from eventvault import (
    EventStore,
    NewEvent,
    Query,
    RecordedEvent,
    StoreStats,
    open_store,
    register_backend,
)
from eventvault.errors import StoreNotFoundError
from eventvault.spi import (
    GENESIS,
    Backend,
    ChainHead,
    ExpectedRevision,
    Import,
    Importing,
    StampedBatch,
    stamp_batch,
    stamp_import,
)
from eventvault.testing import ImportContract, StoreContract

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(RecordedEvent).decode


class SqliteOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[store.sqlite]``: the database file (relative to the config file)."""

    path: str = "events.db"

    PATHS: ClassVar[tuple[str, ...]] = ("path",)  # resolved like [store.file] path


class SqliteBackend(Backend, Importing):
    """One row per event, the record itself kept as JSON; one writer at a time."""

    name = "sqlite"

    def __init__(self, path: str, *, create: bool = True) -> None:
        if not create and not Path(path).exists():
            raise StoreNotFoundError(f"no sqlite store at {path}")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.RLock()  # the connection is shared by every thread
        self._closed = threading.Event()
        with self._lock:
            self._db.executescript(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"  # atomic and durable
                "CREATE TABLE IF NOT EXISTS meta (store_id TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS events (position INTEGER PRIMARY KEY,"
                " id TEXT UNIQUE NOT NULL, stream TEXT NOT NULL, revision INTEGER NOT NULL,"
                " record BLOB NOT NULL, UNIQUE (stream, revision));"
            )
            self._db.execute("BEGIN IMMEDIATE")  # two first opens agree on one id
            row = self._db.execute("SELECT store_id FROM meta").fetchone()
            if row is None:
                row = (str(uuid.uuid4()),)
                self._db.execute("INSERT INTO meta VALUES (?)", row)
            self._db.execute("COMMIT")
        self._id: str = row[0]

    @property
    def store_id(self) -> str:
        return self._id

    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        # The sequencer decides ids, revisions, positions, times and hashes (and the
        # idempotent retry); this backend only stores what it decided, all or nothing.
        return self._write(
            lambda head: stamp_batch(
                batch,
                expected,
                head,
                revision_of=self._revision_of,
                find=self.get,
                max_event_bytes=self.max_event_bytes,
            )
        )

    def import_records(self, imp: Import) -> list[RecordedEvent]:
        return self._write(
            lambda head: stamp_import(imp, head, revision_of=self._revision_of, find=self.get)
        )

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        # Scan in position order and keep what the query's own matcher accepts:
        # short, and right for every filter the contract checks (an index per filter
        # is what a production backend adds).
        order = "DESC" if query.reverse else "ASC"
        low = 0 if query.after is None else query.after
        high = 2**63 - 1 if query.before is None else query.before
        out: list[RecordedEvent] = []
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM events WHERE position > ? AND position < ?"
                f" ORDER BY position {order}",
                (low, high),
            )
            for (blob,) in rows:
                event = _decode(blob)
                if query.matches(event):
                    out.append(event)
                    if len(out) == limit:
                        break
        return out

    def get(self, event_id: UUID) -> RecordedEvent | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM events WHERE id = ?", (str(event_id),)
            ).fetchone()
        return None if row is None else _decode(row[0])

    def head(self) -> int:
        return self._head().position

    def stats(self) -> StoreStats:
        with self._lock:
            count, first, streams = self._db.execute(
                "SELECT count(*), min(position), count(DISTINCT stream) FROM events"
            ).fetchone()
            head = self._head()
            oldest = self._db.execute(
                "SELECT record FROM events ORDER BY position LIMIT 1"
            ).fetchone()
        return StoreStats(
            backend=self.name,
            events=count,
            head_position=head.position,
            first_position=first,
            streams=streams,
            oldest_recorded_at=None if oldest is None else _decode(oldest[0]).recorded_at,
            newest_recorded_at=head.recorded_at,
            size_bytes=None,
        )

    def wait(self, head: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:  # (close takes it too: never a closed connection here)
                if self._closed.is_set() or self._head().position > head:
                    return
            self._closed.wait(0.01)  # another process may append: poll

    def close(self) -> None:
        with self._lock:
            self._closed.set()  # a waiting tail returns at once
            self._db.close()

    def _write(self, stamp: Callable[[ChainHead], StampedBatch]) -> list[RecordedEvent]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock, across processes too
            try:
                stamped = stamp(self._head())
                self._db.executemany(
                    "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                    [
                        (r.position, str(r.id), r.stream, r.stream_revision, _encode(r))
                        for r in stamped.new
                    ],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return stamped.results

    def _head(self) -> ChainHead:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM events ORDER BY position DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return ChainHead(position=0, hash=GENESIS, recorded_at=None)
        last = _decode(row[0])
        return ChainHead(last.position, bytes.fromhex(last.hash), last.recorded_at)

    def _revision_of(self, stream: str) -> int | None:
        with self._lock:
            row = self._db.execute(
                "SELECT max(revision) FROM events WHERE stream = ?", (stream,)
            ).fetchone()
        return None if row is None else row[0]


def from_config(config: Any, *, create: bool = True, options: SqliteOptions) -> EventStore:
    return EventStore(SqliteBackend(options.path, create=create))


# What a plugin package does at import: eventvault.toml can now say backend = "sqlite".
register_backend("sqlite", from_config, config_type=SqliteOptions)


class TestSqlite(StoreContract, ImportContract):
    @pytest.fixture
    def make_store(self, tmp_path: Path) -> Callable[[], EventStore]:
        n = itertools.count()
        return lambda: open_sqlite(tmp_path / f"store-{next(n)}.db")

    @pytest.fixture
    def reopen_store(self) -> Callable[[EventStore], EventStore]:
        def reopen(store: EventStore) -> EventStore:
            path = store.backend._db.execute("PRAGMA database_list").fetchone()[2]
            store.close()
            return open_sqlite(Path(path))

        return reopen

    @pytest.fixture
    def tamper(self) -> Callable[[EventStore, int], EventStore]:
        def tamper(store: EventStore, position: int) -> EventStore:
            db = store.backend._db  # behind the store's back: change one stored event
            (row,) = db.execute("SELECT record FROM events WHERE position = ?", (position,))
            event = _decode(row[0])
            forged = msgspec.structs.replace(event, data={**event.data, "v": "tampered"})
            db.execute(
                "UPDATE events SET record = ? WHERE position = ?", (_encode(forged), position)
            )
            return store

        return tamper


def open_sqlite(path: Path) -> EventStore:
    """Through the configuration, as a user would: ``[store.sqlite] path = ...``."""
    return open_store({"store": {"backend": "sqlite", "sqlite": {"path": str(path)}}})


def test_the_table_is_validated_like_a_built_in_one(tmp_path: Path) -> None:
    from eventvault.errors import ConfigError

    with pytest.raises(ConfigError, match=r"store\.sqlite.*did you mean 'path'"):
        open_store({"store": {"backend": "sqlite", "sqlite": {"pth": "x.db"}}})
    with pytest.raises(StoreNotFoundError):
        open_store(
            {"store": {"backend": "sqlite", "sqlite": {"path": str(tmp_path / "no.db")}}},
            create=False,
        )
    assert not (tmp_path / "no.db").exists()
