"""Opening a file store read-only: a backup, a read-only mount, another user's store.

A store opens read-only when asked (``read_only=True``, ``[store.file] read_only =
true``, ``--read-only``) or when :func:`writable` says a writer could not work
there. Read-only, the store writes nothing at all: no directory, no lock file (so
the directory flock of creation and the writer flock are never taken), no
recovery, no index file, no checkpoint, no fsync; segments are opened
``O_RDONLY``. A store that is not there is an error, not made.

What a writer would have recovered — the torn tail of a writer that died, which
a writer cuts on open — is left in place (readers never index past the last
commit marker, so nothing is served from it) and reported instead:
:func:`torn_tail` says what is there, unless a writer holds the lock now (then
the bytes are a write still in flight, not a torn one).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from .segments import SEGMENT_NAME, SegmentSet

__all__ = ["torn_tail", "writable", "writer_active"]


def writable(path: Path) -> bool:
    """Whether a writer could work here: the directory, ``segments/``, the lock file
    and the active segment, where they exist, are writable by us (``os.access``
    answers for read-only mounts, and for root without CAP_DAC_OVERRIDE)."""
    if not path.exists():
        return True  # (to be created: whether that works is for the opening to find)
    seg_dir = path / "segments"
    candidates = [path, seg_dir, path / "lock"]
    if seg_dir.is_dir():
        names = sorted(n for n in os.listdir(seg_dir) if SEGMENT_NAME.fullmatch(n))
        candidates += [seg_dir / names[-1]] if names else []
    return all(os.access(p, os.W_OK) for p in candidates if p.exists())


def writer_active(path: Path) -> bool:
    """Whether a writer holds the store's lock now. The probe is a non-blocking
    ``flock`` on an ``O_RDONLY`` descriptor: a flock needs no write access, and
    closing the descriptor drops the probe's own lock at once."""
    try:
        fd = os.open(path / "lock", os.O_RDONLY)
    except OSError:
        return False  # no lock file: no writer has ever run here
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def torn_tail(segs: SegmentSet) -> dict[str, Any] | None:
    """The uncommitted bytes at the end of the active segment that a writer would
    cut (as of the view's last catch-up), or None when there are none or a writer
    is active (bytes past the last commit marker are then its write in flight)."""
    seg = segs.active
    index = segs.active_index()
    if seg is None or index is None:
        return None
    torn = seg.seen_size - index.size
    if torn <= 0 or writer_active(segs.root):
        return None
    return {
        "segment": os.path.basename(seg.path),
        "torn_bytes": torn,
        "at_offset": index.size,
    }
