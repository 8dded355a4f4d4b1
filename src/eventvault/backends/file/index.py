"""Segment indexes: derived data, never the source of truth.

Each segment has an index mapping a record's *slot* (its rank in the segment) to
its position, byte offset and recorded time, posting lists (sorted slots)
for type, actor, correlation id and stream, the last revision of every stream in
the segment, and the segment's event ids.

* The active segment's index lives in memory (:class:`MemIndex`) and is rebuilt
  by scanning the segment on open.
* A sealed segment's index is a file (:class:`DiskIndex`, memory-mapped; the
  format is :mod:`.indexfile`). It records the segment's size and a CRC of its
  body; a missing, truncated, stale or damaged index file is rebuilt from the
  segment, never trusted.

Positions are contiguous in a segment (slot = position - first) until retention
compacts it; a compacted segment's index stores its positions explicitly.

Every query re-checks each record it reads against the full filter, so an index
can only make a query faster, never make it return an event it should not.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterable, Iterator, KeysView, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ...model import RecordedEvent
from ...timeutil import from_us, to_us
from .indexfile import FIELDS, Accessors, DiskIndex, write_index
from .records import LineHead
from .runmap import SegmentRuns

__all__ = ["FIELDS", "DiskIndex", "MemIndex", "SegmentIndex", "from_us", "to_us"]


class SegmentIndex(Protocol):
    """What queries need from an index, whichever kind it is."""

    first: int  # the segment's name: no position in it is lower

    @property
    def count(self) -> int: ...
    @property
    def positions(self) -> Sequence[int]: ...  # slot -> position, ascending
    @property
    def size(self) -> int: ...  # bytes of the segment covered (committed end)
    @property
    def offsets(self) -> Sequence[int]: ...
    @property
    def times(self) -> Sequence[int]: ...
    def postings(self, field: str) -> Mapping[str, Sequence[int]]: ...
    def stream_last(self) -> Mapping[str, int]: ...
    def find_id(self, key: int) -> int | None: ...
    @property
    def id_max(self) -> int: ...  # largest UUID.int in the segment (-1 when empty)
    @property
    def last_hash(self) -> str | None: ...
    @property
    def batch_ends(self) -> Sequence[int]: ...  # per batch: the slot after its last record


class MemIndex(Accessors):
    """The growing index of the active segment (or of a segment being rebuilt)."""

    def __init__(self, first: int) -> None:
        self.first = first
        self._positions: array[int] | None = None  # None: contiguous from ``first``
        self._offsets: array[int] = array("Q")
        self._times: array[int] = array("q")
        self._postings: dict[str, dict[str, array[int]]] = {f: {} for f in FIELDS}
        self._stream_last: dict[str, int] = {}
        self._ids: dict[int, int] = {}  # UUID.int -> slot
        self._size = 0
        self._last_hash: str | None = None
        self._batch_ends: array[int] = array("I")
        #: The segment's runs (:mod:`.runmap`): None until a run listing asks for
        #: them (:func:`.runmap.build_runs`), then kept current by every add.
        self.runs: SegmentRuns | None = None

    @property
    def count(self) -> int:
        return len(self._offsets)

    @property
    def positions(self) -> Sequence[int]:
        if self._positions is None:
            return range(self.first, self.first + len(self._offsets))
        return self._positions

    def find_id(self, key: int) -> int | None:
        return self._ids.get(key)

    def id_map(self) -> dict[int, int]:
        return self._ids

    def id_keys(self) -> KeysView[int]:
        return self._ids.keys()

    @property
    def id_max(self) -> int:
        return max(self._ids, default=-1)

    def add(
        self,
        offset: int,
        *,
        recorded_us: int,
        id_key: int,
        type: str,
        stream: str,
        stream_revision: int,
        actor: str | None,
        correlation_id: str | None,
        hash: str,
        position: int | None = None,
    ) -> None:
        slot = len(self._offsets)
        if position is not None and (self._positions is not None or position != self.first + slot):
            if self._positions is None:  # the first gap: from now on, explicit positions
                self._positions = array("Q", range(self.first, self.first + slot))
            self._positions.append(position)
        self._offsets.append(offset)
        self._times.append(recorded_us)
        p = self._postings
        for field, key in (
            ("type", type),
            ("stream", stream),
            ("actor", actor),
            ("correlation_id", correlation_id),
        ):
            if key is not None:
                lst = p[field].get(key)
                if lst is None:
                    lst = p[field][key] = array("I")
                lst.append(slot)
        self._stream_last[stream] = stream_revision
        self._ids[id_key] = slot
        self._last_hash = hash
        if self.runs is not None and correlation_id is not None:
            self.runs.note(correlation_id, slot, type, actor, stream)

    def add_batch(
        self, records: Sequence[RecordedEvent], offsets: Sequence[int], recorded_us: int | None
    ) -> None:
        """Index one appended batch. An append shares one recorded_at
        (``recorded_us``); imported records bring their own (None)."""
        slot = len(self._offsets)
        if self._positions is not None:
            self._positions.extend(rec.position for rec in records)
        self._offsets.extend(offsets)
        if recorded_us is None:
            times: list[int] = []
            last_at, last_us = None, 0
            for rec in records:  # (copied batches share times: convert each once)
                at = rec.recorded_at
                if at != last_at:
                    last_at, last_us = at, to_us(at)
                times.append(last_us)
            self._times.extend(times)
        else:
            self._times.extend([recorded_us] * len(records))
        p = self._postings
        by_type, by_stream, by_actor, by_corr = (
            p["type"], p["stream"], p["actor"], p["correlation_id"]
        )  # fmt: skip
        stream_last = self._stream_last
        ids = self._ids
        runs = self.runs
        for rec in records:
            # Unrolled on purpose: this runs once per appended event.
            lst = by_type.get(rec.type)
            if lst is None:
                lst = by_type[rec.type] = array("I")
            lst.append(slot)
            lst = by_stream.get(rec.stream)
            if lst is None:
                lst = by_stream[rec.stream] = array("I")
            lst.append(slot)
            if rec.actor is not None:
                lst = by_actor.get(rec.actor)
                if lst is None:
                    lst = by_actor[rec.actor] = array("I")
                lst.append(slot)
            if rec.correlation_id is not None:
                lst = by_corr.get(rec.correlation_id)
                if lst is None:
                    lst = by_corr[rec.correlation_id] = array("I")
                lst.append(slot)
                if runs is not None:
                    runs.note(rec.correlation_id, slot, rec.type, rec.actor, rec.stream)
            stream_last[rec.stream] = rec.stream_revision
            ids[rec.id.int] = slot
            slot += 1
        self._last_hash = records[-1].hash
        self._batch_ends.append(slot)

    def end_batches(self, counts: Sequence[int], base: int) -> None:
        """Scanned batches end after ``base + c`` records, for each ``c`` of ``counts``."""
        self._batch_ends.extend([base + c for c in counts])

    def add_head(self, offset: int, head: LineHead) -> None:
        self.add(
            offset,
            recorded_us=to_us(head.recorded_at),
            id_key=head.id.int,
            type=head.type,
            stream=head.stream,
            stream_revision=head.stream_revision,
            actor=head.actor,
            correlation_id=head.correlation_id,
            hash=head.hash,
            position=head.position,
        )

    def set_size(self, size: int) -> None:
        self._size = size

    @classmethod
    def from_disk(cls, disk: DiskIndex) -> MemIndex:
        """A growable copy of a checkpointed index (the active segment, reopened)."""
        mem = cls(disk.first)
        if disk.compacted:
            mem._positions = array("Q", disk.positions)
        mem._offsets.frombytes(disk.offsets.tobytes())  # type: ignore[attr-defined]
        mem._times.frombytes(disk.times.tobytes())  # type: ignore[attr-defined]
        for field in FIELDS:
            table = mem._postings[field]
            for key, slots in disk.postings(field).items():
                table[key] = array("I", slots)
        mem._stream_last = dict(disk.stream_last())
        mem._ids = disk.id_map()
        mem._size = disk.size
        mem._last_hash = disk.last_hash
        mem._batch_ends = array("I", disk.batch_ends)
        return mem

    @classmethod
    def compacted(
        cls,
        old: MemIndex | DiskIndex,
        keep: Sequence[int],
        offsets: Sequence[int],
        size: int,
        last_hash: str,
        batch_ends: Sequence[int],
    ) -> MemIndex:
        """The index of a segment rewritten with only the records at slots ``keep``
        (ascending), now at byte ``offsets`` in batches ending at ``batch_ends`` —
        derived from the old index, no parsing.

        ``stream_last`` stays as it was: the revisions the segment *wrote* (what
        revision lookups need, whether or not those events are still there).
        """
        new = cls(old.first)
        renumber = array("q", [-1]) * old.count
        for new_slot, old_slot in enumerate(keep):
            renumber[old_slot] = new_slot
        positions, times = old.positions, old.times
        new._positions = array("Q", [positions[k] for k in keep])
        new._times = array("q", [times[k] for k in keep])
        new._offsets = array("Q", offsets)
        for field in FIELDS:
            table = new._postings[field]
            for key, slots in old.postings(field).items():
                moved = array("I", [renumber[k] for k in slots if renumber[k] >= 0])
                if moved:
                    table[key] = moved
        new._stream_last = dict(old.stream_last())
        new._ids = {key: renumber[k] for key, k in old.id_map().items() if renumber[k] >= 0}
        new._size = size
        new._last_hash = last_hash
        new._batch_ends = array("I", batch_ends)
        return new

    # -- persistence ---------------------------------------------------------------

    def write(self, path: Path, mode: int) -> None:
        """Write this index as a sealed-segment index file (atomically)."""
        write_index(
            path,
            mode,
            first=self.first,
            size=self._size,
            last_hash=self._last_hash,
            positions=self._positions,
            offsets=self._offsets,
            times=self._times,
            batch_ends=self._batch_ends,
            postings_by_field=self._postings,
            stream_last=self._stream_last,
            ids=self._ids,
        )


def iter_union(lists: Iterable[Sequence[int]], a: int, b: int, *, reverse: bool) -> Iterator[int]:
    """Slots in ``[a, b)`` found in any of ``lists``, lazily, in the given direction.

    The lists of one field are disjoint (a record has one value per field), so a
    merge without de-duplication is exact.
    """
    parts: list[Sequence[int]] = []
    for lst in lists:
        i = bisect.bisect_left(lst, a)
        j = bisect.bisect_left(lst, b)
        if i < j:
            parts.append(lst[i:j])
    if reverse:
        backwards = [_backwards(p) for p in parts]
        return backwards[0] if len(backwards) == 1 else heapq.merge(*backwards, reverse=True)
    return iter(parts[0]) if len(parts) == 1 else heapq.merge(*parts)


def _backwards(seq: Sequence[int]) -> Iterator[int]:
    for k in range(len(seq) - 1, -1, -1):
        yield seq[k]


def count_in(lists: Iterable[Sequence[int]], a: int, b: int) -> int:
    """How many slots in ``[a, b)`` the lists hold (to pick the most selective field)."""
    return sum(bisect.bisect_left(lst, b) - bisect.bisect_left(lst, a) for lst in lists)
