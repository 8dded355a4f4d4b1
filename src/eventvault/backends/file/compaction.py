"""What retention leaves behind in a file store: compacted segments and their state.

A sealed segment loses events in one of two ways: deleted whole, when every event
in it goes; or *compacted*, rewritten without the events that go (temp file →
fsync → rename → fsync of the directory, so a crash leaves the old or the new
file, never a mix). The active segment is never touched.

``retention.json`` keeps what removal would otherwise destroy:

* ``stream_last`` — the last revision of every stream that lost events, so a
  stream whose events are all gone still continues at the next revision;
* ``ends`` — per touched segment, its original last position, hash and time: the
  chain head after it, which a deleted or compacted segment no longer shows;
* ``generation`` — bumped by every run, so other processes notice and drop what
  they cached about sealed segments.

It is written (atomically) *before* any segment changes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import msgspec

from ...errors import StoreUnavailableError
from .fsio import atomic_write, write_temp
from .index import SegmentIndex
from .records import seal_lines, unsealed

__all__ = ["RetentionState", "SegmentEnd", "compact_segment"]

STATE_FILE = "retention.json"


class SegmentEnd(msgspec.Struct, array_like=True, frozen=True):
    position: int
    hash: str
    recorded_us: int


class RetentionState(msgspec.Struct):
    version: int = 1
    generation: int = 0
    stream_last: dict[str, int] = msgspec.field(default_factory=dict)
    ends: dict[int, SegmentEnd] = msgspec.field(default_factory=dict)

    @classmethod
    def load(cls, store_dir: Path) -> RetentionState:
        path = store_dir / STATE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        try:
            return msgspec.json.decode(raw, type=cls)
        except msgspec.DecodeError as exc:
            raise StoreUnavailableError(f"{path} is damaged: {exc}") from None

    def save(self, store_dir: Path, mode: int) -> None:
        atomic_write(store_dir / STATE_FILE, msgspec.json.encode(self), mode)

    def end_before(self, first: int) -> SegmentEnd | None:
        """The recorded end of the nearest touched segment before position ``first``."""
        keys = [k for k in self.ends if k < first]
        return self.ends[max(keys)] if keys else None


def compact_segment(
    fd: int, seg: str, index: SegmentIndex, goes: Sequence[bool], mode: int
) -> tuple[Path, list[int], list[int], int, str, list[int]]:
    """Write sealed segment ``seg`` (open at ``fd``: the file ``index`` describes)
    without the records at the slots ``goes`` marks, to a durable temp file the
    caller renames over ``seg`` (with ``replace_with``) when it is safe to swap.

    What an original batch keeps becomes one batch, with its own checksum and
    marker (the records' bytes, and so the chain, are unchanged). Returns the temp
    file, the kept slots, their new byte offsets, the new size, the hash of the
    last kept record and the new batch ends (for the new index). Some records must
    stay.
    """
    offsets = index.offsets
    count = index.count
    ends = list(index.batch_ends)
    if not ends or ends[-1] < count:
        ends.append(count)
    data = os.pread(fd, index.size, 0)
    keep_slots: list[int] = []
    new_offsets: list[int] = []
    new_ends: list[int] = []
    parts: list[bytes] = []
    at = 0
    first = 0
    for end in ends:
        lines: list[bytes] = []
        here = at
        for slot in range(first, end):
            if goes[slot]:
                continue
            line = data[offsets[slot] : offsets[slot + 1] if slot + 1 < count else index.size]
            if slot == end - 1:
                line = unsealed(line)
            keep_slots.append(slot)
            new_offsets.append(here)
            here += len(line)
            lines.append(line)
        if lines:
            batch = seal_lines(b"".join(lines))
            parts.append(batch)
            at += len(batch)
            new_ends.append(len(keep_slots))
        first = end
    keep = b"".join(parts)
    last = msgspec.json.decode(keep[new_offsets[-1] :], type=_LastHash)
    tmp = write_temp(Path(seg), keep, mode)
    return tmp, keep_slots, new_offsets, len(keep), last.hash, new_ends


class _LastHash(msgspec.Struct):
    hash: str
