"""The PostgreSQL backend's Merkle tree (:class:`~eventvault.spi.Proving`).

Where it lives (schema version 6, ``_V6_TREE`` in :mod:`.schema`)
-----------------------------------------------------------------
* ``tree (start, hashes)``: the stored hashes (:mod:`eventvault.tlog.layout`), one
  row per commit holding the run of hashes that commit appended from index
  ``start``. An append adds one row — one index entry — however many events it
  writes; ``hashes`` is stored uncompressed out of line, so ``substring`` reads only
  the pages it needs. Any set of indexes is read in one round trip.
* the head row: ``tree_size``, ``tree_edge`` (the roots of the perfect subtrees the
  tree decomposes into, left to right: ``O(log n)`` hashes, all an append needs)
  and ``tree_base``. Every append locks and updates that row anyway, so the tree's
  rows are written in the events' transaction, its size is read with the head in one
  statement, and positions and leaves cannot drift apart.

Upgraded stores
---------------
A schema upgraded from version 4 has events but no tree (``tree_base`` NULL).
:meth:`TreePath.build_tree` builds it from the stored events, a chunk per
transaction, resumably (it continues from the stored size), while appends go on;
appends add their leaves themselves once the tree has caught up with the head.
Until then ``tree_state()`` reports the part built so far (``verify`` checks that
part and the chain the rest). If retention had removed events, the tree starts after
the last hole: ``tree_base`` is the position before the first event of the
contiguous tail (the events before it are covered by the hash chain only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, LiteralString, NamedTuple

import psycopg

from ...errors import CorruptionError, StoreError, ValidationError
from ...integrity.chain import event_leaf_hash
from ...spi import ProgressCallback, TreeState
from ...tlog.layout import perfect_subtrees, stored_hash_count
from ...tlog.storage import missing_hash
from . import columns as _columns
from .connection import Connected, db_errors

__all__ = ["BUILD_CHUNK", "TreeHead", "TreePath", "extend"]

#: Events whose leaves one :meth:`TreePath.build_tree` transaction adds.
BUILD_CHUNK = 20_000


class TreeHead(NamedTuple):
    """The tree as the head row holds it (``base`` None: not built yet)."""

    base: int | None
    size: int | None
    edge: tuple[bytes, ...]

    @classmethod
    def of(cls, base: int | None, size: int | None, edge: bytes | None) -> TreeHead:
        raw = bytes(edge or b"")
        hashes = tuple(raw[i : i + 32] for i in range(0, len(raw), 32))
        if size is not None and len(hashes) != len(perfect_subtrees(0, size)):
            raise CorruptionError(
                f"the head row's tree edge holds {len(hashes)} hashes, but a tree of {size} "
                f"leaves has {len(perfect_subtrees(0, size))}: the head row was altered"
            )
        return cls(base, size, hashes)

    def caught_up(self, position: int) -> bool:
        """Whether the tree's leaves reach the event at ``position`` (the head), so an
        append on top of it adds its leaves."""
        return self.base is not None and self.size is not None and self.base + self.size == position


def extend(size: int, edge: Sequence[bytes], leaves: Sequence[bytes]) -> tuple[bytes, list[bytes]]:
    """The stored hashes that appending ``leaves`` to a tree of ``size`` leaves with
    right edge ``edge`` writes (concatenated, from index ``stored_hash_count(size)``),
    and the new edge. (:meth:`eventvault.tlog.MerkleTree.append_leaf_hashes`' loop,
    over an edge held in a row instead of a store.)"""
    stack = list(edge)
    push, pop = stack.append, stack.pop
    out: list[bytes] = []
    add = out.append
    sha256 = hashlib.sha256  # (bound once: this loop is on every append's path)
    n = size
    for leaf in leaves:
        h = leaf
        add(h)
        m = n
        while m & 1:  # each trailing 1 bit of n completes a perfect subtree
            h = sha256(b"\x01" + pop() + h).digest()
            add(h)
            m >>= 1
        push(h)
        n += 1
    return b"".join(out), stack


_READ_SOME: LiteralString = (
    "SELECT substring(t.hashes FROM (u.i - t.start)::int * 32 + 1 FOR 32) "
    "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(i, o) "
    "LEFT JOIN LATERAL (SELECT start, hashes FROM {s}.tree WHERE start <= u.i "
    "ORDER BY start DESC LIMIT 1) AS t ON true ORDER BY u.o"
)
# A contiguous range (verify reads thousands at once): the rows overlapping it, each
# cut to the overlap on the server.
_READ_RANGE: LiteralString = (
    "SELECT start, substring(hashes FROM (greatest(%s, start) - start)::int * 32 + 1 "
    "FOR (least(%s, start + length(hashes) / 32) - greatest(%s, start))::int * 32) "
    "FROM {s}.tree WHERE start >= coalesce((SELECT max(start) FROM {s}.tree "
    "WHERE start <= %s), 0) AND start < %s ORDER BY start"
)


class TreePath(Connected):
    """The :class:`~eventvault.spi.Proving` methods of :class:`~.store.PostgresBackend`."""

    def tree_state(self) -> TreeState:
        # One statement with the head: the size is that of the committed events.
        rows = self._query(
            "reading the Merkle tree", self._q("SELECT tree_base, tree_size FROM {s}.head")
        )
        if not rows:
            raise CorruptionError(f"schema {self.schema!r} has no head row (was it deleted?)")
        base, size = rows[0]
        if base is None or size is None:
            return TreeState(0, 0)  # not built yet (an upgraded store): no leaves
        return TreeState(int(size), int(base))

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        wanted = list(indexes)
        if not wanted:
            return []
        lo, hi = wanted[0], wanted[-1] + 1
        if hi - lo == len(wanted) and wanted == list(range(lo, hi)):
            rows = self._query(
                "reading the Merkle tree", self._q(_READ_RANGE), (lo, hi, lo, lo, hi)
            )
            got = b"".join(bytes(r[1]) for r in rows)
            if not rows or rows[0][0] > lo or len(got) != 32 * (hi - lo):
                raise missing_hash(lo + len(got) // 32, self._stored_count())
            return [got[i : i + 32] for i in range(0, len(got), 32)]
        rows = self._query("reading the Merkle tree", self._q(_READ_SOME), (wanted,))
        out = [bytes(r[0]) if r[0] is not None else b"" for r in rows]
        for index, h in zip(wanted, out, strict=True):
            if len(h) != 32:
                raise missing_hash(index, self._stored_count())
        return out

    def _stored_count(self) -> int:
        state = self.tree_state()
        return stored_hash_count(state.size)

    def save_checkpoint(self, size: int, note: str) -> None:
        if type(size) is not int or size < 0:
            raise ValidationError(f"a checkpoint's size must be a whole number >= 0, not {size!r}")
        with db_errors("saving a checkpoint"), self._pool.connection() as conn:
            conn.execute(
                self._q("INSERT INTO {s}.checkpoints (size, note) VALUES (%s, %s)"), (size, note)
            )

    def latest_checkpoint(self) -> str | None:
        rows = self._query(
            "reading the latest checkpoint",
            self._q("SELECT note FROM {s}.checkpoints ORDER BY size DESC, created_at DESC LIMIT 1"),
        )
        return str(rows[0][0]) if rows else None

    # -- building the tree of an upgraded store -------------------------------------------

    def tree_behind(self) -> int:
        """How many events the tree has still to take (0: caught up with the head). For
        a tree not started yet: the head's position, an upper bound (where the tree
        starts, after retention's last hole, is found when it is built)."""
        rows = self._query(
            "reading the Merkle tree",
            self._q("SELECT position, tree_base, tree_size FROM {s}.head"),
        )
        position, base, size = rows[0]
        if base is None:
            return int(position)
        return int(position) - int(base) - int(size or 0)

    def build_tree(self, progress: ProgressCallback | None = None) -> int:
        """Build the Merkle tree of the events stored before the tree existed (a schema
        upgraded to version 6), continuing from the size already stored; returns how
        many leaves it added (0 when the tree had caught up). Safe to run while others
        append, and in several processes at once: each chunk is one transaction under
        the head's lock, and a chunk someone else added first is read again, never
        written twice. ``progress(leaves added, leaves still missing when it began)``."""
        added = 0
        total: int | None = None
        with db_errors("building the Merkle tree"), self._pool.connection() as conn:
            while True:
                head = self._tree_head(conn)
                position, tree = head
                if tree.base is None:
                    self._start_tree(conn)
                    continue
                assert tree.size is not None
                if tree.caught_up(position):
                    return added
                if total is None:
                    total = position - tree.base - tree.size
                first = tree.base + tree.size + 1
                last = min(position, first + BUILD_CHUNK - 1)
                rows = conn.execute(
                    self._q(
                        "SELECT {columns} FROM {s}.events WHERE position BETWEEN %s AND %s "
                        "ORDER BY position"
                    ),
                    (first, last),
                ).fetchall()
                events = [_columns.from_row(r) for r in rows]
                if [e.position for e in events] != list(range(first, last + 1)):
                    have = {e.position for e in events}
                    gone = next(p for p in range(first, last + 1) if p not in have)
                    raise StoreError(
                        f"building the Merkle tree: the event at position {gone} is gone "
                        "(retention removed it before the tree covered it); the tree cannot "
                        "be built past a hole: it covers "
                        f"positions {tree.base + 1}..{first - 1}"
                    )
                hashes, edge = extend(tree.size, tree.edge, [event_leaf_hash(e) for e in events])
                with conn.transaction():
                    now = conn.execute(
                        self._q("SELECT tree_size FROM {s}.head FOR UPDATE")
                    ).fetchone()
                    if now is None or now[0] != tree.size:
                        continue  # another builder added this chunk: read again
                    conn.execute(
                        self._q(
                            "WITH ins AS (INSERT INTO {s}.tree (start, hashes) VALUES (%s, %s)) "
                            "UPDATE {s}.head SET tree_size = %s, tree_edge = %s"
                        ),
                        (
                            stored_hash_count(tree.size),
                            hashes,
                            tree.size + len(events),
                            b"".join(edge),
                        ),
                    )
                added += len(events)
                if progress is not None:
                    progress(added, total)

    def _tree_head(self, conn: psycopg.Connection[tuple[Any, ...]]) -> tuple[int, TreeHead]:
        row = conn.execute(
            self._q("SELECT position, tree_base, tree_size, tree_edge FROM {s}.head")
        ).fetchone()
        if row is None:
            raise CorruptionError(f"schema {self.schema!r} has no head row (was it deleted?)")
        return int(row[0]), TreeHead.of(row[1], row[2], row[3])

    def _start_tree(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Fix where the tree of an upgraded store starts: after the last hole (events
        retention removed before the tree existed), at 0 when there is none."""
        with conn.transaction():
            row = conn.execute(self._q("SELECT position FROM {s}.head FOR UPDATE")).fetchone()
            assert row is not None
            # The first event of the contiguous tail: the newest event whose predecessor
            # is missing (one pass over the primary key, once per store).
            found = conn.execute(
                self._q(
                    "SELECT coalesce(max(e.position), (SELECT min(position) FROM {s}.events)) "
                    "FROM {s}.events e WHERE e.position > 1 AND NOT EXISTS "
                    "(SELECT 1 FROM {s}.events p WHERE p.position = e.position - 1)"
                )
            ).fetchone()
            first = found[0] if found else None
            base = int(row[0]) if first is None else int(first) - 1
            conn.execute(
                self._q(
                    "UPDATE {s}.head SET tree_base = %s, tree_size = 0, tree_edge = '' "
                    "WHERE tree_base IS NULL"
                ),
                (base,),
            )
