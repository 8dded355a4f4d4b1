"""Segment indexes: derived data, never the source of truth.

Each segment has an index mapping a record's *slot* (its rank in the segment) to
its position, byte offset and recorded time, posting lists (sorted slots)
for type, actor, correlation id and stream, the last revision of every stream in
the segment, and the segment's event ids.

* The active segment's index lives in memory (:class:`MemIndex`) and is rebuilt
  by scanning the segment on open.
* A sealed segment's index is a file (:class:`DiskIndex`, memory-mapped). It
  records the segment's size and a CRC of its body; a missing, truncated, stale or
  damaged index file is rebuilt from the segment, never trusted.

Positions are contiguous in a segment (slot = position - first) until retention
compacts it; a compacted segment's index stores its positions explicitly.

Every query re-checks each record it reads against the full filter, so an index
can only make a query faster, never make it return an event it should not.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import mmap
import struct
import zlib
from array import array
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec

from ...model import RecordedEvent
from ...timeutil import from_us, to_us
from .fsio import atomic_write
from .records import LineHead

__all__ = ["FIELDS", "DiskIndex", "MemIndex", "SegmentIndex", "from_us", "to_us"]

FIELDS = ("type", "actor", "correlation_id", "stream")
# 02: the key tables (postings keys, stream revisions) moved from the JSON header
# into the mapped body, so a sealed segment costs a reader O(1) heap, whatever
# the number of distinct keys. Files of another version are rebuilt, never read.
# 03: batch boundaries (``batch_ends``), so reads can check each batch's checksum.
_MAGIC = b"EVIDX03\n"
_V = TypeVar("_V")


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


class _Accessors:
    """What both kinds of index expose the same way."""

    _size: int
    _offsets: Sequence[int]
    _times: Sequence[int]
    _last_hash: str | None
    _postings: Mapping[str, Mapping[str, Sequence[int]]]
    _stream_last: Mapping[str, int]
    _batch_ends: Sequence[int]

    @property
    def size(self) -> int:
        return self._size

    @property
    def batch_ends(self) -> Sequence[int]:
        return self._batch_ends

    @property
    def offsets(self) -> Sequence[int]:
        return self._offsets

    @property
    def times(self) -> Sequence[int]:
        return self._times

    @property
    def last_hash(self) -> str | None:
        return self._last_hash

    def postings(self, field: str) -> Mapping[str, Sequence[int]]:
        return self._postings[field]

    def stream_last(self) -> Mapping[str, int]:
        return self._stream_last


class MemIndex(_Accessors):
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
        body = bytearray()
        sections: dict[str, int] = {}

        def section(name: str, data: bytes) -> None:
            body.extend(b"\0" * (-len(body) % 8))
            sections[name] = len(body)
            body.extend(data)

        if self._positions is not None:
            section("positions", self._positions.tobytes())
        section("offsets", self._offsets.tobytes())
        section("times", self._times.tobytes())
        section("batch_ends", self._batch_ends.tobytes())
        # Key tables: sorted keys, each with its value row (see _KeyTable).
        postings = array("I")
        keys: dict[str, int] = {}
        for field in FIELDS:
            lists = _write_keys(section, field, self._postings[field])
            starts = array("I")
            for slots in lists:
                starts.append(len(postings))
                postings.extend(slots)
            starts.append(len(postings))  # one more: the last key's end
            keys[field] = len(lists)
            section(f"{field}.starts", starts.tobytes())
        section("postings", postings.tobytes())
        revisions = _write_keys(section, "stream_last", self._stream_last)
        keys["stream_last"] = len(revisions)
        section("stream_last.revisions", array("q", revisions).tobytes())
        ordered = sorted(self._ids.items())
        section("ids", b"".join(k.to_bytes(16, "big") for k, _ in ordered))
        section("idslots", array("I", (s for _, s in ordered)).tobytes())
        header = {
            "first": self.first,
            "count": self.count,
            "batches": len(self._batch_ends),
            "size": self._size,
            "last_hash": self._last_hash,
            "sections": sections,
            "keys": keys,
            "postings": len(postings),
            "body_len": len(body),
            "body_crc": zlib.crc32(body),
        }
        head = msgspec.json.encode(header)
        pad = b"\0" * (-(len(_MAGIC) + 8 + len(head)) % 8)
        data = _MAGIC + struct.pack("<Q", len(head)) + head + pad + bytes(body)
        atomic_write(path, data, mode)


def _write_keys(
    section: Callable[[str, bytes], None], name: str, table: Mapping[str, _V]
) -> list[_V]:
    """Write ``table``'s keys sorted by their UTF-8 bytes (== code point order) as one
    byte string plus start offsets (one more: the end); return its values in that order."""
    items = sorted((k.encode(), v) for k, v in table.items())
    ends = array("Q", [0])
    total = 0
    for key, _value in items:
        total += len(key)
        ends.append(total)
    section(f"{name}.keys", b"".join(k for k, _ in items))
    section(f"{name}.offsets", ends.tobytes())
    return [v for _, v in items]


class _KeyTable:
    """Sorted keys in a mapped index file: key -> row by binary search.

    Nothing is decoded until asked for, so a sealed segment with a million distinct
    correlation ids costs the heap nothing until a query names one of them (a JSON
    header decoded into dicts used to keep them all, in every process, for good).
    """

    def __init__(self, view: memoryview, sec: dict[str, int], name: str, n: int) -> None:
        start = sec[f"{name}.offsets"]
        self._ends = view[start : start + 8 * (n + 1)].cast("Q")
        start = sec[f"{name}.keys"]
        self._bytes = view[start : start + (self._ends[n] if n else 0)]
        self.n = n

    def key(self, row: int) -> bytes:
        return bytes(self._bytes[self._ends[row] : self._ends[row + 1]])

    def row(self, key: object) -> int | None:
        if not isinstance(key, str) or not self.n:
            return None
        try:
            want = key.encode()
        except UnicodeEncodeError:  # a lone surrogate: no stored key has one
            return None
        row = bisect.bisect_left(range(self.n), want, key=self.key)
        return row if row < self.n and self.key(row) == want else None

    def keys(self) -> Iterator[str]:
        data = bytes(self._bytes)
        ends = self._ends
        for row in range(self.n):
            yield data[ends[row] : ends[row + 1]].decode()

    def release(self) -> None:
        self._ends.release()
        self._bytes.release()


class _Mapped(Mapping[str, _V]):
    """A read-only mapping over a :class:`_KeyTable`: one value per row."""

    def __init__(self, table: _KeyTable) -> None:
        self._table = table

    def _value(self, row: int) -> _V:
        raise NotImplementedError

    def __getitem__(self, key: str) -> _V:
        row = self._table.row(key)
        if row is None:
            raise KeyError(key)
        return self._value(row)

    def __iter__(self) -> Iterator[str]:
        return self._table.keys()

    def __len__(self) -> int:
        return self._table.n

    def __contains__(self, key: object) -> bool:
        return self._table.row(key) is not None

    def items(self) -> ItemsView[str, _V]:
        return _Rows(self)

    def rows(self) -> Iterator[tuple[str, _V]]:
        """Every (key, value) in key order, in one pass (no search per key)."""
        value = self._value
        for row, key in enumerate(self._table.keys()):
            yield key, value(row)


class _Rows(ItemsView[str, _V]):
    _mapping: _Mapped[_V]

    def __iter__(self) -> Iterator[tuple[str, _V]]:
        return self._mapping.rows()


class _MappedPostings(_Mapped[Sequence[int]]):
    """key -> slots: a slice of the mapped posting array."""

    def __init__(self, table: _KeyTable, starts: memoryview, postings: memoryview) -> None:
        super().__init__(table)
        self._starts = starts
        self._postings = postings

    def _value(self, row: int) -> Sequence[int]:
        return self._postings[self._starts[row] : self._starts[row + 1]]


class _MappedRevisions(_Mapped[int]):
    """stream -> the last revision the segment wrote to it."""

    def __init__(self, table: _KeyTable, revisions: memoryview) -> None:
        super().__init__(table)
        self._revisions = revisions

    def _value(self, row: int) -> int:
        return int(self._revisions[row])


class DiskIndex(_Accessors):
    """A sealed segment's index, memory-mapped from its file."""

    def __init__(self, path: Path, header: dict[str, Any], mm: mmap.mmap, body: int) -> None:
        self.path = path
        self.first: int = header["first"]
        self._count: int = header["count"]
        self._size: int = header["size"]
        self._last_hash: str | None = header["last_hash"]
        self._mm = mm
        view = memoryview(mm)[body : body + header["body_len"]]
        sec = header["sections"]
        n = self._count
        self._positions: Sequence[int]
        if "positions" in sec:
            self._positions = view[sec["positions"] : sec["positions"] + 8 * n].cast("Q")
        else:
            self._positions = range(self.first, self.first + n)
        self._offsets: memoryview = view[sec["offsets"] : sec["offsets"] + 8 * n].cast("Q")
        self._times: memoryview = view[sec["times"] : sec["times"] + 8 * n].cast("q")
        at = sec["batch_ends"]
        self._batch_ends: memoryview = view[at : at + 4 * header["batches"]].cast("I")
        nkeys: dict[str, int] = header["keys"]
        postings = view[sec["postings"] : sec["postings"] + 4 * header["postings"]].cast("I")
        self._tables = {name: _KeyTable(view, sec, name, k) for name, k in nkeys.items()}
        views: list[memoryview] = [postings]
        self._postings = {}
        for f in FIELDS:
            at = sec[f"{f}.starts"]
            starts = view[at : at + 4 * (nkeys[f] + 1)].cast("I")
            views.append(starts)
            self._postings[f] = _MappedPostings(self._tables[f], starts, postings)
        at = sec["stream_last.revisions"]
        revisions = view[at : at + 8 * nkeys["stream_last"]].cast("q")
        views.append(revisions)
        self._stream_last = _MappedRevisions(self._tables["stream_last"], revisions)
        self._views = views
        self._ids = view[sec["ids"] : sec["ids"] + 16 * n]
        self._idslots = view[sec["idslots"] : sec["idslots"] + 4 * n].cast("I")
        self._id_min = bytes(self._ids[:16]) if n else b""
        self._id_max = bytes(self._ids[16 * (n - 1) :]) if n else b""

    @classmethod
    def load(cls, path: Path, *, first: int, size: int | None) -> DiskIndex | None:
        """The index at ``path`` if it is whole and describes this segment, else None.

        ``size`` None accepts a checkpoint of any size (the caller checks it).
        """
        try:
            with path.open("rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
        try:
            if mm[: len(_MAGIC)] != _MAGIC:
                raise ValueError("magic")
            (hlen,) = struct.unpack_from("<Q", mm, len(_MAGIC))
            hstart = len(_MAGIC) + 8
            header = msgspec.json.decode(mm[hstart : hstart + hlen])
            body = hstart + hlen + (-(hstart + hlen) % 8)
            if header["first"] != first or (size is not None and header["size"] != size):
                raise ValueError("stale")
            if len(mm) != body + header["body_len"]:
                raise ValueError("truncated")
            if zlib.crc32(memoryview(mm)[body:]) != header["body_crc"]:  # no copy
                raise ValueError("damaged")
            return cls(path, header, mm, body)
        except (ValueError, KeyError, TypeError, struct.error, msgspec.DecodeError):
            mm.close()
            return None

    @property
    def count(self) -> int:
        return self._count

    @property
    def positions(self) -> Sequence[int]:
        return self._positions

    @property
    def compacted(self) -> bool:
        """Whether retention removed events from the middle (positions are explicit)."""
        return not isinstance(self._positions, range)

    @property
    def id_max(self) -> int:
        return int.from_bytes(self._id_max, "big") if self._count else -1

    def find_id(self, key_int: int) -> int | None:
        key = key_int.to_bytes(16, "big")  # == UUID.bytes
        if not self._count or key < self._id_min or key > self._id_max:
            return None
        ids = self._ids
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            if bytes(ids[16 * mid : 16 * mid + 16]) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._count and bytes(ids[16 * lo : 16 * lo + 16]) == key:
            return int(self._idslots[lo])
        return None

    def id_map(self) -> dict[int, int]:
        """UUID.int -> slot for every event of the segment."""
        ids = bytes(self._ids)
        keys = (int.from_bytes(ids[i : i + 16], "big") for i in range(0, len(ids), 16))
        return dict(zip(keys, self._idslots.tolist(), strict=True))

    def close(self) -> None:
        """Unmap (skipped while views are still referenced; the GC unmaps later)."""
        views = [self._offsets, self._times, self._batch_ends, self._ids, self._idslots]
        views += self._views
        if isinstance(self._positions, memoryview):
            views.append(self._positions)
        for view in views:
            view.release()
        for table in self._tables.values():
            table.release()
        with contextlib.suppress(BufferError):
            self._mm.close()


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
