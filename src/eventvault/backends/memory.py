"""The in-memory backend: the reference implementation of every semantic.

Keeps everything in Python lists and dicts, so it is the yardstick the
conformance suite and the stateful tests compare other backends against, and a
real store users can use in their own tests. Nothing survives the process.

Like a store on disk, it never shares a payload with its caller: what it keeps is
its own copy, and every record it returns carries a fresh copy of the payloads,
so a caller who changes a returned ``data`` dict changes nothing stored.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import msgspec

from ..config import Config
from ..errors import ValidationError
from ..integrity.chain import HASH_FORMATS
from ..model import ExpectedRevision, NewEvent, Query, RecordedEvent, StoreStats
from ..spi import (
    DEFAULT_MAX_EVENT_BYTES,
    GENESIS,
    LEAF,
    Backend,
    ChainHead,
    Import,
    Importing,
    ProgressCallback,
    Proving,
    RemovedRuns,
    Results,
    Retaining,
    Run,
    StampedBatch,
    TreeState,
    stamp_batch,
    stamp_import,
)
from ..store import EventStore
from ..tlog import MemoryHashStore, MerkleTree

__all__ = ["MemoryBackend", "MemoryEventStore"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
_replace = msgspec.structs.replace


def _detached(rec: RecordedEvent) -> RecordedEvent:
    """``rec`` with payloads of its own (a JSON round trip: exact for JSON values,
    and several times faster than ``copy.deepcopy``)."""
    return _replace(rec, data=_decode(_encode(rec.data)), metadata=_decode(_encode(rec.metadata)))


class MemoryBackend(Backend, Importing, Retaining, Proving):
    """All events in memory. Thread-safe."""

    name = "memory"

    def __init__(
        self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, hash_format: int = LEAF
    ) -> None:
        if hash_format not in HASH_FORMATS:
            raise ValidationError(f"hash_format must be one of {sorted(HASH_FORMATS)}")
        self.max_event_bytes = max_event_bytes
        self.hash_format = hash_format
        self._closed = False
        self._events: list[RecordedEvent] = []
        self._positions: list[int] = []
        self._by_id: dict[UUID, RecordedEvent] = {}
        self._revisions: dict[str, int] = {}
        self._head = ChainHead(position=0, hash=GENESIS, recorded_at=None)
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._id = str(uuid.uuid4())
        self._tree = MerkleTree(MemoryHashStore())
        self._checkpoints: list[tuple[int, str]] = []

    @property
    def store_id(self) -> str:
        return self._id

    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        with self._lock:
            return self._write(
                stamp_batch(
                    batch,
                    expected,
                    self._head,
                    revision_of=self._revisions.get,
                    find=self._by_id.get,
                    max_event_bytes=self.max_event_bytes,
                    hashes=self.hash_format,
                )
            )

    def import_records(self, imp: Import) -> list[RecordedEvent]:
        with self._lock:
            return self._write(
                stamp_import(
                    imp,
                    self._head,
                    revision_of=self._revisions.get,
                    find=self._by_id.get,
                    hashes=self.hash_format,
                )
            )

    def _write(self, stamped: StampedBatch) -> list[RecordedEvent]:
        """Store what was stamped (the caller holds the lock)."""
        for new in stamped.new:
            rec = _detached(new)  # the results returned share payloads with the caller
            self._events.append(rec)
            self._positions.append(rec.position)
            self._by_id[rec.id] = rec
            self._revisions[rec.stream] = rec.stream_revision
        self._head = stamped.head
        self._tree.append_leaf_hashes(stamped.leaves)
        if stamped.new:
            self._appended.notify_all()
        fresh = {id(rec) for rec in stamped.new}
        # Results of a retry are the stored records themselves: hand out copies.
        return Results(
            [rec if id(rec) in fresh else _detached(rec) for rec in stamped.results],
            len(stamped.new),
        )

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        with self._lock:
            events = self._events
            lo = 0 if query.after is None else bisect.bisect_right(self._positions, query.after)
            hi = (
                len(events)
                if query.before is None
                else bisect.bisect_left(self._positions, query.before)
            )
        out: list[RecordedEvent] = []
        indexes = range(hi - 1, lo - 1, -1) if query.reverse else range(lo, hi)
        for i in indexes:
            ev = events[i]
            if query.matches(ev):
                out.append(_detached(ev))
                if len(out) >= limit:
                    break
        return out

    def remove_runs(
        self,
        runs: list[Run],
        tails: dict[str, int],
        receipts: list[RecordedEvent],
        progress: ProgressCallback | None,
    ) -> None:
        # One step under the lock; ``_revisions`` is separate from the events, so the
        # streams' revisions survive by themselves.
        inside = RemovedRuns(runs)
        with self._lock:
            kept = []
            for ev in self._events:
                if inside(ev.position):
                    del self._by_id[ev.id]
                else:
                    kept.append(ev)
            removed = len(self._events) - len(kept)
            self._events = kept
            self._positions = [ev.position for ev in kept]
        if progress is not None:
            progress(removed, removed)

    def tree_state(self) -> TreeState:
        with self._lock:
            return TreeState(self._tree.size)

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        return self._tree.store.read_hashes(indexes)

    def save_checkpoint(self, size: int, note: str) -> None:
        with self._lock:
            self._checkpoints.append((size, note))
            self._checkpoints.sort(key=lambda c: c[0])

    def latest_checkpoint(self) -> str | None:
        with self._lock:
            return self._checkpoints[-1][1] if self._checkpoints else None

    def get(self, event_id: UUID) -> RecordedEvent | None:
        rec = self._by_id.get(event_id)
        return None if rec is None else _detached(rec)

    def head(self) -> int:
        return self._head.position

    def head_state(self) -> tuple[int, str | None] | None:
        with self._lock:
            head = self._head
        return (head.position, head.hash.hex() if head.position else None)

    def stats(self) -> StoreStats:
        with self._lock:
            events = self._events
            details: dict[str, Any] = {}
            return StoreStats(
                backend=self.name,
                events=len(events),
                head_position=self._head.position,
                first_position=events[0].position if events else None,
                streams=len(self._revisions),
                oldest_recorded_at=events[0].recorded_at if events else None,
                newest_recorded_at=events[-1].recorded_at if events else None,
                size_bytes=None,
                details=details,
            )

    def wait(self, head: int, timeout: float) -> None:
        with self._appended:
            if self._head.position <= head and not self._closed:
                self._appended.wait(timeout)

    def close(self) -> None:
        with self._appended:
            self._closed = True
            self._appended.notify_all()


class MemoryEventStore(EventStore):
    """An :class:`~eventvault.EventStore` over a fresh :class:`MemoryBackend`."""

    def __init__(
        self, *, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES, hash_format: int = LEAF
    ) -> None:
        super().__init__(MemoryBackend(max_event_bytes=max_event_bytes, hash_format=hash_format))

    @property
    def backend(self) -> MemoryBackend:
        backend = self._backend
        assert isinstance(backend, MemoryBackend)
        return backend


def from_config(config: Config, *, create: bool = True) -> MemoryEventStore:
    # A memory store lives as long as its process: there is nothing to find or create.
    return MemoryEventStore(max_event_bytes=config.store.max_event_bytes)
