"""What the file store's read, write and retention paths share: one lock, one view."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from .segments import SegmentSet

__all__ = ["Shared"]


@dataclass
class Shared:
    """The segment view of one store object and the lock that guards it."""

    path: Path
    segs: SegmentSet
    file_mode: int
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: This process holds the writer flock and is writing: nobody else can have
    #: changed the files, and the records being written are not indexed yet (so a
    #: catch-up now would index them twice).
    writing: bool = False

    def __post_init__(self) -> None:
        self.appended = threading.Condition(self.lock)

    def refresh(self) -> None:
        """Catch up with other processes (call with ``lock`` held)."""
        if not self.writing:
            self.segs.refresh()
