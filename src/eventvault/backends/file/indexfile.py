"""The sealed-segment index file: its format, written and memory-mapped back.

A file is ``EVIDX03\n``, the header's length (8 bytes, little endian), the header
(JSON: counts, the section offsets, the body's length and CRC), padding to 8 bytes,
then the body: 8-byte aligned sections of fixed-width arrays — slot -> position
(compacted segments only), offset, time; batch ends; per field sorted keys with
their posting lists; the stream revisions; the sorted event ids and their slots.
:class:`DiskIndex` maps it and decodes nothing until a query asks (see
:class:`_KeyTable`); a file that is not whole, or describes another segment, is
refused (the caller rebuilds it from the segment).
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import struct
import zlib
from array import array
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from .fsio import atomic_write

__all__ = ["FIELDS", "Accessors", "DiskIndex", "write_index"]

FIELDS = ("type", "actor", "correlation_id", "stream")
# 02: the key tables (postings keys, stream revisions) moved from the JSON header
# into the mapped body, so a sealed segment costs a reader O(1) heap, whatever
# the number of distinct keys. Files of another version are rebuilt, never read.
# 03: batch boundaries (``batch_ends``), so reads can check each batch's checksum.
_MAGIC = b"EVIDX03\n"
_V = TypeVar("_V")


class Accessors:
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


def write_index(
    path: Path,
    mode: int,
    *,
    first: int,
    size: int,
    last_hash: str | None,
    positions: array[int] | None,
    offsets: array[int],
    times: array[int],
    batch_ends: array[int],
    postings_by_field: Mapping[str, Mapping[str, array[int]]],
    stream_last: Mapping[str, int],
    ids: Mapping[int, int],
) -> None:
    """Write a sealed segment's index file (atomically) from the arrays of a
    :class:`~.index.MemIndex` (``positions`` None: contiguous from ``first``)."""
    body = bytearray()
    sections: dict[str, int] = {}

    def section(name: str, data: bytes) -> None:
        body.extend(b"\0" * (-len(body) % 8))
        sections[name] = len(body)
        body.extend(data)

    if positions is not None:
        section("positions", positions.tobytes())
    section("offsets", offsets.tobytes())
    section("times", times.tobytes())
    section("batch_ends", batch_ends.tobytes())
    # Key tables: sorted keys, each with its value row (see _KeyTable).
    postings = array("I")
    keys: dict[str, int] = {}
    for field in FIELDS:
        lists = _write_keys(section, field, postings_by_field[field])
        starts = array("I")
        for slots in lists:
            starts.append(len(postings))
            postings.extend(slots)
        starts.append(len(postings))  # one more: the last key's end
        keys[field] = len(lists)
        section(f"{field}.starts", starts.tobytes())
    section("postings", postings.tobytes())
    revisions = _write_keys(section, "stream_last", stream_last)
    keys["stream_last"] = len(revisions)
    section("stream_last.revisions", array("q", revisions).tobytes())
    ordered = sorted(ids.items())
    section("ids", b"".join(k.to_bytes(16, "big") for k, _ in ordered))
    section("idslots", array("I", (s for _, s in ordered)).tobytes())
    header = {
        "first": first,
        "count": len(offsets),
        "batches": len(batch_ends),
        "size": size,
        "last_hash": last_hash,
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


class DiskIndex(Accessors):
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
