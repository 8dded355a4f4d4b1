"""Reading a segment's committed records into its index, and cutting what a crash left.

Bytes after the last commit marker of the active segment belong to a write in
progress (another process's) or to a writer that died. Readers ignore them; a
writer, holding the ``flock`` (so nobody is mid-write), cuts them before it
writes, and reports what it cut.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any

from ...errors import EventVaultError
from ...sequencer import ChainHead
from .index import DiskIndex, MemIndex
from .records import COMMIT, scan_committed
from .segment import Segment

__all__ = ["catch_up", "cut_uncommitted_tail", "load_checkpoint"]

log = logging.getLogger("eventvault.file")

_READ_CHUNK = 8 * 1024 * 1024


def catch_up(seg: Segment, index: MemIndex, size: int | None = None) -> ChainHead | None:
    """Index the committed records ``seg`` has beyond ``index``; the new chain head
    if there were any. ``size``: the file's length, if the caller just took it."""
    fd = seg.open()
    if size is None:
        size = os.fstat(fd).st_size
    seg.seen_size = size
    head = None
    while size > index.size:
        want = _READ_CHUNK
        buf = os.pread(fd, want, index.size)
        while True:
            nxt = index.positions[index.count - 1] + 1 if index.count else index.first
            scan = scan_committed(buf, index.size, nxt, seg.path)
            if scan.heads or scan.torn or len(buf) >= size - index.size:
                break
            want *= 2  # one batch larger than the chunk: read more
            buf = os.pread(fd, want, index.size)
        if not scan.heads:
            break
        base = index.count
        for offset, line in scan.heads:
            index.add_head(offset, line)
        index.end_batches(scan.batch_ends, base)
        index.set_size(scan.end)
        last = scan.heads[-1][1]
        head = ChainHead(
            position=last.position, hash=bytes.fromhex(last.hash), recorded_at=last.recorded_at
        )
    return head


def load_checkpoint(seg: Segment) -> MemIndex | None:
    """The active segment's index as saved by the last clean close, if it still fits.

    Segments only grow, and a checkpoint covers committed bytes only, so its records
    are still there — unless the file was damaged or replaced, which the check of the
    last record's position and hash catches (then: a full scan).
    """
    disk = DiskIndex.load(seg.idx_path, first=seg.first, size=None)
    if disk is None:
        return None
    try:
        mem = MemIndex.from_disk(disk)
    finally:
        disk.close()
    if not mem.count:
        return None
    try:
        last = seg.read([mem.count - 1], mem, mem.count, mem.size)[0]
    except (OSError, EventVaultError):
        return None
    if last.position != mem.positions[mem.count - 1] or last.hash != mem.last_hash:
        log.warning("%s does not match its segment; rescanning", seg.idx_path)
        return None
    return mem


def cut_uncommitted_tail(seg: Segment, index: MemIndex, recovered: list[dict[str, Any]]) -> None:
    """Cut the bytes after the last commit marker (call holding the writer flock,
    just after catching up — whose length of the file still holds, as nobody else
    writes now: such bytes are the torn tail of a writer that died, never
    acknowledged)."""
    fd = seg.open()
    size = seg.seen_size
    if size <= index.size:
        return
    # Batches with a marker in what goes: torn ones (their checksum failed).
    torn = os.pread(fd, size - index.size, index.size).count(COMMIT)
    os.ftruncate(fd, index.size)
    os.fsync(fd)
    seg.seen_size = index.size
    info = {
        "segment": os.path.basename(seg.path),
        "cut_bytes": size - index.size,
        "at_offset": index.size,
        "after_position": index.positions[index.count - 1] if index.count else seg.first - 1,
        "torn_batches": torn,
        "at": datetime.now(UTC).isoformat(),
    }
    recovered.append(info)
    log.warning(
        "%s: cut %d bytes of an unacknowledged write at offset %d (%s)",
        seg.path,
        size - index.size,
        index.size,
        f"{torn} torn batch(es): checksum failed" if torn else "no commit marker",
    )
