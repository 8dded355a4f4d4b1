"""The PostgreSQL write path: group commit, the locking commit (one ``COPY`` or one
``INSERT … unnest``), the one-round-trip commit, imports.

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

The Merkle tree moves with the head
-----------------------------------
Both paths append the events' leaves to the Merkle tree in the events' own
transaction (see :mod:`.tree`): the tree's size and right edge sit in the head row
they lock (or, on the one-round-trip path, match), so the hashes to store are
computed here from the edge, without reading the tree, and written as one ``tree``
row — by the locking path under the lock, by the one-round-trip path only if the
head (tree included) is where it left it. While an upgraded store's tree is still
being built (``build_tree``), appends leave their leaves to the builder.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg

from ... import sequencer as _sequencer
from ...errors import EventVaultError
from ...groupcommit import GroupCommit, Request
from ...model import ExpectedRevision, NewEvent, RecordedEvent
from ...spi import GENESIS, ChainHead, Import, stamp_group
from ...tlog.layout import stored_hash_count
from . import columns as _columns
from .connection import Connected, db_errors
from .tree import TreeHead, extend

__all__ = ["CLOCK_TOLERANCE", "WritePath"]

#: How far a ``recorded_at`` stamped by the one-round-trip path may be from the
#: database's clock (see "One clock" above); beyond it, the locking path stamps.
CLOCK_TOLERANCE = timedelta(milliseconds=500)


#: Groups this large are written with COPY; smaller ones in one INSERT statement.
_COPY_FROM = 64
#: Streams whose last revision the writer remembers between commits.
_REVISION_CACHE = 100_000


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


def _grow(
    tree: TreeHead, position: int, leaves: list[bytes]
) -> tuple[TreeHead, int | None, bytes | None]:
    """The tree after appending ``leaves`` to a head at ``position``, and the tree row
    to insert (start, hashes), or (None, None) if nothing is stored (no leaves, or an
    upgraded store whose tree is still behind the head: ``build_tree`` adds them)."""
    if not leaves or not tree.caught_up(position):
        return tree, None, None
    assert tree.size is not None
    hashes, edge = extend(tree.size, tree.edge, leaves)
    return (
        TreeHead(tree.base, tree.size + len(leaves), tuple(edge)),
        stored_hash_count(tree.size),
        hashes,
    )


def _tree_params(tree: TreeHead, start: int | None, hashes: bytes | None) -> tuple[Any, ...]:
    """``tree_size``, ``tree_edge`` and the tree row, as the statements take them."""
    edge = b"".join(tree.edge) if tree.size is not None else None
    return (tree.size, edge, start, hashes)


class WritePath(Connected):
    """Appends and imports of :class:`~.store.PostgresBackend` (state set by its
    ``__init__``)."""

    _group: GroupCommit
    _writer_conn: psycopg.Connection[tuple[Any, ...]] | None
    #: The head and stream revisions as of our last commit (see _commit_fast).
    _known: ChainHead | None
    #: The Merkle tree in the head row, as of our last commit (with ``_known``).
    _known_tree: TreeHead | None
    _revisions: dict[str, int]
    #: The store's hash format (read with its id when connecting).
    hash_format: int
    #: The database's clock minus ours, as of the last locking commit.
    _clock_offset: timedelta | None
    _notified: threading.Condition

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

    def _commit(self, group: list[Request]) -> None:
        """Write every request of ``group`` in one transaction (the group commit
        leader's job; :meth:`commit` queues a request for it)."""
        try:
            with db_errors("appending"):
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
                                written, head, revisions, tree = self._commit_in(
                                    conn, group, use_copy=use_copy, check_ids=not optimistic
                                )
                        except (psycopg.errors.UniqueViolation, _Recheck):
                            if not optimistic:
                                raise
                            with conn.transaction():
                                written, head, revisions, tree = self._commit_in(
                                    conn, group, use_copy=use_copy
                                )
                        self._remember(head, revisions, tree)
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

    def _remember(self, head: ChainHead, revisions: dict[str, int], tree: TreeHead) -> None:
        """What the next append may assume if nobody else writes in between."""
        self._known = head
        self._known_tree = tree
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
        known, known_tree = self._known, self._known_tree
        if known is None or known_tree is None:
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
            hashes=self.hash_format,
            # The database's clock, as well as we know it (the statement checks).
            now=_sequencer.client_clock() + offset,
        )
        if stamped.failed:
            return None  # let the authoritative path produce (or not) the error
        head, new = stamped.head, stamped.new
        tree, start, hashes = _grow(known_tree, known.position, stamped.leaves)
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
                    *_tree_params(tree, None, None)[:2],
                    known.position,
                    known.hash.hex() if known.position else None,
                    known_tree.size,
                    head.recorded_at,
                    CLOCK_TOLERANCE,
                    CLOCK_TOLERANCE,
                    unknown,
                    *map(list, columns),
                    start,
                    hashes,
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
        self._remember(head, stamped.revisions, tree)
        return len(new)

    def _commit_in(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        group: list[Request],
        *,
        use_copy: bool,
        check_ids: bool = True,
    ) -> tuple[int, ChainHead, dict[str, int], TreeHead]:
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
        tree = TreeHead.of(row[4], row[5], row[6])
        before = head.position
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
            hashes=self.hash_format,
        )
        if not check_ids and stamped.failed:
            raise _Recheck  # maybe only because ids were stored already: look them up
        stamped.settle()
        head, new = stamped.head, stamped.new
        revisions.update(stamped.revisions)
        if not new:
            return 0, head, revisions, tree
        tree, start, hashes = _grow(tree, before, stamped.leaves)
        move_head = (
            head.position,
            head.hash.hex(),
            head.recorded_at,
            *_tree_params(tree, start, hashes),
            self._channel,
            head.position,
        )
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
        return len(new), head, revisions, tree
