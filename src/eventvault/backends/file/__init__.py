"""The ``file`` backend: JSONL segments with derived indexes (see :mod:`.store`).

:class:`FileEventStore` is imported on first use (a module ``__getattr__``): loading
any configuration reads :mod:`.config` — this package's options — and must not pay
for importing the whole backend when another backend is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...config import Config
from ...timeutil import parse_duration
from .config import FileConfig

if TYPE_CHECKING:
    from .store import FileEventStore

__all__ = ["FileEventStore", "from_config"]


def __getattr__(name: str) -> Any:
    if name == "FileEventStore":
        from .store import FileEventStore

        return FileEventStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def from_config(config: Config, *, create: bool = True) -> FileEventStore:
    from .store import FileEventStore

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
