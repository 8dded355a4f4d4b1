"""The ``file`` backend: JSONL segments with derived indexes (see :mod:`.store`)."""

from __future__ import annotations

from ...config import Config
from ...timeutil import parse_duration
from .config import FileConfig
from .store import FileEventStore

__all__ = ["FileEventStore", "from_config"]


def from_config(config: Config, *, create: bool = True) -> FileEventStore:
    f = config.store.options(FileConfig)
    return FileEventStore(
        f.path,
        create=create,
        fsync=f.fsync,
        fsync_interval=parse_duration(f.fsync_interval).total_seconds(),
        segment_max_bytes=f.segment_max_bytes,
        file_mode=f.file_mode,
        dir_mode=f.dir_mode,
        max_event_bytes=config.store.max_event_bytes,
        read_only=True if f.read_only else None,  # (false: detect it)
    )
